"""A search SIGKILLed at random points and re-run completes as if never stopped.

Each run is a real `python -m tuning search` process; the kill falls at a random
moment after an event picked at random from what a search does (a trial created,
an epoch's run state saved, a trial finished). After the last re-run the search has
exactly --max-trials trials, each COMPLETED or FAILED, no set of values twice, and
every completed trial's history (as the training core reads it: a re-run epoch
replaces the killed one's row) has its full epochs.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from tiny import tiny_flags

EPOCHS = 2
COMMAND = [sys.executable, "-m", "tuning", "search", "--model", "mlp"]
# A small training share: each process reads its split into memory.
COMMAND += tiny_flags(validation_split=0.9, epochs=EPOCHS)
PHASES = ("created", "epoch saved", "finished")


def _command(output, trials):
    return [*COMMAND, "--max-trials", str(trials), "--output", str(output)]


def _trial_id(index, trials):
    """Keras Tuner's id: the index, zero-padded to the width of --max-trials."""
    return f"{index:0{len(str(trials))}d}"


def _trial_state(output, trial_id):
    try:
        return json.loads(
            (output / "keras_tuner" / f"trial_{trial_id}" / "trial.json").read_text()
        )
    except (OSError, ValueError):
        return None


def _happened(output, event):
    trial_id, phase = event
    if phase == "created":
        return _trial_state(output, trial_id) is not None
    if phase == "epoch saved":
        state = output / "trials" / f"trial_{trial_id}" / "state"
        return state.is_dir() and any(state.glob("state-*.json"))
    status = (_trial_state(output, trial_id) or {}).get("status")
    return status in ("COMPLETED", "FAILED")


def _pending(output, trials):
    """The events still to come, in order (those of a finished trial are past)."""
    ids = [_trial_id(index, trials) for index in range(trials)]
    return [
        (trial_id, phase)
        for trial_id in ids
        if not _happened(output, (trial_id, "finished"))
        for phase in PHASES
        if not _happened(output, (trial_id, phase))
    ]


def _kill_after(output, trials, event, delay):
    """Starts the search and SIGKILLs it `delay` s after `event`; True if killed."""
    process = subprocess.Popen(
        _command(output, trials),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if _happened(output, event):
            time.sleep(delay)
            break
        time.sleep(0.005)
    killed = process.poll() is None
    if killed:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return killed


def _check_complete(output, trials, kills):
    rows = json.loads((output / "trials.json").read_text())["trials"]
    assert len(rows) == trials
    assert {row["status"] for row in rows} <= {"COMPLETED", "FAILED"}
    values = [json.dumps(row["hyperparameters"], sort_keys=True) for row in rows]
    assert len(set(values)) == trials, "a set of hyper-parameters ran twice"
    for row in rows:
        if row["status"] == "COMPLETED":
            history = output / "trials" / f"trial_{row['trial_id']}" / "history.csv"
            lines = history.read_text().splitlines()[1:]
            # An epoch whose end the kill cut short (before its state was saved)
            # runs again and logs again; none is missing.
            epochs = {line.split(",")[0] for line in lines}
            assert epochs == {str(epoch) for epoch in range(EPOCHS)}
            assert len(lines) <= EPOCHS + kills, "trained again from the start"
    assert (output / "best_model.keras").is_file()


def _finish(output, trials, kills):
    finished = subprocess.run(
        _command(output, trials), capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    _check_complete(output, trials, kills)


def test_killed_twice_the_search_still_completes(fashion_mnist, tmp_path):
    # In trial 0's training (it resumes from its run state), then right as trial 1
    # ends (between the trial's file and the oracle's).
    rng = random.Random(0)
    for event in [("0", "epoch saved"), ("1", "finished")]:
        assert _kill_after(tmp_path, 3, event, rng.uniform(0.0, 0.2))
    _finish(tmp_path, 3, kills=2)


@pytest.mark.slow
def test_killed_at_ten_random_points(fashion_mnist, tmp_path):
    trials, rng, kills = 12, random.Random(2024), 0
    while kills < 10:
        pending = _pending(tmp_path, trials)
        assert pending, f"the search ended after {kills} kills"
        # Mostly the next event, sometimes the one after; then a random delay.
        event = pending[0] if rng.random() < 0.7 or len(pending) == 1 else pending[1]
        kills += _kill_after(tmp_path, trials, event, rng.uniform(0.0, 0.2))
    _finish(tmp_path, trials, kills)
