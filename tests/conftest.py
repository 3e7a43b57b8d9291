"""Shared test set-up: quiet TensorFlow, one tfds data dir per test run.

TFDS_DATA_DIR is read when tensorflow_datasets is imported, so it is set here, before
any test module imports it: every test (and every command a test runs in-process)
prepares and reads datasets in this run's own directory, never the user's.

Under pytest-xdist (``make test`` runs two workers) the controller makes the
directory and its workers inherit it through the environment, so Fashion-MNIST is
prepared once per run (under a lock), not once per worker; the process that made the
directory removes it when it ends.
"""

import fcntl
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_SHARED = "APPS_TESTS_TFDS_DATA_DIR"
if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get(_SHARED):
    _DATA_DIR, _OWNER = os.environ[_SHARED], False
else:
    _DATA_DIR, _OWNER = tempfile.mkdtemp(prefix="tfds-tests-"), True
    os.environ[_SHARED] = _DATA_DIR
os.environ["TFDS_DATA_DIR"] = _DATA_DIR
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # The workers share the cores: each runs an op on its share of them (TensorFlow's
    # intra-op pool defaults to every core, so two workers oversubscribed a 2-core
    # machine). Commands a test starts inherit it. The inter-op pool stays: replicas
    # of a MirroredStrategy step must run side by side.
    _SHARE = max(1, os.cpu_count() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(_SHARE))

import pytest  # noqa: E402


def pytest_unconfigure(config):
    if _OWNER:
        shutil.rmtree(_DATA_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tfds_data_dir():
    """The run's tfds data dir (also TFDS_DATA_DIR), shared by xdist's workers."""
    return _DATA_DIR


@pytest.fixture(scope="session")
def fashion_mnist(tfds_data_dir):
    """The real Fashion-MNIST, prepared offline from the Debian IDX files (by the
    first worker that asks; the other waits on the lock and finds it prepared)."""
    from apps.data import datasets

    if datasets.local_idx_dir("fashion_mnist") is None:
        pytest.fail(
            "Fashion-MNIST IDX files are missing: apt-get install "
            "dataset-fashion-mnist (.ci/run does) or set FASHION_MNIST_DIR."
        )
    with open(os.path.join(tfds_data_dir, ".prepare.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
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
