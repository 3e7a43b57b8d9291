"""apps.runtime: TensorFlow's settings are in place before TensorFlow loads."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

# Records the environment at the moment `tensorflow` is first imported, then asks
# TensorFlow whether its oneDNN kernels are on.
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
    from tensorflow.python.util import _pywrap_util_port

    print(json.dumps({"at_import": seen.get("onednn"),
                      "onednn_on": bool(_pywrap_util_port.IsMklEnabled())}))
    """
)


def _probe(**env):
    environment = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, {"at_import": "1", "onednn_on": True}),  # our default, set in time
        # The user's choice wins (TensorFlow read it: the kernels are off).
        ({"TF_ENABLE_ONEDNN_OPTS": "0"}, {"at_import": "0", "onednn_on": False}),
    ],
)
def test_onednn_is_set_before_tensorflow_loads(env, expected):
    assert _probe(**env) == expected


def test_apply_defaults_keeps_the_users_value(monkeypatch):
    from apps import runtime

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert runtime.apply_defaults() == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    assert runtime.apply_defaults() == {"TF_ENABLE_ONEDNN_OPTS": "1"}
