"""Image folders: users' own data, one sub-folder of images per class.

Two layouts:

- ``DIR/<class>/*.png``: a test split and, when asked, a validation split are held
  out of every class (stratified), the same way on every run;
- ``DIR/train/<class>/...`` with ``DIR/test/<class>/...`` (and optionally
  ``DIR/validation/`` or ``DIR/val/``): those folders are the splits; what is
  missing (a validation split, or a test split without ``test/``) is held out of
  ``train/``, stratified. As before, a ``validation/`` (or ``val/``) folder without
  ``test/`` is the test split.

Every image is fully decoded once (PIL ``load()``; ``verify()`` does not decode
JPEG data) by `scan`, before anything else happens; the unreadable ones are named
together in one `UnreadableImagesError`. The split is a list of files per split
(`FolderSplit`), saved by the commands in their run directory (``split.json``) so
that `evaluate` and a resumed run see the very same files.

Which image goes where depends only on the seed and the image's path inside the
folder: in each class the images are ranked by ``sha256(f"{seed}:{path}")`` and the
first ones are the test split, the next the validation split. Adding images later
moves few of the others.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import re
from pathlib import Path

import tensorflow as tf

from apps.data.datasets import DatasetError, DatasetInfo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# What TensorFlow's decode_image reads: a file PIL reads in another format (WebP,
# TIFF) would pass the check and fail mid-training.
DECODABLE_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "GIF")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
SPLITS = ("train", "validation", "test")
SPLIT_FILE = "split.json"
SPLIT_SEED = 1337
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1
MAX_NAMED = 10
_SPLIT_FOLDERS = {
    "train": ("train", "training"),
    "test": ("test",),
    "validation": ("validation", "val"),
}
_SLICE = re.compile(r"^train\[(:)?(\d{1,2})%(:)?\]$")
_SCANS: dict = {}


class UnreadableImagesError(DatasetError):
    """Image files of a folder cannot be decoded; `paths` names them all.

    Commands report it as a bad file (exit code 1), not as a bad argument.
    """

    def __init__(self, message: str, paths=()):
        super().__init__(message)
        self.paths = tuple(paths)


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One decodable image: its path inside the folder, label and pixel format."""

    path: str  # relative to the folder, with "/"
    label: int
    source: str  # "" (flat layout), "train", "validation" or "test"
    height: int
    width: int
    grey: bool


@dataclasses.dataclass(frozen=True)
class FolderScan:
    """What `scan` found in a folder: classes, decodable images, unreadable files."""

    root: Path
    layout: str  # "flat" or "split folders"
    sources: tuple[str, ...]  # "" (flat), or the split folders: "train", "test", ...
    class_names: tuple[str, ...]
    images: tuple[ImageRecord, ...]
    unreadable: tuple[tuple[str, str], ...]  # (path, why)
    ignored: tuple[str, ...]  # files without an image suffix

    def check_readable(self) -> None:
        """Raises `UnreadableImagesError` naming every file that cannot be decoded."""
        if not self.unreadable:
            return
        named = ", ".join(
            f"{self.root / path} ({why})" for path, why in self.unreadable[:MAX_NAMED]
        )
        more = len(self.unreadable) - MAX_NAMED
        more = f", and {more} more" if more > 0 else ""
        raise UnreadableImagesError(
            f"{len(self.unreadable)} image file(s) in {self.root} cannot be decoded: "
            f"{named}{more}. Remove or replace them, then run the command again.",
            paths=[self.root / path for path, _ in self.unreadable],
        )

    @property
    def image_shape(self) -> tuple[int | None, int | None, int]:
        return image_shape(self.images)

    @property
    def uniform(self) -> bool:
        """Whether every image has the same height and width."""
        return _uniform(self.images)

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=str(self.root),
            class_names=self.class_names,
            image_shape=self.image_shape,
            num_examples=len(self.images),
            source="folder",
        )


def image_shape(images) -> tuple[int | None, int | None, int]:
    """(most common height, width, channels) of image records: 1 channel when every
    image is stored grey, else 3; (None, None, 3) for no images."""
    if not images:
        return (None, None, 3)
    sizes = collections.Counter((image.height, image.width) for image in images)
    (height, width), _ = sizes.most_common(1)[0]
    channels = 1 if all(image.grey for image in images) else 3
    return (height, width, channels)


def _uniform(images) -> bool:
    return len({(image.height, image.width) for image in images}) <= 1


def is_folder(name) -> bool:
    """Whether a dataset name is a folder of images rather than a tfds name."""
    return isinstance(name, (str, os.PathLike)) and os.path.isdir(name)


# Scanning


def scan(root) -> FolderScan:
    """Finds the classes and images of a folder and decodes every image once.

    Unreadable images do not raise here (`FolderScan.check_readable` does), so that
    the folder can still be described; a folder that is not a class-folder dataset
    does. The result is kept for the process while no file changes (name, size,
    modification time), so describing, splitting and loading decode once.

    Raises:
        DatasetError: no class folders, an empty class folder, a test/validation
            folder with classes that train/ lacks.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory of class folders.")
    layout, sources, class_names, candidates, ignored = _find_images(root)
    fingerprint = tuple(
        (path, *_stat(root / path)) for path, _, _ in candidates
    ) + tuple(class_names)
    key = (str(root.resolve()), layout)
    cached = _SCANS.get(key)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    images, unreadable = [], []
    workers = min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:  # PIL frees the GIL
        results = pool.map(lambda item: _decode(root / item[0]), candidates)
        for (path, label, source), (pixels, why) in zip(
            candidates, results, strict=True
        ):
            if why is not None:
                unreadable.append((path, why))
            else:
                images.append(ImageRecord(path, label, source, *pixels))
    found = FolderScan(
        root=root,
        layout=layout,
        sources=sources,
        class_names=class_names,
        images=tuple(images),
        unreadable=tuple(unreadable),
        ignored=tuple(ignored),
    )
    _SCANS.clear()  # one folder at a time: a scan can hold many records
    _SCANS[key] = (fingerprint, found)
    return found


def _stat(path):
    try:
        status = path.stat()
    except OSError:
        return (-1, -1)
    return (status.st_size, status.st_mtime_ns)


def _find_images(root):
    """(layout, sources, class names, [(path, label, source)], [ignored paths])."""
    folders = {
        split: next((root / n for n in names if (root / n).is_dir()), None)
        for split, names in _SPLIT_FOLDERS.items()
    }
    if folders["train"] is None:
        layout, sources = "flat", {"": root}
    else:
        layout = "split folders"
        if folders["test"] is None and folders["validation"] is not None:
            # A lone validation/ next to train/ is the held-out (test) split.
            folders["test"], folders["validation"] = folders["validation"], None
        sources = {split: path for split, path in folders.items() if path is not None}
        known = {path.name for path in sources.values()}
        stray = sorted(p.name for p in _visible_dirs(root) if p.name not in known)
        if stray:
            raise DatasetError(
                f"{root} has {sources['train'].name}/ and other folders {stray}: with "
                "train/ (and test/) sub-folders, every class folder goes inside them."
            )
    main = sources.get("train", root)
    class_names = tuple(sorted(p.name for p in _visible_dirs(main)))
    if not class_names:
        raise DatasetError(
            f"{main} holds no class sub-folders: put each class's images in "
            f"{main}/<class name>/."
        )
    candidates, ignored, empty = [], [], []
    for source, folder in sources.items():
        classes = sorted(p.name for p in _visible_dirs(folder))
        unknown = [name for name in classes if name not in class_names]
        if unknown:
            raise DatasetError(
                f"{folder} has class folders that {main} lacks: {unknown}. Every "
                f"class needs training images; the classes are {list(class_names)}."
            )
        for name in classes:
            files = _image_files(folder / name, root, ignored)
            if not files and source in ("", "train"):
                empty.append(str(folder / name))
            label = class_names.index(name)
            candidates.extend((path, label, source) for path in files)
    if empty:
        raise DatasetError(
            f"class folder(s) without images ({', '.join(IMAGE_SUFFIXES)}): "
            f"{', '.join(empty)}. Add images or remove the folder."
        )
    return layout, tuple(sources), class_names, candidates, ignored


def _visible_dirs(folder):
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _image_files(class_dir, root, ignored):
    """Image paths under a class folder (recursively), relative to `root`; hidden
    files and folders (`.DS_Store`, `._x.jpg`, `.ipynb_checkpoints/`) are skipped."""
    files = []
    for path in sorted(class_dir.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            files.append(relative.as_posix())
        else:
            ignored.append(relative.as_posix())
    return files


def _decode(path):
    """((height, width, grey), None) for a decodable image, else (None, why)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.format not in DECODABLE_FORMATS:
                return None, f"a {image.format} file, not PNG, JPEG, BMP or GIF"
            image.load()  # decodes every pixel: verify() does not for JPEG
            width, height = image.size
            grey = image.mode in GREY_MODES or (
                image.mode in ("P", "PA") and _grey_palette(image)
            )
    except Exception as error:  # PIL raises many types for a bad file
        return None, _one_line(error)
    return (height, width, grey), None


def _grey_palette(image) -> bool:
    palette = image.getpalette() or []
    triples = zip(palette[0::3], palette[1::3], palette[2::3], strict=False)
    return all(red == green == blue for red, green, blue in triples)


def _one_line(error) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 100 else text[:97] + "..."


# Splitting


@dataclasses.dataclass(frozen=True)
class FolderSplit:
    """The files of each split of a folder, with how they were chosen.

    `files[split]` is a tuple of `(path inside the folder, label)`, sorted.
    """

    root: Path
    layout: str
    class_names: tuple[str, ...]
    files: dict
    seed: int
    validation_fraction: float
    test_fraction: float
    image_shape: tuple[int | None, int | None, int]
    uniform: bool = True
    notes: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        return {split: len(self.files[split]) for split in SPLITS}

    def class_counts(self, split: str) -> list[int]:
        counts = [0] * len(self.class_names)
        for _, label in self.files[split]:
            counts[label] += 1
        return counts

    def summary(self) -> str:
        """One line: classes, sizes, how it was split."""
        counts = self.counts()
        height, width, channels = self.image_shape
        colour = "grey" if channels == 1 else "colour"
        made = (
            f"stratified, seed {self.seed}"
            if self.layout == "flat"
            else f"from its {self.layout}, held-out parts stratified, seed {self.seed}"
        )
        every = "" if self.notes else "; every class in every split"
        size = f"{height}x{width}" if self.uniform else f"mostly {height}x{width}"
        return (
            f"{self.root}: {len(self.class_names)} classes, "
            f"{sum(counts.values())} images ({size} {colour}): "
            f"train {counts['train']}, validation {counts['validation']}, "
            f"test {counts['test']} ({made}{every})"
        )

    def dataset(self, split: str, image_size=None) -> tf.data.Dataset:
        """The split's `(uint8 HxWxC image, int64 label)` examples, in file order.

        Images are decoded by TensorFlow with the folder's channels (1 when every
        image is grey); they keep their size (static when all share one) unless
        `image_size` (H, W) is given.
        """
        if split not in SPLITS:
            raise DatasetError(f"split must be one of {SPLITS}. Received: {split!r}")
        files = self.files[split]
        paths = tf.constant([str(self.root / path) for path, _ in files], tf.string)
        labels = tf.constant([label for _, label in files], tf.int64)
        height, width, channels = self.image_shape
        uniform = self.uniform and height is not None

        def read(path, label):
            image = tf.io.decode_image(
                tf.io.read_file(path), channels=3, expand_animations=False
            )
            if channels == 1:  # GIFs decode to RGB only; exact for grey pixels
                image = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
                image = tf.cast(tf.round(image), tf.uint8)
            if image_size is not None:
                image = tf.image.resize(image, tuple(image_size), antialias=True)
                image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
                image = tf.ensure_shape(image, (*image_size, channels))
            elif uniform:
                image = tf.ensure_shape(image, (height, width, channels))
            else:
                image = tf.ensure_shape(image, (None, None, channels))
            return image, label

        return tf.data.Dataset.from_tensor_slices((paths, labels)).map(
            read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )

    def info(self, split: str, image_size=None) -> DatasetInfo:
        height, width, channels = self.image_shape
        if image_size is not None:
            height, width = image_size
        return DatasetInfo(
            name=str(self.root),
            class_names=self.class_names,
            image_shape=(height, width, channels),
            num_examples=len(self.files[split]),
            source="folder",
        )

    def to_json(self) -> dict:
        return {
            "format": 1,
            "root": str(self.root.resolve()),
            "layout": self.layout,
            "seed": self.seed,
            "validation_fraction": self.validation_fraction,
            "test_fraction": self.test_fraction,
            "class_names": list(self.class_names),
            "counts": self.counts(),
            "class_counts": {split: self.class_counts(split) for split in SPLITS},
            "notes": list(self.notes),
            **{split: [list(item) for item in self.files[split]] for split in SPLITS},
        }


def split_folder(
    root,
    *,
    validation_fraction: float = VALIDATION_FRACTION,
    test_fraction: float = TEST_FRACTION,
    seed: int = SPLIT_SEED,
) -> FolderSplit:
    """Splits a folder into train, validation and test files, stratified and seeded.

    Per class of n images, `test_fraction` of them (rounded, at least 1 when n >= 2)
    are the test split, `validation_fraction` of the rest (at least 1 when 2 or more
    are left) the validation split, the others the training split: every class is in
    every split when it has 3 images or more; `notes` says which classes are not.
    Split folders (`train/`, `test/`, `validation/`) are used as they are.

    Raises:
        UnreadableImagesError: some image cannot be decoded (all are named).
        DatasetError: not a class folder, fractions out of range, no test images.
    """
    _check_fraction("validation_fraction", validation_fraction, allow_zero=True)
    _check_fraction("test_fraction", test_fraction, allow_zero=False)
    found = scan(root)
    found.check_readable()
    by_class = collections.defaultdict(list)
    for image in found.images:
        by_class[image.label].append(image)
    files = {split: [] for split in SPLITS}
    for label in range(len(found.class_names)):
        own = by_class[label]
        held = {
            split: [image.path for image in own if image.source == split]
            for split in ("test", "validation")
        }
        pool = [image.path for image in own if image.source in ("", "train")]
        pool.sort(key=lambda path: _rank(seed, path))
        if "test" not in found.sources:
            count = _share(len(pool), test_fraction)
            held["test"], pool = pool[:count], pool[count:]
        if "validation" not in found.sources:
            count = _share(len(pool), validation_fraction)
            held["validation"], pool = pool[:count], pool[count:]
        for split, paths in (("train", pool), *held.items()):
            files[split].extend((path, label) for path in paths)
    result = FolderSplit(
        root=found.root,
        layout=found.layout,
        class_names=found.class_names,
        files={split: tuple(sorted(files[split])) for split in SPLITS},
        seed=int(seed),
        validation_fraction=float(validation_fraction),
        test_fraction=float(test_fraction),
        image_shape=found.image_shape,
        uniform=found.uniform,
    )
    result = dataclasses.replace(result, notes=_notes(result, found))
    if not result.files["test"]:
        raise DatasetError(
            f"{found.root} has too few images for a test split: every class needs "
            "at least 2 images (or give a test/ folder)."
        )
    if not result.files["train"]:
        raise DatasetError(f"{found.root} has no training images.")
    return result


def _rank(seed, path) -> str:
    return hashlib.sha256(f"{seed}:{path}".encode()).hexdigest()


def _share(count: int, fraction: float) -> int:
    """Images of `count` that `fraction` takes: rounded, at least 1 and at most
    count - 1 when count >= 2, none when fraction is 0."""
    if fraction <= 0 or count < 2:
        return 0
    return min(count - 1, max(1, math.floor(count * fraction + 0.5 + 1e-9)))


def _notes(result, found) -> tuple[str, ...]:
    totals = collections.Counter(image.label for image in found.images)
    wanted = [
        split
        for split in SPLITS
        if split != "validation" or result.validation_fraction > 0
    ]
    notes = []
    for split in wanted:
        counts = result.class_counts(split)
        missing = [
            f"{name!r} ({totals[label]} images)"
            for label, name in enumerate(result.class_names)
            if counts[label] == 0
        ]
        if missing:
            notes.append(
                f"no {split} images of class(es) {', '.join(missing)}: a class needs "
                "3 images or more to be in every split"
            )
    if found.ignored:
        notes.append(
            f"{len(found.ignored)} file(s) without an image suffix "
            f"({', '.join(IMAGE_SUFFIXES)}) ignored, e.g. {found.ignored[0]}"
        )
    return tuple(notes)


def _check_fraction(name, value, allow_zero):
    low_ok = value >= 0 if allow_zero else value > 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        low_ok = False
    if not (low_ok and value < 1):
        bounds = "[0, 1)" if allow_zero else "(0, 1)"
        raise DatasetError(f"{name} must be in {bounds}. Received: {name}={value!r}")


def parse_split(split: str, validation_fraction: float) -> tuple[str, float]:
    """A `load` split name for a folder -> (split, validation fraction).

    `"train"`, `"validation"`, `"test"`; and, as tfds slices them, `"train[:P%]"`
    and `"train[P%:]"`: the training and validation splits with a validation
    fraction of (100 - P) %, so code written for tfds datasets works on folders.
    """
    if split in SPLITS:
        return split, validation_fraction
    match = _SLICE.match(split) if isinstance(split, str) else None
    if match and bool(match.group(1)) != bool(match.group(3)):
        percent = int(match.group(2))
        if 0 < percent < 100:
            which = "train" if match.group(1) else "validation"
            return which, (100 - percent) / 100
    raise DatasetError(
        f"split must be one of {sorted(SPLITS)} (or 'train[:P%]' / 'train[P%:]') for "
        f"an image directory. Received: split={split!r}"
    )


# Saved splits (split.json in a run directory)


def read_split(path, root) -> FolderSplit:
    """The split saved in `path` (a `split.json`), checked against the folder.

    Raises:
        DatasetError: the file is damaged, or the folder no longer has its classes
            or files.
        UnreadableImagesError: some image of the folder cannot be decoded.
    """
    path = Path(path)
    try:
        saved = json.loads(path.read_text())
        class_names = tuple(saved["class_names"])
        files = {
            split: tuple(sorted((str(p), int(label)) for p, label in saved[split]))
            for split in SPLITS
        }
        parameters = {
            "seed": int(saved["seed"]),
            "validation_fraction": float(saved["validation_fraction"]),
            "test_fraction": float(saved["test_fraction"]),
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(
            f"{path} is damaged ({type(error).__name__}: {_one_line(error)}); delete "
            "it to split the folder afresh (a run's test split would change)."
        ) from None
    found = scan(root)
    found.check_readable()
    if class_names != found.class_names:
        raise DatasetError(
            f"{path} was made for the classes {list(class_names)}, but {found.root} "
            f"has {list(found.class_names)}. Use the folder the run was trained on."
        )
    present = {image.path for image in found.images}
    listed = [p for split in SPLITS for p, _ in files[split]]
    missing = [p for p in listed if p not in present]
    if missing:
        raise DatasetError(
            f"{len(missing)} image(s) of the split in {path} are no longer in "
            f"{found.root} (e.g. {missing[0]}). Restore them, or start a new run."
        )
    wanted = set(listed)
    records = [image for image in found.images if image.path in wanted]
    result = FolderSplit(
        root=found.root,
        layout=found.layout,
        class_names=class_names,
        files=files,
        image_shape=image_shape(records),
        uniform=_uniform(records),
        notes=tuple(saved.get("notes", ())),
        **parameters,
    )
    added = len(present) - len(wanted)
    if added > 0:
        note = f"{added} image(s) added to the folder since the split was made: unused"
        result = dataclasses.replace(result, notes=(*result.notes, note))
    return result


def split_root(path) -> Path | None:
    """The folder a saved split was made of, or None when the file is damaged."""
    try:
        return Path(json.loads(Path(path).read_text())["root"]).resolve()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def saved_or_new_split(
    root,
    run_dir,
    *,
    validation_fraction: float = VALIDATION_FRACTION,
    test_fraction: float = TEST_FRACTION,
    seed: int = SPLIT_SEED,
    reuse: bool = True,
) -> tuple[FolderSplit, bool]:
    """The split of a run: `run_dir/split.json` when it exists (and `reuse`), else a
    new one. Returns `(split, whether it was read)`.

    Raises:
        DatasetError: the saved split was made with other fractions or seed (a
            resumed run must see the same data), or does not fit the folder.
    """
    path = Path(run_dir) / SPLIT_FILE
    if not (reuse and path.is_file()):
        fresh = split_folder(
            root,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=seed,
        )
        return fresh, False
    saved = read_split(path, root)
    asked = (float(validation_fraction), float(test_fraction), int(seed))
    made = (saved.validation_fraction, saved.test_fraction, saved.seed)
    if asked != made:
        raise DatasetError(
            f"{path} was made with validation fraction {made[0]}, test fraction "
            f"{made[1]} and seed {made[2]}, not {asked[0]}, {asked[1]} and "
            f"{asked[2]}: a resumed run must see the same data. Re-run with "
            f"--validation-split {made[0]}, or start afresh (--overwrite)."
        )
    return saved, True


def fitting_batch(num_examples: int, global_batch: int, replicas: int = 1) -> int:
    """The largest global batch of at most `global_batch` that a training split of
    `num_examples` fills, in whole examples per replica.

    Raises:
        DatasetError: fewer examples than replicas.
    """
    if num_examples >= global_batch:
        return global_batch
    batch = (num_examples // replicas) * replicas
    if batch < 1:
        raise DatasetError(
            f"the training split has {num_examples} image(s), fewer than the "
            f"{replicas} replicas; add images or use fewer --devices."
        )
    return batch
