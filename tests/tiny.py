"""The smallest real training run the tests give a command, as flags.

    from tiny import tiny_flags
    argv = ["train", "--model", "lenet5", *tiny_flags(output=tmp_path)]

Two steps of 16 real Fashion-MNIST images, one evaluation batch, seed 0: enough to
run every stage of a command (data, build, fit, evaluate, save) in seconds.
(tests/ is on ``sys.path`` because it holds the root conftest.py.)
"""

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
