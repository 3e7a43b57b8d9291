"""Metrics files and plots: what a run leaves for a person to read or look at."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1)
    return np.divide(
        np.diag(matrix), totals, out=np.zeros(len(matrix)), where=totals > 0
    )


def plot_learning_curves(history: dict[str, list[float]], path) -> Path:
    """Loss and accuracy per epoch, training and validation side by side."""
    path = Path(path)
    panels = [key for key in ("loss", "accuracy") if key in history]
    figure, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 4)
    )
    axes = np.atleast_1d(axes)
    for axis, key in zip(axes, panels, strict=False):
        epochs = np.arange(1, len(history[key]) + 1)
        axis.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        axis.set(xlabel="epoch", ylabel=key, title=key)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_confusion_matrix(matrix: np.ndarray, class_names, path) -> Path:
    """The confusion matrix as a heat map, row-normalised, with counts in the cells."""
    path = Path(path)
    size = max(5, 0.6 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set(xlabel="predicted", ylabel="true", title="Confusion matrix (test)")
    if len(class_names) <= 20:
        for row in range(len(class_names)):
            for column in range(len(class_names)):
                colour = "white" if shares[row, column] > 0.5 else "black"
                axis.text(
                    column,
                    row,
                    matrix[row, column],
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def format_per_class(class_names, accuracies) -> str:
    """A small aligned table, one class a line."""
    width = max(len(name) for name in class_names)
    return "\n".join(
        f"  {name:<{width}}  {accuracy:6.2%}"
        for name, accuracy in zip(class_names, accuracies, strict=True)
    )
