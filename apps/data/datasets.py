"""Datasets: one way in for every command, through tensorflow-datasets.

`load(name, split)` returns a `tf.data.Dataset` of `(image uint8 HxWxC, label int64)`:

- any tfds image-classification dataset by name (`fashion_mnist`, `mnist`,
  `cifar10`, ...), prepared once into the tfds data dir (`TFDS_DATA_DIR` or
  `~/tensorflow_datasets`);
- a directory with one sub-folder of images per class, for users' own data
  (`apps.data.folders`: every image decoded once up front, a stratified, seeded
  train/validation/test split, the images' own size and channels).

Offline, `fashion_mnist` (and `mnist`) are prepared by a small tfds builder of ours
from the original IDX files, e.g. those Debian's `dataset-fashion-mnist` package
installs under /usr/share/datasets/fashion-mnist (override with `FASHION_MNIST_DIR` /
`MNIST_DIR`). The result is the same tfds dataset (same name, version and features) as
a normal download, so everything downstream sees one dataset whichever way it came.
With network, the normal tfds download path is used, but only after a bounded
reachability probe: tfds itself retries for minutes before it gives up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import gzip
import os
import random
import re
import socket
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist as tfds_mnist

FEATURED_DATASETS = ("fashion_mnist", "mnist", "cifar10", "cifar100", "svhn_cropped")

# Where the original IDX files may lie on a machine without network.
LOCAL_IDX_SOURCES = {
    "fashion_mnist": ("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"),
    "mnist": ("MNIST_DIR", "/usr/share/datasets/mnist"),
}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
NETWORK_PROBE = ("storage.googleapis.com", 443)
NETWORK_TIMEOUT_SECONDS = 3.0


class DatasetError(ValueError):
    """A dataset cannot be found, read or prepared; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What downstream code needs to know about a loaded dataset."""

    name: str
    class_names: tuple[str, ...]
    image_shape: tuple[int | None, int | None, int]
    num_examples: int | None = None
    # "tfds" or "folder"; a folder's image_shape is its most common image size,
    # with 1 channel when every image is grey.
    source: str = "tfds"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    with_info: bool = False,
    image_size: tuple[int, int] | None = None,
    validation_fraction: float = 0.0,
    test_fraction: float = 0.2,
    seed: int = 1337,
):
    """Loads a dataset as `(image uint8 HxWxC, label int64)` pairs.

    Args:
        name: a tfds image-classification dataset name (`"fashion_mnist"`), or the path
            of a directory holding one sub-folder of images per class.
        split: a tfds split, slicing included (`"train"`, `"test"`, `"train[:90%]"`).
            For an image directory (`apps.data.folders.split_folder`): `"train"`,
            `"validation"` and `"test"`, disjoint: `train/`, `validation/` and
            `test/` sub-directories where they exist, else stratified, seeded
            hold-outs (`test_fraction` of each class, then `validation_fraction`
            of the rest); `"train[:P%]"` and `"train[P%:]"` are the training and
            validation splits with a validation fraction of (100 - P) %.
        data_dir: the tfds data dir; defaults to `TFDS_DATA_DIR` or
            `~/tensorflow_datasets`.
        with_info: also return a `DatasetInfo`.
        image_size: image directories only: resize every image to (H, W); by
            default images keep their size.
        validation_fraction, test_fraction, seed: image directories only, see
            `split`. With the default validation fraction of 0, `"train"` is
            everything but the test split, as a tfds `"train"` is.

    Returns:
        The `tf.data.Dataset`, or `(dataset, DatasetInfo)` when `with_info`.

    Raises:
        DatasetError: unknown name, no local copy and no network, bad split.
        apps.data.folders.UnreadableImagesError: image files of a directory that
            cannot be decoded (a `DatasetError` naming them all).
    """
    if not isinstance(name, str) or not name:
        raise DatasetError(f"name must be a non-empty string. Received: name={name!r}")
    if os.path.isdir(name):
        from apps.data import folders

        which, validation_fraction = folders.parse_split(split, validation_fraction)
        split_files = folders.split_folder(
            name,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=seed,
        )
        if which == "validation" and not split_files.files["validation"]:
            raise DatasetError(
                f"{name} has no validation split: give it a validation/ folder, or "
                "pass validation_fraction > 0 (or ask for 'train[90%:]')."
            )
        dataset = split_files.dataset(which, image_size=image_size)
        info = split_files.info(which, image_size=image_size)
    else:
        dataset, info = _load_tfds(name, split, data_dir)
    return (dataset, info) if with_info else dataset


def describe(name: str, *, data_dir=None) -> DatasetInfo:
    """Returns the `DatasetInfo` of a dataset without reading its examples.

    An image directory is scanned instead (`apps.data.folders.scan`: every image
    decoded once, the result kept for this process); unreadable images are not an
    error here, loading or splitting names them.
    """
    if os.path.isdir(name):
        from apps.data import folders

        return folders.scan(name).info()
    builder = _prepared_builder(name, data_dir)
    return _info_from_builder(builder, None)


# tfds datasets


def _load_tfds(name, split, data_dir):
    builder = _prepared_builder(name, data_dir)
    try:
        dataset = builder.as_dataset(split=split, as_supervised=True)
    except (ValueError, KeyError) as error:
        splits = sorted(builder.info.splits.keys())
        raise DatasetError(
            f"split {split!r} does not exist in {name!r}. Known splits: {splits} "
            "(tfds slicing such as 'train[:90%]' works too)."
        ) from error
    return _decoded_once(builder, split, dataset), _info_from_builder(builder, split)


# A split this small is kept decoded beside the tfds files: every later load reads
# the arrays (Fashion-MNIST's 54,000 training images: ~1 s instead of ~6 s of PNG
# decoding), in tfds's own order, so results do not change.
DECODED_CACHE_BYTES = 256 << 20
DECODED_DIR = "decoded"


def _decoded_once(builder, split, dataset):
    """`dataset` from arrays cached in the builder's data dir (written on the first
    load, atomically; skipped when the split is large or the dir is read-only)."""
    image_spec = dataset.element_spec[0]
    try:
        count = builder.info.splits[split].num_examples
    except (KeyError, ValueError):
        return dataset
    if not image_spec.shape.is_fully_defined() or count == 0:
        return dataset
    if count * image_spec.shape.num_elements() * image_spec.dtype.size > (
        DECODED_CACHE_BYTES
    ):
        return dataset
    path = Path(builder.data_dir) / DECODED_DIR / f"{_file_safe(split)}.npz"
    try:
        with np.load(path) as arrays:
            images, labels = arrays["images"], arrays["labels"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        images, labels = (t.numpy() for t in next(iter(dataset.batch(count))))
        _save_decoded(path, images, labels)
    return tf.data.Dataset.from_tensor_slices((images, labels))


def _save_decoded(path, images, labels):
    from apps.runs import atomic_write

    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, lambda file: np.savez(file, images=images, labels=labels))
    except OSError:  # a read-only data dir: decode on every load
        pass


def _file_safe(split: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", split)


def _prepared_builder(name, data_dir):
    """Returns the tfds builder of `name`, preparing the dataset first if needed."""
    canonical = name.strip().lower().replace("-", "_")
    try:
        builder = tfds.builder(canonical, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise _unknown_dataset(name, canonical) from None
    _check_image_classification(builder)
    if builder.is_prepared():
        return builder
    local_dir = local_idx_dir(canonical)
    if local_dir is not None:
        with _global_random_state_kept():
            prepare_from_idx(canonical, local_dir, data_dir=data_dir)
        return tfds.builder(canonical, data_dir=data_dir)
    if not network_available():
        raise DatasetError(_offline_advice(canonical))
    with _global_random_state_kept():
        builder.download_and_prepare()
    return builder


@contextlib.contextmanager
def _global_random_state_kept():
    """Restores Python's and NumPy's global random state on exit.

    tfds draws from Python's global `random` while it prepares a dataset (the
    six-character suffix of its `incomplete.*` folder), and Keras draws the seeds of
    unseeded initialisers and `SeedGenerator`s from the same generator: without this,
    a `--seed` run that prepares its dataset would build other initial weights than
    every later run of the same command, which finds the dataset prepared.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _unknown_dataset(name, canonical):
    known = tfds.list_builders(with_community_datasets=False)
    close = difflib.get_close_matches(canonical, known, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return DatasetError(
        f"Unknown dataset {name!r}.{hint} Known image datasets include "
        f"{', '.join(FEATURED_DATASETS)}; any tfds image-classification dataset "
        "works by name, and so does a directory with one sub-folder per class."
    )


def _check_image_classification(builder):
    keys = builder.info.supervised_keys
    features = builder.info.features
    ok = (
        keys is not None
        and isinstance(features[keys[0]], tfds.features.Image)
        and isinstance(features[keys[1]], tfds.features.ClassLabel)
    )
    if not ok:
        raise DatasetError(
            f"{builder.name!r} is not an image-classification dataset (its supervised "
            f"keys are {keys}); apps.data.load needs (image, class label) pairs."
        )


def _info_from_builder(builder, split):
    keys = builder.info.supervised_keys
    num_examples = None
    if split is not None:
        try:
            num_examples = builder.info.splits[split].num_examples
        except (KeyError, ValueError):
            num_examples = None
    return DatasetInfo(
        name=builder.name,
        class_names=tuple(builder.info.features[keys[1]].names),
        image_shape=tuple(builder.info.features[keys[0]].shape),
        num_examples=num_examples,
    )


def network_available(
    address=NETWORK_PROBE, timeout: float = NETWORK_TIMEOUT_SECONDS
) -> bool:
    """Whether tfds's download hosts look reachable, decided within `timeout`."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def _offline_advice(name):
    if name in LOCAL_IDX_SOURCES:
        variable, default = LOCAL_IDX_SOURCES[name]
        package = "dataset-fashion-mnist" if name == "fashion_mnist" else None
        install = f"install it (`apt-get install {package}`) or " if package else ""
        return (
            f"{name!r} is not prepared and there is no network. Its original IDX "
            f"files were not found in {default}: {install}set {variable} to a "
            f"directory holding {', '.join(_idx_names())} (gzipped or not)."
        )
    return (
        f"{name!r} is not prepared in the tfds data dir and there is no network to "
        "download it. Prepare it on a machine with network (`tfds build "
        f"{name}`) and copy its folder into TFDS_DATA_DIR (or ~/tensorflow_datasets)."
    )


def _idx_names():
    return [name for pair in IDX_FILES.values() for name in pair[:2]]


# Offline preparation from IDX files


def local_idx_dir(name: str) -> Path | None:
    """The directory holding `name`'s IDX files, or None when there is none."""
    if name not in LOCAL_IDX_SOURCES:
        return None
    variable, default = LOCAL_IDX_SOURCES[name]
    directory = Path(os.environ.get(variable, default))
    if os.environ.get(variable) and not directory.is_dir():
        raise DatasetError(
            f"{variable}={directory} is not a directory. Point it at the folder "
            f"holding {', '.join(_idx_names())}."
        )
    return directory if directory.is_dir() else None


def prepare_from_idx(name: str, directory, *, data_dir=None) -> None:
    """Prepares the tfds dataset `name` from local IDX files, atomically.

    Every file is read and checked before tfds writes anything; tfds itself writes into
    an `.incomplete` folder and renames it at the end, so a failure leaves no
    half-written dataset in the cache.
    """
    for split in IDX_FILES:
        read_idx_split(Path(directory), split)  # fail early, before any writing
    builder_class = _LOCAL_BUILDERS[name]
    builder = builder_class(data_dir=data_dir, idx_dir=str(directory))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )


def read_idx_split(directory: Path, split: str):
    """Reads and validates one split's images and labels from IDX files."""
    images_name, labels_name, expected = IDX_FILES[split]
    images = read_idx(_find_idx_file(directory, images_name), ndim=3)
    labels = read_idx(_find_idx_file(directory, labels_name), ndim=1)
    if len(images) != expected or len(labels) != expected:
        raise DatasetError(
            f"{directory}: the {split} split should hold {expected} images and labels; "
            f"found {len(images)} images and {len(labels)} labels. Reinstall the files."
        )
    return images, labels


def _find_idx_file(directory, stem):
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.exists():
            return candidate
    raise DatasetError(f"{directory}: {stem}(.gz) is missing.")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Reads an unsigned-byte IDX file (gzipped or not), checking header and length."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DatasetError(
            f"{path} is corrupt or truncated ({error}). Reinstall it "
            "(`apt-get install --reinstall dataset-fashion-mnist`)."
        ) from error
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if magic != 0x0800 + ndim:
        raise DatasetError(
            f"{path} is not an unsigned-byte IDX file with {ndim} dimensions "
            f"(magic number {magic:#x}, expected {0x0800 + ndim:#x})."
        )
    header = 4 + 4 * ndim
    shape = tuple(
        int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    if len(raw) != header + int(np.prod(shape)):
        raise DatasetError(
            f"{path} is truncated: its header announces shape {shape} "
            f"({header + int(np.prod(shape))} bytes) but it holds {len(raw)} bytes."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


class _IdxBuilderMixin:
    """Replaces a tfds MNIST-family builder's download by local IDX files.

    The builder keeps tfds's name, version and features, so the prepared dataset is
    the one `tfds.builder(name)` finds afterwards.
    """

    def __init__(self, *, idx_dir: str, **kwargs):
        self._idx_dir = Path(idx_dir)
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return [
            tfds.core.SplitGenerator(name=split, gen_kwargs={"split": split})
            for split in IDX_FILES
        ]

    def _generate_examples(self, split):
        images, labels = read_idx_split(self._idx_dir, split)
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield index, {"image": image[..., None], "label": int(label)}


class _LocalFashionMNIST(
    _IdxBuilderMixin, tfds_mnist.FashionMNIST, skip_registration=True
):
    name = "fashion_mnist"


class _LocalMNIST(_IdxBuilderMixin, tfds_mnist.MNIST, skip_registration=True):
    name = "mnist"


_LOCAL_BUILDERS = {"fashion_mnist": _LocalFashionMNIST, "mnist": _LocalMNIST}
