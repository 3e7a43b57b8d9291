"""The smallest real training run the tests give a command, as flags.

    from tiny import tiny_flags
    argv = ["train", "--model", "lenet5", *tiny_flags(output=tmp_path)]

Two steps of 16 real Fashion-MNIST images, one evaluation batch, seed 0: enough to
run every stage of a command (data, build, fit, evaluate, save) in seconds.
(tests/ is on ``sys.path`` because it holds the root conftest.py.)
"""

import json

from apps.cli import as_flags

TINY = {
    "dataset": "fashion_mnist",
    "epochs": 1,
    "steps_per_epoch": 2,
    "eval_steps": 1,
    "batch_size": 16,
    "seed": 0,
}


def tiny_flags(**overrides) -> list[str]:
    """The tiny run's flags, with ``overrides`` (a value of None drops a flag; see
    :func:`apps.cli.as_flags` for switches and repeated flags)."""
    return as_flags(**{**TINY, **overrides})


def preprocessing_spec(class_names) -> dict:
    """The preprocessing.json of a LeNet-5 trained on Fashion-MNIST, for the tests
    that export a model built (not trained) in the test."""
    return {
        "input_shape": [28, 28, 1],
        "channels": 1,
        "resize_mode": "resize",
        "normalization": "unit",
        "class_names": class_names,
        "dataset": "fashion_mnist",
        "model": "lenet5",
    }


def finished_run(run_dir, files: str, metric_keys: str) -> dict:
    """Checks a finished run directory: every one of ``files`` (space-separated paths)
    is there, no resumable state is left, and metrics.json has every one of
    ``metric_keys``; returns the metrics."""
    missing = [name for name in files.split() if not (run_dir / name).is_file()]
    assert missing == [], f"{run_dir} lacks {missing}"
    assert not (run_dir / "state").exists()  # a finished run keeps no state
    metrics = json.loads((run_dir / "metrics.json").read_text())
    absent = [key for key in metric_keys.split() if key not in metrics]
    assert absent == [], f"metrics.json lacks {absent}"
    return metrics
