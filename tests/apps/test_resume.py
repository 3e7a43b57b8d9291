"""Exact resumption after SIGKILL, damaged state, and multi-worker training.

Every run here is a real `python -m apps.classify train` process on Fashion-MNIST.
"""

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from tiny import tiny_flags

EPOCHS, STEPS = 3, 10
# A small ResNet: convolutions, Dropout's seed generator and BatchNorm, whose
# statistics pass after the last epoch must resume exactly too.
RUN = [
    "--model",
    "resnet",
    "--model-option",
    "block=basic",
    "--model-option",
    "blocks_per_stage=(1, 1)",
    "--model-option",
    "width=8",
    "--model-option",
    "small_inputs=True",
    "--bn-recalibration-steps",
    "20",
    "--dataset",
    "fashion_mnist",
    "--epochs",
    str(EPOCHS),
    "--steps-per-epoch",
    str(STEPS),
    "--batch-size",
    "32",
    "--seed",
    "0",
    "--dropout",
    "0.3",
    "--augment",
    "flip,crop",
    "--checkpoint-every",
    "3",
    "--eval-steps",
    "1",
]


def _command(output, *extra):
    return [
        sys.executable,
        "-m",
        "apps.classify",
        "train",
        *RUN,
        "--output",
        str(output),
        *extra,
    ]


def _run(output, *extra, env=None):
    return subprocess.run(
        _command(output, *extra),
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    ).stdout


def _weights_digest(output):
    model = keras.saving.load_model(output / "model.keras")
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest(), int(model.optimizer.iterations.numpy())


def _kill_after_snapshot(output, target_step, *extra):
    """Starts a run and SIGKILLs it once it has saved a state at >= target_step."""
    process = subprocess.Popen(
        _command(output, *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    state = output / "state"
    while time.time() < deadline and process.poll() is None:
        steps = _saved_steps(state)
        if steps and max(steps) >= target_step:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (output / "metrics.json").exists()


def _saved_steps(state):
    """Steps of the snapshots on disk now; the run prunes old ones as we look."""
    steps = []
    for path in state.glob("state-*.json") if state.exists() else []:
        try:
            steps.append(json.loads(path.read_text())["position"]["global_step"])
        except (OSError, ValueError):
            continue
    return steps


def _damage_latest(output, suffix):
    latest = sorted((output / "state").glob(f"state-*{suffix}"))[-1]
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])


@pytest.fixture(scope="module")
def reference(fashion_mnist, tmp_path_factory):
    output = tmp_path_factory.mktemp("uninterrupted")
    _run(output)
    return _weights_digest(output)


def _killed_and_resumed(tmp_path, seed, damage=None, *extra):
    output = tmp_path / f"killed-{seed}-{damage}"
    # Snapshots fall at steps 3, 6, 9, 10 (epoch end), 13, ...; 6+ leaves two of them.
    target = random.Random(seed).choice([6, 9, 10, 13, 16, 19, 20, 23])
    _kill_after_snapshot(output, target, *extra)
    if damage:
        _damage_latest(output, damage)
    _run(output, *extra)
    assert not (output / "state").exists()
    return _weights_digest(output)


def _rerun_is_exact(output, reference):
    """Re-runs the killed run to its end: the uninterrupted run's weights and
    BatchNorm statistics, its iterations, and no state left behind."""
    assert "BatchNorm statistics recomputed over 20 training batches" in _run(output)
    assert not (output / "state").exists()
    digest, iterations = _weights_digest(output)
    assert iterations == EPOCHS * STEPS
    assert digest == reference[0]


def test_sigkill_at_an_epoch_end_with_a_damaged_state_is_exact(reference, tmp_path):
    """The suite's quick case (3 processes): killed at an epoch's end, its latest
    state's npz truncated; the re-run goes back to the state before it and ends with
    the uninterrupted run's weights, BatchNorm statistics pass included. The slow
    tests below kill at random and repeated points."""
    output = tmp_path / "killed"
    _kill_after_snapshot(output, 10)
    _damage_latest(output, ".npz")
    _rerun_is_exact(output, reference)


@pytest.mark.slow
def test_three_sigkills_then_rerun_gives_identical_weights(reference, tmp_path):
    """Three kill points in one run: killed
    mid-epoch; re-run, killed at an epoch's end, its latest state's npz truncated;
    re-run (from the state before), killed, its latest state's json truncated;
    re-run, killed after the last epoch's state (in the BatchNorm statistics pass
    or the saving after it); re-run to the end."""
    output = tmp_path / "killed"
    kills = ((6, None), (10, ".npz"), (19, ".json"), (EPOCHS * STEPS, None))
    for target, damage in kills:
        _kill_after_snapshot(output, target)
        if damage:
            _damage_latest(output, damage)
    _rerun_is_exact(output, reference)


@pytest.mark.slow
@pytest.mark.parametrize("damage", [None, ".npz", ".json"])
def test_sigkill_then_rerun_gives_identical_weights(reference, tmp_path, damage):
    digest, iterations = _killed_and_resumed(
        tmp_path, seed=hash(damage) % 1000, damage=damage
    )
    assert iterations == EPOCHS * STEPS
    assert digest == reference[0]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_sigkill_at_ten_random_points(reference, tmp_path, seed):
    assert _killed_and_resumed(tmp_path, seed) == reference


@pytest.mark.slow
def test_sigkill_on_two_mirrored_cpus_is_exact_too(fashion_mnist, tmp_path):
    mirrored = ("--strategy", "mirrored", "--devices", "2", "--batch-size", "16")
    straight = tmp_path / "straight"
    _run(straight, *mirrored)
    resumed = _killed_and_resumed(tmp_path, 3, None, *mirrored)
    assert resumed == _weights_digest(straight)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_match_one_process(fashion_mnist, tmp_path):
    run = {"steps_per_epoch": 6, "validation_split": 0}
    common = ["--model", "lenet5", *tiny_flags(**run)]
    cluster = [f"localhost:{port}" for port in _free_ports(2)]
    workers = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(
                {
                    "cluster": {"worker": cluster},
                    "task": {"type": "worker", "index": index},
                }
            ),
        )
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "apps.classify",
                    "train",
                    *common,
                    "--output",
                    str(tmp_path / "multi"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert "worker done" in outputs[1]
    single = tmp_path / "single"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "apps.classify",
            "train",
            "--model",
            "lenet5",
            *tiny_flags(**run, batch_size=32),  # the global batch of the two
            "--output",
            str(single),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    multi = json.loads((tmp_path / "multi" / "metrics.json").read_text())
    one = json.loads((single / "metrics.json").read_text())
    assert multi["replicas"] == 2 and one["replicas"] == 1
    assert multi["global_batch_size"] == one["global_batch_size"] == 32
    assert multi["final"]["loss"] == pytest.approx(one["final"]["loss"], rel=1e-5)
    assert multi["test_loss"] == pytest.approx(one["test_loss"], rel=1e-5)
