"""Shared fixtures of the GAN tests: a tiny cached quality classifier."""

import pytest


@pytest.fixture(scope="session")
def classifier_cache(fashion_mnist, tmp_path_factory):
    """A cache root holding a tiny LeNet-5 quality classifier for Fashion-MNIST.

    Trained in-process by `python -m apps.classify train` (1 epoch of 30 steps):
    the real one trains for 3 full epochs on first use; the tests need its
    plumbing, not its accuracy.
    """
    from apps.generative import quality

    root = tmp_path_factory.mktemp("keras-classics-cache")
    quality.ensure_classifier(
        "fashion_mnist", root=root, epochs=1, steps_per_epoch=30, in_process=True
    )
    return root


@pytest.fixture(autouse=True)
def _no_user_cache(monkeypatch, tmp_path):
    """No test trains a classifier into the user's ~/.cache by accident."""
    monkeypatch.setenv("KERAS_CLASSICS_CACHE", str(tmp_path / "cache"))
