"""Keras Tuner's chief/worker mode: a chief and two workers on loopback, one DIR.

The workers are `python -m tuning search` processes; the chief runs the same
command's `main` in a thread of the test process (it trains nothing, and this saves
a TensorFlow start on a 2-core machine).
"""

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
from tiny import tiny_flags

from tuning import search as search_lib
from tuning.__main__ import main

SEARCH = [sys.executable, "-m", "tuning", "search", "--model", "mlp"]
SEARCH += tiny_flags(validation_split=0.9, max_trials=2)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(tuner_id, port):
    return {
        "KERASTUNER_TUNER_ID": tuner_id,
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(port),
    }


def _start_worker(tuner_id, port, output):
    return subprocess.Popen(
        [*SEARCH, "--output", str(output)],
        env={**os.environ, **_environment(tuner_id, port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _start_chief(port, output, monkeypatch):
    for name, value in _environment("chief", port).items():
        monkeypatch.setenv(name, value)
    result = {"output": io.StringIO()}

    def serve():
        with contextlib.redirect_stdout(result["output"]):
            result["code"] = main([*SEARCH[3:], "--output", str(output)])

    chief = threading.Thread(target=serve, daemon=True)
    chief.start()
    return chief, result


# Slow (3 processes, ~37 s of a worker): the quick suite keeps the chief's protocol
# in-process (test_oracles: serving, stopping after the last worker, trials finished
# across a chief restart) and the multi-process search in test_tuning_resume.
@pytest.mark.slow
def test_a_chief_and_two_workers_share_one_search(fashion_mnist, tmp_path, monkeypatch):
    port = _free_port()
    chief, result = _start_chief(port, tmp_path, monkeypatch)
    workers = {
        name: _start_worker(name, port, tmp_path) for name in ("tuner0", "tuner1")
    }
    outputs = {}
    try:
        for name, process in workers.items():
            outputs[name] = process.communicate(timeout=300)[0]
        chief.join(timeout=60)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()
    for name, process in workers.items():
        assert process.returncode == 0, f"{name}:\n{outputs[name][-3000:]}"
        assert f"worker {name} done" in outputs[name]
    assert not chief.is_alive(), "the chief did not stop after the search"
    chief_output = result["output"].getvalue()
    assert result["code"] == 0, chief_output[-3000:]
    assert "serving the oracle on 127.0.0.1" in chief_output
    assert "2 trial(s): 2 COMPLETED" in chief_output
    rows = search_lib.collect_trials(tmp_path)
    assert [row["status"] for row in rows] == ["COMPLETED"] * 2
    assert (
        len({json.dumps(row["hyperparameters"], sort_keys=True) for row in rows}) == 2
    )
    # The workers trained every trial; the chief none.
    assert {row["tuner_id"] for row in rows} <= {"tuner0", "tuner1"}
    assert (tmp_path / "best_model.keras").is_file()
    assert (tmp_path / "best_hyperparameters.json").is_file()


@pytest.mark.slow
def test_trials_train_on_two_mirrored_replicas(fashion_mnist, tmp_path):
    command = [*SEARCH, "--strategy", "mirrored", "--devices", "2"]
    finished = subprocess.run(
        [*command, "--output", str(tmp_path)], capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    record = json.loads((tmp_path / "search.json").read_text())
    assert (record["strategy"], record["replicas"]) == ("MirroredStrategy", 2)
    rows = search_lib.collect_trials(tmp_path)
    assert [row["status"] for row in rows] == ["COMPLETED"] * 2
