"""apps.data.folders: class folders decoded once, split stratified and seeded."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from apps.data import DatasetError, UnreadableImagesError, describe, folders, load


def _image_folder(root, counts=None, size=(8, 8), mode="L", seed=0):
    """`counts` images per class (default 3 classes x 40) of random pixels."""
    rng = np.random.default_rng(seed)
    counts = counts or {"ant": 40, "bee": 40, "cat": 40}
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            channels = 1 if mode == "L" else 3
            pixels = rng.integers(0, 255, (*size, channels), np.uint8)
            image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels)
            image.save(root / name / f"{index}.png")
    return root


def _truncated_jpeg(path):
    pixels = np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with Image.open(path) as image:  # what the old check did: it passes
        image.verify()
    return path


def test_split_is_stratified_seeded_and_complete(tmp_path):
    root = _image_folder(tmp_path / "bugs")
    split = folders.split_folder(root)
    assert split.class_names == ("ant", "bee", "cat")
    assert split.counts() == {"train": 87, "validation": 9, "test": 24}
    assert split.class_counts("test") == [8, 8, 8]
    assert split.class_counts("validation") == [3, 3, 3]
    assert split.notes == ()
    parts = [{path for path, _ in split.files[name]} for name in folders.SPLITS]
    assert sum(map(len, parts)) == len(set.union(*parts)) == 120  # disjoint, all
    # The same seed gives the same files, another seed others.
    assert folders.split_folder(root).files == split.files
    other = folders.split_folder(root, seed=7)
    assert other.files["test"] != split.files["test"]
    assert other.class_counts("test") == [8, 8, 8]
    assert "every class in every split" in split.summary()


def test_classes_too_small_for_every_split_are_named(tmp_path):
    root = _image_folder(tmp_path / "few", {"one": 1, "two": 2, "three": 3})
    split = folders.split_folder(root)
    assert split.class_names == ("one", "three", "two")
    assert split.class_counts("train") == [1, 1, 1]
    assert split.class_counts("test") == [0, 1, 1]
    assert split.class_counts("validation") == [0, 1, 0]
    text = " ".join(split.notes)
    assert "no test images of class(es) 'one' (1 images)" in text
    assert "no validation images of class(es) 'one' (1 images), 'two'" in text
    with pytest.raises(DatasetError, match="too few images for a test split"):
        folders.split_folder(_image_folder(tmp_path / "solo", {"a": 1, "b": 1}))


def test_train_and_test_folders_are_used_and_validation_is_stratified(tmp_path):
    _image_folder(tmp_path / "data" / "train", {"ant": 20, "bee": 10})
    _image_folder(tmp_path / "data" / "test", {"ant": 4, "bee": 3}, seed=1)
    split = folders.split_folder(tmp_path / "data")
    assert split.layout == "split folders"
    assert split.class_counts("test") == [4, 3]
    assert all(path.startswith("test/") for path, _ in split.files["test"])
    assert split.class_counts("validation") == [2, 1]
    assert split.class_counts("train") == [18, 9]
    # A class that train/ lacks cannot be tested.
    _image_folder(tmp_path / "data" / "test", {"cat": 1}, seed=2)
    with pytest.raises(DatasetError, match=r"class folders that .*train lacks"):
        folders.split_folder(tmp_path / "data")


def test_every_image_is_decoded_and_the_bad_ones_named_in_one_line(tmp_path):
    root = _image_folder(tmp_path / "bugs", {"ant": 3, "bee": 3})
    _truncated_jpeg(root / "ant" / "cut.jpg")
    (root / "bee" / "junk.png").write_bytes(b"\x89PNG not really")
    (root / "bee" / "notes.txt").write_text("not an image: ignored")
    assert describe(str(root)).num_examples == 6  # describing still works
    with pytest.raises(UnreadableImagesError) as caught:
        folders.split_folder(root)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("2 image file(s)")
    assert "cut.jpg (image file is truncated" in message and "junk.png" in message
    assert sorted(p.name for p in caught.value.paths) == ["cut.jpg", "junk.png"]
    with pytest.raises(DatasetError, match="cut.jpg"):  # load says the same
        load(str(root), "train")


def test_size_and_channels_come_from_the_images(tmp_path):
    grey = _image_folder(tmp_path / "grey", {"a": 4, "b": 4}, size=(8, 6))
    assert describe(str(grey)).image_shape == (8, 6, 1)
    images, _ = next(iter(load(str(grey), "train").batch(100)))
    assert images.shape[1:] == (8, 6, 1) and images.dtype == "uint8"
    # One colour image makes the folder colour; the most common size wins.
    Image.new("RGB", (20, 10), (255, 0, 0)).save(grey / "a" / "red.png")
    info = describe(str(grey))
    assert info.image_shape == (8, 6, 3) and info.source == "folder"
    dataset = load(str(grey), "train", image_size=(5, 5))
    assert dataset.element_spec[0].shape == (5, 5, 3)
    pixels = [x for split in ("train", "test") for x, _ in load(str(grey), split)]
    assert {tuple(x.shape) for x in pixels} == {(8, 6, 3), (10, 20, 3)}


def test_tfds_style_slices_are_the_stratified_split(tmp_path):
    root = _image_folder(tmp_path / "bugs")
    split = folders.split_folder(root, validation_fraction=0.1)
    train, info = load(str(root), "train[:90%]", with_info=True)
    assert info.num_examples == 87 and info.source == "folder"
    labels = np.concatenate([y.numpy() for _, y in train.batch(200)])
    assert np.bincount(labels).tolist() == split.class_counts("train")
    held_out = load(str(root), "train[90%:]")
    assert sum(1 for _ in held_out) == 9
    assert sum(1 for _ in load(str(root), "train")) == 96  # all but the test split
    assert sum(1 for _ in load(str(root), "test")) == 24
    for bad in ("holdout", "train[:100%]", "train[10%:20%]"):
        with pytest.raises(DatasetError, match="split must be one of"):
            load(str(root), bad)
    with pytest.raises(DatasetError, match="no validation split"):
        load(str(root), "validation")


def test_saved_split_is_read_back_and_checked(tmp_path):
    root = _image_folder(tmp_path / "bugs", {"ant": 10, "bee": 10})
    run = tmp_path / "run"
    run.mkdir()
    split, read = folders.saved_or_new_split(root, run)
    assert not read
    (run / folders.SPLIT_FILE).write_text(json.dumps(split.to_json()))
    # New images do not move a saved split; they are said to be unused.
    _image_folder(root, {"ant": 12}, seed=3)
    again, read = folders.saved_or_new_split(root, run)
    assert read and again.files == split.files
    assert "2 image(s) added" in again.notes[-1]
    with pytest.raises(DatasetError, match="a resumed run must see the same data"):
        folders.saved_or_new_split(root, run, validation_fraction=0.3)
    (root / "ant" / "0.png").unlink()
    with pytest.raises(DatasetError, match="no longer in"):
        folders.saved_or_new_split(root, run)
    (run / folders.SPLIT_FILE).write_text("{not json")
    with pytest.raises(DatasetError, match="is damaged"):
        folders.saved_or_new_split(root, run)


def test_fitting_batch():
    assert folders.fitting_batch(1000, 128) == 128
    assert folders.fitting_batch(87, 128) == 87
    assert folders.fitting_batch(87, 128, replicas=2) == 86
    with pytest.raises(DatasetError, match="fewer than the 2 replicas"):
        folders.fitting_batch(1, 128, replicas=2)
