"""Every override of a Keras Tuner internal, in one place (written against 1.4.8).

Each override says which Keras Tuner behaviour it fixes, and
``tests/tuning/test_oracles.py`` has, for each, a test that fails on plain Keras
Tuner: the module a newer Keras Tuner is tried against. `tuning.search` makes the
tuners (`make_oracle`, `tuner_class`) and serves the chief's oracle
(`serve_oracle`); it imports this module only when a search starts (Keras Tuner
imports TensorFlow).

The tuners also use Keras Tuner's public hooks (``run_trial``, ``on_trial_end``) for
what the search adds: each trial trains in ``DIR/trials/trial_<id>`` through the
training core, seeded, timed and with its failures logged (tested by
``tests/tuning/test_tuning_search.py``).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import time
import warnings
import zlib
from concurrent import futures
from pathlib import Path

import grpc
import keras
import keras_tuner
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief

from apps import runs
from tuning import search

FINISHED = ("COMPLETED", "FAILED")
# Chief: how often it checks whether every worker has been told to stop.
SERVER_POLL_SECONDS = 0.5


class TooManyFailures(RuntimeError):
    """Raised inside the oracle; becomes its ``stop_reason``."""


class ReconcilingOracle:
    """Mixin over a Keras Tuner oracle: atomic state files, a reload that trusts
    the trial files, and a stop after too many failures in a row that every tuner
    hears of."""

    #: why the search stops early (too many failures in a row), or None.
    stop_reason = None

    def save(self):
        """Keras Tuner truncates oracle.json, then writes it: a kill in between
        leaves a file the next run cannot reload. Written atomically here."""
        runs.write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        """As `save`, for each trial's trial.json."""
        path = Path(self._get_trial_dir(trial.trial_id)) / "trial.json"
        runs.write_json(path, trial.get_state())

    def reload(self):
        """Keras Tuner saves a trial's file, then the oracle's state; a kill in
        between makes its reload lose a new trial (never run, its values free to
        be drawn again) or run a finished one again. The trial files are the newer
        of the two, so they win: a running trial goes back to the queue, a
        finished one is recorded as ended, every trial's values count as tried.

        Keras Tuner's display also needs to have seen each trial begin: ending one
        whose start the saved state missed raised KeyError (the search stopped). Such
        a trial's clock starts at the reload."""
        super().reload()
        display, now = self._display, datetime.datetime.now()
        if display.search_start is None:
            display.search_start = now
        for number, trial_id in enumerate(self.trials, start=1):
            display.trial_start.setdefault(trial_id, now)
            display.trial_number.setdefault(trial_id, number)
        for trial_id, trial in self.trials.items():
            values_hash = self._compute_values_hash(trial.hyperparameters.values)
            self._tried_so_far.add(values_hash)
            self._id_to_hash[trial_id] = values_hash
            if trial_id not in self.start_order:
                self.start_order.append(trial_id)
            if trial.status in FINISHED:
                self._retry_queue = [t for t in self._retry_queue if t != trial_id]
                if trial_id not in self.end_order:
                    self.end_order.append(trial_id)
            elif trial_id not in self._retry_queue:
                self._retry_queue.append(trial_id)

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        """Keras Tuner runs every trial of its retry queue again, even one that a
        worker finished after a restarted chief queued it; and it has no way to
        stop every tuner early. Finished trials leave the queue here, and after
        `stop_reason` is set every tuner is told to stop."""
        self._retry_queue = [
            t for t in self._retry_queue if self.trials[t].status not in FINISHED
        ]
        if self.stop_reason is None:
            return super().create_trial(tuner_id)
        self.tuner_ids.discard(tuner_id)
        return keras_tuner.engine.trial.Trial(
            self.get_space(), trial_id="stopped", status="STOPPED"
        )

    @keras_tuner.synchronized
    def end_trial(self, trial):
        """Keras Tuner raises on too many failures before it records the trial
        and releases it, in the process that ended it only (a worker's error, the
        other workers go on). Here the trial is recorded, the oracle's state
        saved, and `stop_reason` stops every tuner at its next request."""
        try:
            super().end_trial(trial)
        except TooManyFailures as error:
            self.stop_reason = str(error)
            self._save_trial(self.trials[trial.trial_id])
            self.save()
            for tuner_id, ongoing in list(self.ongoing_trials.items()):
                if ongoing.trial_id == trial.trial_id:
                    self.ongoing_trials.pop(tuner_id)

    def _check_consecutive_failures(self):
        """Keras Tuner counts failures in a row anywhere in the record: once the
        limit was reached, a resumed search stops at its first trial, fixed or
        not. Counted here at the end of the record, and said in one line."""
        failures = 0
        for trial_id in reversed(self.end_order):
            if self.trials[trial_id].status != "FAILED":
                break
            failures += 1
        if failures >= self.max_consecutive_failed_trials:
            last = self.trials[self.end_order[-1]]
            message = (last.message or "").strip().splitlines()
            raise TooManyFailures(
                f"{failures} trials failed in a row (the limit, "
                "--max-consecutive-failed-trials, is "
                f"{self.max_consecutive_failed_trials}); the last one: "
                f"{message[-1] if message else 'no message'}."
            )


class RandomOracle(ReconcilingOracle, keras_tuner.oracles.RandomSearchOracle):
    """Random search."""


class HyperbandOracle(ReconcilingOracle, keras_tuner.oracles.HyperbandOracle):
    """Hyperband (Li et al., 2018)."""

    def __init__(self, *args, max_trials, **kwargs):
        """Keras Tuner's Hyperband takes no ``max_trials``: it stops after its
        brackets (``hyperband_iterations``). Here it runs brackets until
        ``max_trials`` trials, as the other tuners stop."""
        super().__init__(*args, **kwargs)
        self.max_trials = max_trials


class BayesianOracle(ReconcilingOracle, keras_tuner.oracles.BayesianOptimizationOracle):
    """Bayesian optimisation with a Gaussian process."""


ORACLES = {
    "random": RandomOracle,
    "hyperband": HyperbandOracle,
    "bayesian": BayesianOracle,
}


class CoreTuner:
    """Mixin over a Keras Tuner tuner: each trial trains in DIR/trials/trial_<id>
    through the training core, seeded and timed; failures are logged; saves are
    atomic; the oracle reloads whenever it has a state."""

    def __init__(self, oracle, hypermodel, *, seed=None, **kwargs):
        """Keras Tuner reloads a project only when the tuner's own file exists:
        a search resumed under another tuner id (alone, then as the chief) or
        killed between the oracle's first save and the tuner's started afresh
        over its trials. The tuner's file is made here where the oracle has a
        state. Straight to ``keras_tuner.Tuner.__init__``: ``Hyperband`` would
        make its own oracle, and ours persists safely."""
        self.seed = seed
        self.search_dir = Path(kwargs["directory"])
        project = self.search_dir / kwargs["project_name"]
        tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
        if (
            not kwargs.get("overwrite")
            and not _is_worker()
            and (project / "oracle.json").exists()
            and not (project / f"{tuner_id}.json").exists()
        ):
            runs.write_json(project / f"{tuner_id}.json", {})
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)

    def trial_run_dir(self, trial_id) -> Path:
        """The trial's run directory (the training core's)."""
        return self.search_dir / search.TRIALS / f"trial_{trial_id}"

    def run_trial(self, trial, *args, **kwargs):
        """Trains the trial in its run directory, seeded by its id, timed."""
        run_dir = self.trial_run_dir(trial.trial_id)
        _claim_run_dir(run_dir, trial.hyperparameters.values)
        if self.seed is not None:  # the same trial starts the same way
            offset = zlib.crc32(str(trial.trial_id).encode()) % 100_003
            keras.utils.set_random_seed(self.seed + offset)
        started = time.perf_counter()
        try:
            return super().run_trial(trial, *args, run_dir=run_dir, **kwargs)
        finally:
            _add_time(run_dir, time.perf_counter() - started, self.tuner_id)

    def on_trial_end(self, trial):
        """Logs a failed trial to the console and its run directory's errors.log."""
        if trial.status in ("INVALID", "FAILED"):
            _log_failure(self.trial_run_dir(trial.trial_id), trial)
        super().on_trial_end(trial)

    def save(self):
        """As `ReconcilingOracle.save`, for the tuner's file."""
        if not self._is_worker():
            self.oracle.save()
        runs.write_json(self._get_tuner_fname(), self.get_state())


class Tuner(CoreTuner, keras_tuner.Tuner):
    """Random search and Bayesian optimisation (the oracle decides)."""


class HyperbandTuner(CoreTuner, keras_tuner.Hyperband):
    """Hyperband: its epochs per trial and weights carried between rounds."""

    def _build_hypermodel(self, hp):
        """Keras Tuner's Hyperband loads a continued trial's checkpoint into a
        fresh model, whose optimiser has no slots yet: Keras warns, once per
        continued trial, that the saved optimiser's are skipped (as they should
        be: the learning rate restarts). The warning is held back here."""
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Skipping variable loading for optimizer"
            )
            return super()._build_hypermodel(hp)


def serve_oracle(tuner, role) -> None:
    """The chief: serves the tuner's oracle until every worker has been stopped.

    Replaces ``oracle_chief.start_server``, which polls every 20 s once a worker is
    stopped (a finished search waits that long for its last trial) and lets a port
    it cannot bind raise a bare RuntimeError; this one polls every half second and
    raises `search.ConfigurationError` (exit 2). Its servicer and protocol are
    Keras Tuner's.
    """
    tuner.save()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(tuner.oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    address = f"{role.ip}:{role.port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as error:
        raise search.ConfigurationError(
            f"the chief cannot listen on {address} (in use, or not this machine's "
            f"address: {error}). Choose another KERASTUNER_ORACLE_PORT."
        ) from error
    server.start()
    print(f"chief: serving the oracle on {address}", flush=True)
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(tuner.oracle)):
            time.sleep(SERVER_POLL_SECONDS)
    finally:
        server.stop(grace=2).wait()


# Trial run directories


def _is_worker() -> bool:
    role = search.distributed_role()
    return role is not None and not role.chief


def _claim_run_dir(run_dir: Path, values: dict) -> None:
    """Makes run_dir this trial's: one left by other values (a reset search) goes."""
    marker = run_dir / "hyperparameters.json"
    values = json.loads(json.dumps(values, default=str))
    if run_dir.exists():
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, ValueError):
            recorded = None
        if recorded != values:
            shutil.rmtree(run_dir)
    if not marker.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        runs.write_json(marker, values)


def _add_time(run_dir: Path, seconds: float, tuner_id: str) -> None:
    """Adds an attempt's time to the trial's timing.json, with who ran it."""
    path = run_dir / "timing.json"
    timing = search.read_json(path) or {"seconds": 0.0, "attempts": 0}
    timing["seconds"] += seconds
    timing["attempts"] += 1
    timing["tuner_id"] = tuner_id
    with contextlib.suppress(OSError):  # never hide the trial's own error
        run_dir.mkdir(parents=True, exist_ok=True)
        runs.write_json(path, timing)


def _log_failure(run_dir: Path, trial) -> None:
    message = (trial.message or "").strip()
    last = message.splitlines()[-1] if message else "no message"
    if trial.status == "FAILED":
        what = "not retried (the same values would fail again)"
    else:
        what = "retried while --max-retries-per-trial allows"
    print(
        f"warning: trial {trial.trial_id} failed: {last}; {what}. Traceback in "
        f"{run_dir / 'errors.log'}",
        flush=True,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "errors.log", "a") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {trial.status}\n")
        log.write(message + "\n")
