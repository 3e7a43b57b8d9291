"""Shared test set-up: quiet TensorFlow, one tfds data dir per test session.

TFDS_DATA_DIR is read when tensorflow_datasets is imported, so it is set here, before
any test module imports it: every test (and every command a test runs in-process)
prepares and reads datasets in this session's own directory, never the user's.
"""

import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_DATA_DIR = tempfile.mkdtemp(prefix="tfds-tests-")
os.environ["TFDS_DATA_DIR"] = _DATA_DIR

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tfds_data_dir():
    """The session's tfds data dir (also TFDS_DATA_DIR); removed at the end."""
    yield _DATA_DIR
    shutil.rmtree(_DATA_DIR, ignore_errors=True)


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


@pytest.fixture(autouse=True)
def _float32_policy_restored():
    """A test that trains in-process with mixed precision sets Keras's global
    dtype policy; every other test must see float32 again."""
    yield
    import sys

    keras = sys.modules.get("keras")
    if keras is not None and keras.mixed_precision.global_policy().name != "float32":
        keras.mixed_precision.set_global_policy("float32")
