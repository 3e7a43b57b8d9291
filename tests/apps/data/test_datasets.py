"""apps.data.datasets: real Fashion-MNIST offline, image folders, every error path."""

import gzip
import hashlib
import random
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.core import constants as tfds_constants
from tiny import tiny_flags

import apps
from apps import classify
from apps.data import DatasetError, datasets, load

IDX_DIR = Path("/usr/share/datasets/fashion-mnist")


def test_fashion_mnist_offline_has_real_splits(fashion_mnist, tfds_data_dir):
    assert fashion_mnist.num_classes == 10
    assert fashion_mnist.class_names[9] == "Ankle boot"
    train, info = load("fashion_mnist", "train", data_dir=tfds_data_dir, with_info=True)
    assert info.num_examples == 60_000
    labels = np.concatenate([y.numpy() for _, y in train.batch(20_000)])
    assert labels.shape == (60_000,)
    # Fashion-MNIST is balanced: 6,000 images per class.
    assert np.bincount(labels).tolist() == [6_000] * 10
    test = load("fashion_mnist", "test", data_dir=tfds_data_dir)
    images, labels = next(iter(test.batch(10_001)))
    assert images.shape == (10_000, 28, 28, 1) and images.dtype == "uint8"
    assert labels.dtype == "int64"
    assert 60 < float(np.mean(images)) < 80  # real pictures, not zeros or noise


def test_prepared_dataset_is_the_tfds_dataset(fashion_mnist, tfds_data_dir):
    builder = tfds.builder("fashion_mnist", data_dir=tfds_data_dir)
    assert builder.is_prepared()
    assert builder.info.splits["test"].num_examples == 10_000


def test_small_splits_are_read_decoded_in_tfds_order(fashion_mnist, tfds_data_dir):
    """The decoded copy is tfds's examples in tfds's order; a damaged copy is
    rebuilt, not trusted."""
    split = "train[:1%]"
    builder = tfds.builder("fashion_mnist", data_dir=tfds_data_dir)
    expected = next(
        iter(builder.as_dataset(split=split, as_supervised=True).batch(600))
    )
    first = next(iter(load("fashion_mnist", split, data_dir=tfds_data_dir).batch(600)))
    cached = Path(builder.data_dir) / datasets.DECODED_DIR / "train__1__.npz"
    assert cached.exists()
    cached.write_bytes(cached.read_bytes()[:100])  # truncated
    again = next(iter(load("fashion_mnist", split, data_dir=tfds_data_dir).batch(600)))
    for batch in (first, again):
        assert np.array_equal(batch[0], expected[0])
        assert np.array_equal(batch[1], expected[1])
    with np.load(cached) as arrays:  # rewritten whole
        assert arrays["images"].shape == (600, 28, 28, 1)


def test_offline_preparation_never_touches_the_network(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(datasets, "network_available", refuse)
    monkeypatch.setattr(tfds.download.DownloadManager, "download", refuse)
    monkeypatch.setattr(datasets, "read_idx_split", _tiny_split)
    info = datasets.describe("fashion_mnist", data_dir=tmp_path / "tfds")
    assert info.name == "fashion_mnist"
    assert (
        sum(1 for _ in load("fashion_mnist", "test", data_dir=tmp_path / "tfds")) == 8
    )


def _tiny_split(directory, split):
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (8, 28, 28), np.uint8), np.arange(8) % 10


def test_unknown_dataset_suggests_closest():
    with pytest.raises(DatasetError, match="Did you mean: fashion_mnist"):
        load("fashon_mnist")
    with pytest.raises(DatasetError, match="cifar10"):
        load("no_such_dataset_at_all")


def test_not_image_classification_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="not an image-classification dataset"):
        load("imdb_reviews", data_dir=tmp_path)


def test_bad_split_lists_known_splits(fashion_mnist, tfds_data_dir):
    with pytest.raises(DatasetError, match=r"\['test', 'train'\]"):
        load("fashion_mnist", "validation", data_dir=tfds_data_dir)


def test_offline_without_local_copy_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setitem(
        datasets.LOCAL_IDX_SOURCES,
        "fashion_mnist",
        ("FASHION_MNIST_DIR", str(tmp_path / "absent")),
    )
    monkeypatch.setattr(datasets, "network_available", lambda: False)
    with pytest.raises(DatasetError) as error:
        load("fashion_mnist", data_dir=tmp_path / "tfds")
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "FASHION_MNIST_DIR" in message
    with pytest.raises(DatasetError, match="tfds build cifar10"):
        load("cifar10", data_dir=tmp_path / "tfds")


def test_env_var_pointing_nowhere_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="FASHION_MNIST_DIR=.* is not a directory"):
        load("fashion_mnist", data_dir=tmp_path / "tfds")


def test_network_probe_is_bounded():
    assert datasets.network_available(("host.invalid", 443), timeout=1.0) is False


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate_gzip", "corrupt or truncated"),
        ("truncate_raw", "is truncated"),
        ("bad_magic", "not an unsigned-byte IDX file"),
        ("missing", "is missing"),
    ],
)
def test_corrupt_idx_files_leave_nothing_behind(tmp_path, monkeypatch, damage, message):
    source = tmp_path / "idx"
    shutil.copytree(IDX_DIR, source)
    labels = source / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(labels.read_bytes())
    if damage == "truncate_gzip":
        labels.write_bytes(labels.read_bytes()[:-100])
    elif damage == "truncate_raw":
        labels.unlink()
        (source / "t10k-labels-idx1-ubyte").write_bytes(raw[:-10])
    elif damage == "bad_magic":
        labels.write_bytes(gzip.compress(b"\x00\x00\x09\x01" + raw[4:]))
    else:
        labels.unlink()
    monkeypatch.setenv("FASHION_MNIST_DIR", str(source))
    data_dir = tmp_path / "tfds"
    with pytest.raises(DatasetError, match=message):
        load("fashion_mnist", data_dir=data_dir)
    written = list((data_dir / "fashion_mnist").glob("*")) if data_dir.exists() else []
    assert written == []


def _image_folder(root, classes=("cat", "dog"), per_class=5, size=(12, 10)):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 255, (*size, 3), np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def test_image_folder_loads_with_seeded_holdout(tmp_path):
    root = _image_folder(tmp_path / "pets")
    train, info = load(str(root), "train", image_size=(16, 16), with_info=True)
    test = load(str(root), "test", image_size=(16, 16))
    assert info.class_names == ("cat", "dog")
    images, labels = next(iter(train.batch(100)))
    assert images.dtype == "uint8" and images.shape[1:] == (16, 16, 3)
    test_labels = [int(label) for _, label in test]
    # 20 % of each class is held out: one cat and one dog.
    assert len(labels) + len(test_labels) == 10 and sorted(test_labels) == [0, 1]
    assert set(labels.numpy()) <= {0, 1}


def test_image_folder_with_split_subfolders(tmp_path):
    _image_folder(tmp_path / "data" / "train")
    _image_folder(tmp_path / "data" / "test", per_class=2)
    assert sum(1 for _ in load(str(tmp_path / "data"), "test")) == 4


def test_corrupt_image_is_named(tmp_path):
    root = _image_folder(tmp_path / "pets")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match="broken.png"):
        load(str(root), "train")


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class sub-folders"):
        load(str(tmp_path / "empty"), "train")
    with pytest.raises(DatasetError, match="split must be one of"):
        load(str(_image_folder(tmp_path / "pets")), "holdout")
    with pytest.raises(DatasetError, match="name must be a non-empty string"):
        load("")


# A seeded run that prepares its dataset equals every later run (issue 16, item 5)


def _small_split(directory, split):
    count = {"train": 48, "test": 16}[split]
    rng = np.random.default_rng(1 if split == "train" else 2)
    return rng.integers(0, 255, (count, 28, 28), np.uint8), np.arange(count) % 10


def _weights_sha256(model):
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def test_preparing_leaves_the_global_random_state_alone(tmp_path, monkeypatch):
    # tfds draws its `incomplete.*` folder's suffix from Python's `random`, the
    # generator Keras seeds unseeded initialisers from.
    monkeypatch.setattr(datasets, "read_idx_split", _small_split)
    built = []
    for _ in ("prepares", "finds it prepared"):
        keras.utils.set_random_seed(0)
        before = random.getstate(), np.random.get_state()[1].tobytes()
        datasets.describe("fashion_mnist", data_dir=tmp_path / "tfds")
        assert (random.getstate(), np.random.get_state()[1].tobytes()) == before
        built.append(_weights_sha256(apps.build("lenet5", input_shape=(32, 32, 1))))
    assert built[0] == built[1]


def test_seeded_training_run_is_the_same_when_it_prepares_the_dataset(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(datasets, "read_idx_split", _small_split)
    # tfds reads TFDS_DATA_DIR once, at import, into constants.DATA_DIR.
    monkeypatch.setattr(tfds_constants, "DATA_DIR", str(tmp_path / "fresh-tfds"))
    hashes = []
    for run in ("first", "second"):  # the first one prepares fashion_mnist
        output = tmp_path / run
        argv = ["train", "--model", "lenet5", *tiny_flags(augment="flip")]
        argv += ["--output", str(output)]
        assert classify.main(argv) == 0
        model = keras.models.load_model(output / "model.keras", compile=False)
        hashes.append(_weights_sha256(model))
    assert (tmp_path / "fresh-tfds" / "fashion_mnist").is_dir()
    assert hashes[0] == hashes[1]
