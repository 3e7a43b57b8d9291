"""Callbacks of a GAN run: a sample grid per epoch and the quality figures.

Both run between epochs, outside the training step, and use the generator in
inference mode: they do not change the training state (a run with them trains
exactly as one without).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from apps.generative.gan import to_uint8

GRID_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
MIN_CELL = 64  # pixels: smaller images are enlarged (nearest) to be seen at all
GAP = 2  # pixels between images (black)


def image_grid(images, columns=None, scale=1, gap=GAP) -> np.ndarray:
    """Tiles uint8 images ``(N, H, W, C)`` into one image, each enlarged `scale`
    times (nearest neighbour), `gap` black pixels apart: ``(rows*(H*scale+gap) -
    gap, columns*(W*scale+gap) - gap, C)``."""
    images = np.asarray(images)
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros(
        (rows * (height + gap) - gap, columns * (width + gap) - gap, channels),
        images.dtype,
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        grid[top : top + height, left : left + width] = image
    return grid


def grid_scale(height, width) -> int:
    """How many times a grid enlarges ``height x width`` images: at least
    `MIN_CELL` pixels a side (a 28x28 image: 3 times, 84 pixels)."""
    return max(1, math.ceil(MIN_CELL / min(height, width)))


def grid_format(path) -> str:
    """The image format a grid file's suffix names (PNG or JPEG).

    Raises:
        ValueError: another suffix, or a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"--output {path} is a directory; give the image file to write, e.g. "
            f"{path / 'grid.png'}."
        )
    image_format = GRID_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise ValueError(
            f"--output {path}: a grid is written as PNG or JPEG, so the name must "
            f"end in one of {sorted(GRID_FORMATS)}. Received: {path.suffix!r}"
        )
    return image_format


def save_grid(images, path, columns=None, labels=None) -> Path:
    """Writes [-1, 1] float or uint8 images as one grid, PNG or JPEG by the
    suffix of `path` (`grid_format`), each image at least `MIN_CELL` pixels a
    side; returns the path.

    `labels` (one string per image, e.g. class names) are written above each
    column when every column holds one label, else under each image. The file
    is written whole or not at all (a temporary file, then renamed).
    """
    from PIL import Image

    image_format = grid_format(path)
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = to_uint8(images)
    columns = columns or math.ceil(math.sqrt(len(images)))
    scale = grid_scale(*images.shape[1:3])
    picture = Image.fromarray(_squeeze(image_grid(images, columns, scale)))
    if labels is not None:
        cell = (images.shape[2] * scale, images.shape[1] * scale)
        picture = _label(picture, list(labels), columns, cell)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        picture.save(temporary, format=image_format)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _squeeze(grid):
    return grid[..., 0] if grid.shape[-1] == 1 else grid


def _label(picture, labels, columns, cell):
    """`picture` (a grid of `cell`-sized images) with `labels` written in: a
    header row when every column holds one label, else a caption under each."""
    from PIL import Image, ImageDraw, ImageFont

    cell_width, cell_height = cell
    font = ImageFont.load_default(size=max(10, cell_height // 7))
    line = font.getbbox("Ag")[3] + 4
    by_column = [labels[column::columns] for column in range(columns)]
    if all(len(set(texts)) == 1 for texts in by_column if texts):
        labelled = Image.new(picture.mode, (picture.width, picture.height + line))
        labelled.paste(picture, (0, line))
        places = [
            (column, 0, texts[0]) for column, texts in enumerate(by_column) if texts
        ]
    else:  # a caption band under every row of images
        rows = math.ceil(len(labels) / columns)
        pitch = cell_height + GAP
        labelled = Image.new(picture.mode, (picture.width, rows * (pitch + line) - GAP))
        for row in range(rows):
            strip = picture.crop(
                (0, row * pitch, picture.width, row * pitch + cell_height)
            )
            labelled.paste(strip, (0, row * (pitch + line)))
        places = [
            (index % columns, (index // columns) * (pitch + line) + cell_height, text)
            for index, text in enumerate(labels)
        ]
    draw = ImageDraw.Draw(labelled)
    white = 255 if picture.mode == "L" else (255,) * len(picture.mode)
    for column, top, text in places:
        text = _fit(draw, font, text, cell_width)
        left = column * (cell_width + GAP)
        left += (cell_width - draw.textlength(text, font=font)) / 2
        draw.text((left, top + 2), text, fill=white, font=font)
    return labelled


def _fit(draw, font, text, width):
    """`text`, cut short (ending in "..") until it fits in `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text.rstrip() + ".." if text else ""


class SampleGrid(keras.callbacks.Callback):
    """Writes ``directory/epoch_NNN.png`` after every epoch from a fixed latent batch.

    The same z (drawn from `seed`) every epoch, so the grids show how the same
    samples evolve. Conditional GANs get the classes in turn (one class per
    column when `n` is a multiple of the classes), each column headed with its
    class name (`class_names`, or "class N").
    """

    def __init__(self, directory, n=64, seed=0, class_names=None):
        super().__init__()
        self.directory = Path(directory)
        self.n = n
        self.seed = seed
        self.class_names = class_names

    def on_epoch_end(self, epoch, logs=None):
        gan = self.model
        images = gan.generate(self.n, seed=self.seed)
        columns = gan.num_classes if gan.conditional else None
        labels = class_labels(gan, gan.sample_labels(self.n), self.class_names)
        path = self.directory / f"epoch_{epoch + 1:03d}.png"
        save_grid(images, path, columns, labels)


def class_labels(gan, labels, class_names=None) -> list[str] | None:
    """The names of a conditional GAN's sample `labels` (ints) for a grid:
    `class_names` (the dataset's, in class order), else "class N"; None for an
    unconditional GAN."""
    if labels is None or not gan.conditional:
        return None
    names = list(class_names or [])
    if len(names) != gan.num_classes:
        names = [f"class {index}" for index in range(gan.num_classes)]
    return [names[int(label)] for label in labels]


# What QualityMonitor puts into the logs of *every* epoch, NaN where it did not
# measure: Keras's CSVLogger fixes its columns from the first epoch's logs, so a
# figure missing then never reaches history.csv, and `training.best_so_far` (the
# best FID of earlier sessions, from history.csv) cannot protect best.keras.
LOGGED_FIGURES = (
    "fid",
    "inception_score",
    "class_coverage",
    "class_entropy",
    "max_class_share",
    "quality_seconds",
)


class QualityMonitor(keras.callbacks.Callback):
    """Measures FID, IS and class coverage after epochs; keeps a record.

    It measures after the first epoch, every `every`-th epoch and the last. The
    first is always measured because Keras's ModelCheckpoint takes the first
    value it sees as its best when it has none yet (a new run): a NaN there
    would be a best that no FID ever beats, and best.keras would stay epoch 1's.

    The records go to `path` (JSON, keyed by epoch: a resumed run overwrites the
    epochs it repeats) and, as `LOGGED_FIGURES`, into every epoch's `logs` for
    the callbacks after it (the best checkpoint, history.csv, TensorBoard): the
    figures where it measured, NaN where it did not (`training.read_history`
    reads NaN as missing). Which epochs are measured depends only on the epoch,
    so a resumed run measures those the uninterrupted run would have, and every
    worker of a multi-worker run takes part in the same measurements.

    Args:
        evaluator: a `quality.QualityEvaluator`.
        path: the JSON file of the records (e.g. ``run_dir/quality.json``), or
            ``None`` to measure without writing (multi-worker: all workers take
            part in the measurement, the chief writes).
        every: measure every `every` epochs (and always after the first and the
            last).
    """

    def __init__(self, evaluator, path, every=1):
        super().__init__()
        self.evaluator = evaluator
        self.path = None if path is None else Path(path)
        self.every = every
        self.records = {} if self.path is None else read_quality(self.path)

    def measures(self, epoch) -> bool:
        """Whether the epoch of 0-based index `epoch` is measured."""
        last = epoch + 1 == self.params.get("epochs")
        return epoch == 0 or (epoch + 1) % self.every == 0 or last

    def on_epoch_end(self, epoch, logs=None):
        if not self.measures(epoch):
            if logs is not None:
                logs.update(dict.fromkeys(LOGGED_FIGURES, math.nan))
            return
        started = time.perf_counter()
        figures = self.evaluator.evaluate(self.model)
        figures["quality_seconds"] = round(time.perf_counter() - started, 3)
        self.records[str(epoch + 1)] = {"epoch": epoch + 1, **figures}
        if logs is not None:
            logs.update({key: figures[key] for key in LOGGED_FIGURES})
        if self.path is None:
            return
        from apps.training import write_json

        write_json(self.path, self.records)
        print(
            f"epoch {epoch + 1}: FID {figures['fid']:.3f}, IS "
            f"{figures['inception_score']:.3f}, classes covered "
            f"{figures['class_coverage']:.0%}",
            flush=True,
        )


def read_quality(path) -> dict:
    """The quality records of a run, keyed by epoch ("1", "2", ...)."""
    path = Path(path)
    if not path.is_file():
        return {}
    return json.loads(path.read_text())
