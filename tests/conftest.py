"""Shared test set-up: quiet TensorFlow, one tfds data dir per test session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tfds_data_dir(tmp_path_factory):
    """A tfds data dir for the session; Fashion-MNIST is prepared into it once."""
    return str(tmp_path_factory.mktemp("tensorflow_datasets"))


@pytest.fixture(scope="session")
def fashion_mnist(tfds_data_dir):
    """The real Fashion-MNIST, prepared offline from the Debian IDX files."""
    from apps.data import datasets

    if datasets.local_idx_dir("fashion_mnist") is None:
        pytest.fail(
            "Fashion-MNIST IDX files are missing: apt-get install "
            "dataset-fashion-mnist (.ci/run does) or set FASHION_MNIST_DIR."
        )
    return datasets.describe("fashion_mnist", data_dir=tfds_data_dir)
