"""apps.runtime: TensorFlow's settings are in place before TensorFlow loads."""

import functools
import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from apps import runtime

# Records the environment at the moment `tensorflow` is first imported, then asks
# TensorFlow whether its oneDNN kernels are on; lists the devices (where a CPU machine
# logged cuInit's failure) and writes a line of ours to stderr.
PROBE = textwrap.dedent(
    """
    import importlib.abc, json, os, sys

    seen = {}

    class Watch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" and not seen:
                seen["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
            return None

    sys.meta_path.insert(0, Watch())
    import apps
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    tf.config.list_physical_devices()
    print("our own message", file=sys.stderr)
    print(json.dumps({"at_import": seen.get("onednn"),
                      "onednn_on": bool(_pywrap_util_port.IsMklEnabled())}))
    """
)
SETTINGS = ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL", "APPS_VERBOSE")


@functools.cache
def _run_probe(env: tuple) -> tuple[dict, str]:
    environment = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def _probe(**env) -> tuple[dict, str]:
    """(what PROBE printed, its stderr), once per environment."""
    return _run_probe(tuple(sorted(env.items())))


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, {"at_import": "1", "onednn_on": True}),  # our default, set in time
        # The user's choice wins (TensorFlow read it: the kernels are off).
        ({"TF_ENABLE_ONEDNN_OPTS": "0"}, {"at_import": "0", "onednn_on": False}),
    ],
)
def test_onednn_is_set_before_tensorflow_loads(env, expected):
    assert _probe(**env)[0] == expected


def test_apply_defaults_keeps_the_users_value(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert runtime.apply_defaults() == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    assert runtime.apply_defaults() == {"TF_ENABLE_ONEDNN_OPTS": "1"}


# TensorFlow's start-up lines: held back by default, back with APPS_VERBOSE=1.
TENSORFLOW_LINES = (
    "absl::InitializeLog",
    "oneDNN custom operations",
    "This TensorFlow binary is optimized",
    "cuInit",
    "Could not find cuda drivers",
)


def test_tensorflow_start_up_lines_are_held_back_unless_verbose():
    _, quiet = _probe()  # the run of the oneDNN test above
    assert [line for line in TENSORFLOW_LINES if line in quiet] == []
    assert quiet.strip() == "our own message"
    _, verbose = _probe(APPS_VERBOSE="1")
    assert "oneDNN custom operations are on" in verbose
    assert "our own message" in verbose


ABSL = b"WARNING: All log messages before absl::InitializeLog() is called are written"
INFO = b"I0000 00:00:1796173941.195551    4500 port.cc:153] oneDNN custom operations"
ERROR = (
    b"E0000 00:00:1796173977.170228    4622 cuda_platform.cc:52] failed call to cuInit"
)
GUARD = b"I0000 00:00:1796173961.903076    4622 cpu_feature_guard.cc:227] This binary"
GUARD_2 = b"To enable the following instructions: AVX2 FMA, in other operations"
OURS = b"/x.py:3: UserWarning: something of ours"


def test_passed_lines_keeps_what_the_log_level_lets_through():
    text = b"\n".join([ABSL, INFO, GUARD, GUARD_2, OURS, ERROR, b"Traceback: x", b""])
    assert runtime.passed_lines(text, 0) == text
    assert runtime.passed_lines(text, 1) == b"\n".join(
        [OURS, ERROR, b"Traceback: x", b""]
    )
    assert runtime.passed_lines(text, 3) == OURS + b"\nTraceback: x\n"


def test_only_the_grouped_convolution_retracing_warning_is_dropped():
    def record(message):
        return logging.LogRecord(
            "tensorflow", logging.WARNING, "", 0, message, (), None
        )

    keep = runtime._GroupedConvRetracing().filter
    assert not keep(
        record(
            "5 out of the last 5 calls to <function conv.<locals>._conv_xla at 0x7f> "
            "triggered tf.function retracing. Tracing is expensive"
        )
    )
    assert keep(
        record(
            "6 out of the last 6 calls to <function step> triggered "
            "tf.function retracing."
        )
    )
    assert keep(record("something else about _conv_xla"))
