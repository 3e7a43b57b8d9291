"""Each override in tuning/oracles.py, against the Keras Tuner behaviour it fixes.

Every test runs twice: on our class, and on plain Keras Tuner's, where it is a
strict xfail: it shows the bug (Keras Tuner 1.4.8). When a newer Keras Tuner fixes
one, its plain case passes, the strict xfail fails, and the override can go.
"""

import contextlib
import json
import resource
import signal
import socket
import threading
import time
import types
import warnings
from pathlib import Path

import grpc
import keras
import keras_tuner
import numpy as np
import pytest
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief

from tuning import oracles, search

OBJECTIVE = keras_tuner.Objective("score", direction="max")
PLAIN_BUG = pytest.mark.xfail(strict=True, reason="the Keras Tuner 1.4.8 behaviour")


def _ours_and_plain(ours, plain):
    return pytest.mark.parametrize(
        "kind", [ours, pytest.param(plain, marks=PLAIN_BUG)], ids=["ours", "plain"]
    )


random_oracles = _ours_and_plain(
    oracles.RandomOracle, keras_tuner.oracles.RandomSearchOracle
)


def _oracle(kind, directory, **kwargs):
    oracle = kind(OBJECTIVE, **{"max_trials": 3, "seed": 0, **kwargs})
    oracle._set_project_dir(str(directory), "project")
    oracle._display.verbose = 0  # a reloaded oracle never showed the trial begin
    space = keras_tuner.HyperParameters()
    space.Int("units", 1, 100)
    oracle.update_space(space)
    return oracle


def _reloaded(kind, directory, **kwargs):
    oracle = _oracle(kind, directory, **kwargs)
    oracle.reload()
    return oracle


def _end(oracle, trial, status, score=0.5):
    if status == "COMPLETED":
        oracle.update_trial(trial.trial_id, {"score": score})
    trial.status = status
    trial.message = f"trial {trial.trial_id}: {status}"
    oracle.end_trial(trial)


@contextlib.contextmanager
def _writes_fail_after(size):
    """Every file write past `size` bytes fails (EFBIG), as on a full disk."""
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, limits[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)


@random_oracles
def test_a_failed_write_leaves_the_state_files_whole(kind, tmp_path):
    """ReconcilingOracle.save and _save_trial: Keras Tuner truncates, then writes."""
    oracle = _oracle(kind, tmp_path)
    trial = oracle.create_trial("tuner0")
    project = tmp_path / "project"
    files = [project / "oracle.json", project / f"trial_{trial.trial_id}/trial.json"]
    before = [json.loads(path.read_text()) for path in files]
    with _writes_fail_after(16):
        for save in (oracle.save, lambda: oracle._save_trial(trial)):
            with contextlib.suppress(Exception):
                save()
    assert [json.loads(path.read_text()) for path in files] == before


@random_oracles
def test_a_trial_the_oracle_state_lost_runs_again_as_itself(kind, tmp_path):
    """ReconcilingOracle.reload: a kill between the trial's file and the oracle's."""
    oracle = _oracle(kind, tmp_path)
    oracle.save()
    oracle.save = lambda: None  # killed before the oracle's state is saved
    lost = oracle.create_trial("tuner0")
    again = _reloaded(kind, tmp_path).create_trial("tuner0")
    assert again.trial_id == lost.trial_id
    assert again.hyperparameters.values == lost.hyperparameters.values


@random_oracles
def test_a_finished_trial_the_oracle_state_missed_does_not_run_again(kind, tmp_path):
    """ReconcilingOracle.reload: killed after a trial ended, before the oracle saved."""
    oracle = _oracle(kind, tmp_path)
    finished = oracle.create_trial("tuner0")
    oracle.save = lambda: None
    _end(oracle, finished, "COMPLETED")
    reloaded = _reloaded(kind, tmp_path)
    assert reloaded.create_trial("tuner0").trial_id != finished.trial_id
    assert reloaded.end_order == [finished.trial_id]


@random_oracles
def test_a_trial_a_worker_finished_after_a_chief_restart_is_not_rerun(kind, tmp_path):
    """ReconcilingOracle.create_trial: the restarted chief queued the trial that a
    worker was still running, then the worker finished it."""
    running = _oracle(kind, tmp_path).create_trial("tuner0")
    restarted = _reloaded(kind, tmp_path)
    _end(restarted, running, "COMPLETED")
    assert restarted.create_trial("tuner1").trial_id != running.trial_id


@random_oracles
def test_a_restarted_chief_shows_the_end_of_a_trial_it_never_saw_begin(
    kind, tmp_path, capsys
):
    """ReconcilingOracle.reload: with its display on (Keras Tuner's default), a
    chief whose saved state missed a trial's start raised KeyError when it ended."""
    oracle = _oracle(kind, tmp_path)
    oracle.save()
    oracle.save = lambda: None  # killed before the oracle's state is saved
    running = oracle.create_trial("tuner0")
    restarted = _reloaded(kind, tmp_path)
    restarted._display.verbose = 1
    _end(restarted, running, "COMPLETED")
    assert f"Trial {list(restarted.trials).index(running.trial_id) + 1} Complete" in (
        capsys.readouterr().out
    )


@random_oracles
def test_too_many_failures_are_recorded_and_stop_every_tuner(kind, tmp_path):
    """ReconcilingOracle.end_trial: Keras Tuner raises before recording the trial,
    in the caller only."""
    oracle = _oracle(kind, tmp_path, max_consecutive_failed_trials=1)
    failed = oracle.create_trial("tuner0")
    oracle.create_trial("tuner1")
    _end(oracle, failed, "FAILED")
    assert "1 trials failed in a row" in oracle.stop_reason
    state = json.loads(
        (tmp_path / "project" / f"trial_{failed.trial_id}" / "trial.json").read_text()
    )
    assert state["status"] == "FAILED"
    for tuner_id in ("tuner0", "tuner1", "tuner2"):
        assert oracle.create_trial(tuner_id).status == "STOPPED"


@random_oracles
def test_failures_count_only_at_the_end_of_the_record(kind, tmp_path):
    """ReconcilingOracle._check_consecutive_failures: two failures in a row, then a
    completed trial (a resumed search, after a fix) do not stop the search."""
    oracle = _oracle(kind, tmp_path, max_consecutive_failed_trials=2)
    statuses = {"0": "FAILED", "1": "FAILED", "2": "COMPLETED"}
    oracle.trials = {
        trial_id: keras_tuner.engine.trial.Trial(
            oracle.get_space(), trial_id=trial_id, status=status
        )
        for trial_id, status in statuses.items()
    }
    oracle.end_order = list(statuses)
    oracle._check_consecutive_failures()


@_ours_and_plain(oracles.HyperbandOracle, keras_tuner.oracles.HyperbandOracle)
def test_hyperband_stops_at_max_trials(kind, tmp_path):
    """HyperbandOracle.__init__: Keras Tuner's Hyperband takes no max_trials."""
    oracle = _oracle(kind, tmp_path, max_epochs=2, factor=2, hyperband_iterations=None)
    ids = [oracle.create_trial(f"tuner{index}").status for index in range(4)]
    assert ids == ["RUNNING", "RUNNING", "RUNNING", "STOPPED"]


class _HyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(loss="mse")
        hp.Int("units", 1, 100)
        return model


def _ours(directory):
    return oracles.Tuner(
        _oracle(oracles.RandomOracle, directory),
        _HyperModel(),
        directory=str(directory),
        project_name="project",
    )


def _plain(directory):
    return keras_tuner.Tuner(
        oracle=_oracle(keras_tuner.oracles.RandomSearchOracle, directory),
        hypermodel=_HyperModel(),
        directory=str(directory),
        project_name="project",
    )


@_ours_and_plain(_ours, _plain)
def test_a_tuner_reloads_a_project_without_its_own_file(kind, tmp_path):
    """CoreTuner.__init__: a search resumed under another tuner id (alone, then as
    the chief), or killed between the oracle's first save and the tuner's."""
    tuner = kind(tmp_path)
    trial = tuner.oracle.create_trial("tuner0")
    tuner.save()
    (tmp_path / "project" / "tuner0.json").unlink()
    assert list(kind(tmp_path).oracle.trials) == [trial.trial_id]


@_ours_and_plain(_ours, _plain)
def test_a_failed_write_leaves_the_tuner_file_whole(kind, tmp_path):
    """CoreTuner.save: Keras Tuner truncates the tuner's file, then writes it."""
    tuner = kind(tmp_path)
    tuner.save()
    path = tmp_path / "project" / "tuner0.json"
    before = json.loads(path.read_text())
    tuner.oracle.save = lambda: None  # its own test: the oracle's file
    with _writes_fail_after(1), contextlib.suppress(Exception):
        tuner.save()
    assert json.loads(path.read_text()) == before


def _hyperband_ours(directory):
    oracle = _oracle(
        oracles.HyperbandOracle,
        directory,
        max_epochs=2,
        factor=2,
        hyperband_iterations=None,
    )
    return oracles.HyperbandTuner(
        oracle, _HyperModel(), directory=str(directory), project_name="project"
    )


def _hyperband_plain(directory):
    return keras_tuner.Hyperband(
        _HyperModel(),
        objective=OBJECTIVE,
        max_epochs=2,
        factor=2,
        directory=str(directory),
        project_name="project",
    )


@_ours_and_plain(_hyperband_ours, _hyperband_plain)
def test_a_continued_hyperband_trial_loads_its_weights_quietly(kind, tmp_path):
    """HyperbandTuner._build_hypermodel: Keras warns that the checkpoint's
    optimiser slots are skipped, once per continued trial."""
    tuner = kind(tmp_path)
    first = tuner.oracle.create_trial("tuner0")
    model = tuner.hypermodel.build(first.hyperparameters)
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0)  # optimiser slots
    model.save_weights(tuner._get_checkpoint_fname(first.trial_id))
    build_config = tuner._get_build_config_fname(first.trial_id)
    Path(build_config).write_text(json.dumps(model.get_build_config()))
    continued = first.hyperparameters.copy()
    continued.values["tuner/trial_id"] = first.trial_id
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuner._build_hypermodel(continued)
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]


# The chief's server


def _serve_ours(tuner, role):
    oracles.serve_oracle(tuner, role)


def _serve_plain(tuner, role):
    oracle_chief.start_server(tuner.oracle)


def _chief(oracle, role, monkeypatch):
    environment = {
        "KERASTUNER_TUNER_ID": "chief",
        "KERASTUNER_ORACLE_IP": role.ip,
        "KERASTUNER_ORACLE_PORT": str(role.port),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return types.SimpleNamespace(oracle=oracle, save=lambda: None)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


serving = _ours_and_plain(_serve_ours, _serve_plain)


@serving
def test_an_address_the_chief_cannot_bind_is_a_configuration_error(
    kind, tmp_path, monkeypatch
):
    """serve_oracle: Keras Tuner's server lets grpc's bare RuntimeError out."""
    role = search.Role("chief", "192.0.2.1", _free_port())  # TEST-NET: not ours
    tuner = _chief(_oracle(oracles.RandomOracle, tmp_path), role, monkeypatch)
    with pytest.raises(search.ConfigurationError, match="cannot listen on"):
        kind(tuner, role)


@serving
def test_the_chief_stops_soon_after_its_last_worker(kind, tmp_path, monkeypatch):
    """serve_oracle: Keras Tuner's server waits 20 s between checks once a worker
    was told to stop."""
    role = search.Role("chief", "127.0.0.1", _free_port())
    oracle = _oracle(oracles.RandomOracle, tmp_path, max_trials=1)
    running = oracle.create_trial("tuner0")
    tuner = _chief(oracle, role, monkeypatch)
    server = threading.Thread(target=kind, args=(tuner, role), daemon=True)
    server.start()
    channel = grpc.insecure_channel(f"{role.ip}:{role.port}")
    stub = protos.get_service_grpc().OracleStub(channel)

    def ask(tuner_id):
        request = protos.get_service().CreateTrialRequest(tuner_id=tuner_id)
        return stub.CreateTrial(request, wait_for_ready=True, timeout=30)

    ask("tuner1")  # no trial left: tuner1 stops, tuner0 still runs one
    time.sleep(1.5)  # the server has seen the stop
    _end(oracle, running, "COMPLETED")
    ask("tuner0")  # tuner0 is told to stop too: every worker has stopped
    server.join(timeout=5)
    channel.close()
    assert not server.is_alive()
