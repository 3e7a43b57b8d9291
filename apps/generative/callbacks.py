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


def image_grid(images, columns=None) -> np.ndarray:
    """Tiles uint8 images ``(N, H, W, C)`` into one ``(rows*H, columns*W, C)`` image,
    with a 1-pixel gap (black)."""
    images = np.asarray(images)
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros(
        (rows * (height + 1) - 1, columns * (width + 1) - 1, channels), images.dtype
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * (height + 1), column * (width + 1)
        grid[top : top + height, left : left + width] = image
    return grid


def save_grid(images, path, columns=None) -> Path:
    """Writes [-1, 1] float or uint8 images as one PNG grid; returns the path."""
    from PIL import Image

    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = to_uint8(images)
    grid = image_grid(images, columns)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode_image = grid[..., 0] if grid.shape[-1] == 1 else grid
    temporary = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(mode_image).save(temporary)
    temporary.replace(path)
    return path


class SampleGrid(keras.callbacks.Callback):
    """Writes ``directory/epoch_NNN.png`` after every epoch from a fixed latent batch.

    The same z (drawn from `seed`) every epoch, so the grids show how the same
    samples evolve. Conditional GANs get the classes in turn (one class per
    column when `n` is a multiple of the classes).
    """

    def __init__(self, directory, n=64, seed=0):
        super().__init__()
        self.directory = Path(directory)
        self.n = n
        self.seed = seed

    def on_epoch_end(self, epoch, logs=None):
        gan = self.model
        images = gan.generate(self.n, seed=self.seed)
        columns = gan.num_classes if gan.conditional else None
        save_grid(images, self.directory / f"epoch_{epoch + 1:03d}.png", columns)


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
