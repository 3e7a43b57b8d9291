"""TensorFlow settings the suite applies before TensorFlow initialises.

`apps/__init__` imports this module before anything imports TensorFlow, because
TensorFlow reads these environment variables once, when it loads. A value the user
has set is kept. Measured on a 2-core AVX-512 CPU (`benchmarks/tf_cpu_settings.py`,
README "Performance"):

- ``TF_ENABLE_ONEDNN_OPTS=1``: TensorFlow's oneDNN CPU kernels. TensorFlow turns them
  on by itself only on CPUs with AVX512-VNNI, AVX512-BF16, AVX-VNNI or AMX (so not on
  AVX2-only CPUs); turning them off here made LeNet-5 training 2.5x slower
  (0.40x) and ResNet-18 2.2x slower (0.45x).

Left at TensorFlow's defaults, because changing them measured within noise or worse:
the thread pools (intra-op = inter-op = the number of cores), XLA (``--jit``: 0.41x
and 0.43x on this CPU) and tf.data's private thread pool.

TensorFlow's own log lines are held back by default (:func:`quiet_tensorflow`);
``APPS_VERBOSE=1`` brings them all back, and a ``TF_CPP_MIN_LOG_LEVEL`` the user set
is obeyed. On a CPU machine every command used to print, none of them a problem:

- twice while TensorFlow loads (two of its libraries each log before they read
  TF_CPP_MIN_LOG_LEVEL): absl's ``WARNING: All log messages before
  absl::InitializeLog() ...``, ``Could not find cuda drivers`` and ``oneDNN custom
  operations are on`` (our own TF_ENABLE_ONEDNN_OPTS=1). Held back while
  ``tensorflow`` is imported, then passed on if TF_CPP_MIN_LOG_LEVEL lets them through.
- ``E... failed call to cuInit: ... (303)`` when the devices are first listed: there
  is no NVIDIA driver to initialise.
- GAN training: ``E... meta_optimizer.cc] remapper failed: INVALID_ARGUMENT:
  Mutation::Apply error: fanout '.../LeakyReluGrad' exist for missing node
  '.../conv1/BiasAdd'``. A TensorFlow bug in Grappler's oneDNN remapper: it fuses
  Conv2D + BiasAdd + LeakyRelu although LeakyReluGrad still reads the BiasAdd
  output. Any training step of a biased convolution followed by LeakyReLU shows it
  with oneDNN on (the DCGAN discriminator's first layer, which has no BatchNorm);
  Grappler then keeps that graph unfused, so results are right.
- AlexNet: ``WARNING:tensorflow:5 out of the last 5 calls to <function
  conv.<locals>._conv_xla ...> triggered tf.function retracing``: Keras runs grouped
  convolutions on CPUs through XLA, with a new tf.function per call (eager calls).

Hence TF_CPP_MIN_LOG_LEVEL defaults to 3 (C++ errors too) where there is no NVIDIA
device, 2 (errors shown) where there is one; errors that matter reach Python as
exceptions, and those are always shown.
"""

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

DEFAULTS = {"TF_ENABLE_ONEDNN_OPTS": "1"}
VERBOSE = "APPS_VERBOSE"
LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"


def apply_defaults() -> dict[str, str]:
    """Sets each default the user has not set; returns the values now in effect."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in DEFAULTS}


def verbose() -> bool:
    """Whether APPS_VERBOSE asks for TensorFlow's own log lines (1, true, yes, on)."""
    return os.environ.get(VERBOSE, "").strip().lower() in ("1", "true", "yes", "on")


def quiet_tensorflow() -> str | None:
    """Holds back TensorFlow's start-up lines, unless APPS_VERBOSE is set.

    Sets TF_CPP_MIN_LOG_LEVEL unless the user did (see the module docstring), hides
    Keras's grouped-convolution retracing warnings and, if TensorFlow is not loaded
    yet, filters what it prints while it loads. Returns the log level in effect.
    """
    if verbose():
        return os.environ.get(LOG_LEVEL)
    os.environ.setdefault(LOG_LEVEL, "2" if _nvidia_device() else "3")
    tensorflow_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _GroupedConvRetracing) for f in tensorflow_logger.filters):
        tensorflow_logger.addFilter(_GroupedConvRetracing())
    if "tensorflow" not in sys.modules and not any(
        isinstance(finder, _QuietImport) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietImport())
    return os.environ[LOG_LEVEL]


def _nvidia_device() -> bool:
    return Path("/proc/driver/nvidia").exists() or any(
        Path("/dev").glob("nvidia[0-9]*")
    )


class _GroupedConvRetracing(logging.Filter):
    """Drops the retracing warnings of Keras's `conv.<locals>._conv_xla`."""

    def filter(self, record):
        message = record.getMessage()
        return not (
            "triggered tf.function retracing" in message and "_conv_xla" in message
        )


class _QuietImport(importlib.abc.MetaPathFinder):
    """Wraps the one import of `tensorflow` in :func:`held_back_stderr`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; and find the real spec without us
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, its `exec_module` run in :func:`held_back_stderr`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader  # as if unwrapped
        with held_back_stderr():
            self.loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


# absl's line prefix: severity, MMDD, time (seconds since the epoch before absl is
# initialised: "I0000 00:00:1796173941.195551"), thread id, file:line]
_LOG_RECORD = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+\] ")
_ABSL_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called"
_CONTINUATIONS = (b"To enable the following instructions:",)  # cpu_feature_guard
# LiteRT's own logger: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_LITERT_INFO = b"INFO: "
_SEVERITIES = b"IWEF"


@contextlib.contextmanager
def held_back_stderr():
    """Sends file descriptor 2 to a temporary file, then passes on what
    TF_CPP_MIN_LOG_LEVEL lets through (see :func:`passed_lines`)."""
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = passed_lines(held.read(), _min_log_level())
            while kept:
                kept = kept[os.write(2, kept) :]


def _flush_stderr():
    with contextlib.suppress(AttributeError, OSError, ValueError):  # none, closed
        sys.stderr.flush()


def passed_lines(text: bytes, min_level: int) -> bytes:
    """`text` without the log records below severity `min_level` (0 INFO, 1 WARNING,
    2 ERROR, 3 FATAL), their known continuation lines and, from level 1, absl's
    notice about logging before its initialisation and LiteRT's "INFO: " lines.
    Everything else is kept."""
    kept, dropped = [], False
    for line in text.splitlines(keepends=True):
        record = _LOG_RECORD.match(line)
        if record:
            dropped = _SEVERITIES.index(record.group(1)) < min_level
        elif line.startswith(_ABSL_NOTICE) or line.startswith(_LITERT_INFO):
            dropped = min_level >= 1
        else:
            dropped = dropped and line.startswith(_CONTINUATIONS)
        if not dropped:
            kept.append(line)
    return b"".join(kept)


def _min_log_level() -> int:
    try:
        return int(os.environ.get(LOG_LEVEL, "0"))
    except ValueError:
        return 0


apply_defaults()
quiet_tensorflow()
