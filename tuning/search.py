"""The search: Keras Tuner's tuners over our hypermodels, resumable, and its record.

A search directory::

    DIR/
      search.json               what was searched (arguments, versions, data)
      preprocessing.json        what best_model.keras expects (as apps.classify's)
      best_hyperparameters.json the best trial's hyper-parameters and score
      best_model.keras          the best trial's best epoch
      trials.csv  trials.json   every trial: hyper-parameters, score, time, status
      trials.png                score against trial
      keras_tuner/              Keras Tuner's project: oracle.json, trial_*/trial.json
      trials/trial_<id>/        each trial's run directory (apps.training.fit's)

Resuming. Re-running the same command reloads the project (``overwrite=False``):
finished trials are not run again, an interrupted trial runs again as the same trial
(same id and hyper-parameters) and continues from its run state. Keras Tuner writes
its files in place and in an order that a kill can split; here every file is written
atomically, and on reload the trial files (written first) are reconciled with the
oracle's state: a trial the oracle lost track of goes back to the queue, a finished
trial it still thought running does not run again, and every trial's values count as
tried, so the search ends with exactly ``max_trials`` trials, each COMPLETED or
FAILED, and no set of values twice.

Failures. A trial that raises is retried up to ``max_retries_per_trial`` times (from
its run state), each failure logged to the console and to its run directory's
``errors.log``; a NaN loss fails the trial at once (the same values would fail
again). ``max_consecutive_failed_trials`` failures in a row stop the search.

Distribution. Keras Tuner's chief/worker mode: the chief (``KERASTUNER_TUNER_ID=
chief``) serves the oracle on ``KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`` and
writes the reports at the end; each worker (``tuner0``, ``tuner1``, ...) asks it for
trials and trains them, all sharing DIR. See :func:`distributed_role`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
import zlib
from pathlib import Path

TUNERS = ("random", "hyperband", "bayesian")
OBJECTIVE = "val_accuracy"
PROJECT = "keras_tuner"
TRIALS = "trials"
SEARCH_FILE = "search.json"
PREPROCESSING_FILE = "preprocessing.json"
BEST_HYPERPARAMETERS = "best_hyperparameters.json"
BEST_MODEL = "best_model.keras"
FINISHED = ("COMPLETED", "FAILED")
ENVIRONMENT = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
CHIEF = "chief"
# Chief: how often it checks whether every worker has been told to stop.
SERVER_POLL_SECONDS = 0.5
LEADING_COLUMNS = ("learning_rate", "dropout", "depth")
# The training stream from epoch 0 of the last search in this process, by its data.
_FIRST_STREAM = {}


class SearchError(RuntimeError):
    """The search cannot go on; the message says what happened and what to try."""


class ConfigurationError(ValueError):
    """Bad search configuration (arguments, environment, output directory)."""


class _TooManyFailures(RuntimeError):
    """Raised inside the oracle; becomes its ``stop_reason``."""


# Distributed tuning: Keras Tuner's environment variables


@dataclasses.dataclass(frozen=True)
class Role:
    """This process's part in a distributed search."""

    tuner_id: str
    ip: str
    port: int

    @property
    def chief(self) -> bool:
        return self.tuner_id == CHIEF


def distributed_role(environ=None) -> Role | None:
    """Checks Keras Tuner's variables; returns this process's Role, or None (alone).

    ``KERASTUNER_TUNER_ID`` (``chief``, or a worker's own id such as ``tuner0``),
    ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` (1-65535) are set
    together or not at all.

    Raises:
        ConfigurationError: a variable missing, empty or malformed — before
            anything starts, instead of Keras Tuner's silent fallbacks (an id
            without an address runs an independent search) or a hang.
    """
    environ = os.environ if environ is None else environ
    present = {name: environ[name] for name in ENVIRONMENT if name in environ}
    if not present:
        return None
    missing = [name for name in ENVIRONMENT if name not in present]
    if missing:
        raise ConfigurationError(
            f"distributed tuning needs all of {list(ENVIRONMENT)}; {missing} "
            f"{'is' if len(missing) == 1 else 'are'} not set (set: "
            f"{sorted(present)}). Unset them all to search in one process."
        )
    tuner_id = present["KERASTUNER_TUNER_ID"].strip()
    ip = present["KERASTUNER_ORACLE_IP"].strip()
    port_text = present["KERASTUNER_ORACLE_PORT"].strip()
    if not tuner_id or re.search(r"\s", tuner_id):
        raise ConfigurationError(
            "KERASTUNER_TUNER_ID must be 'chief' or a worker id without spaces "
            f"(tuner0, tuner1, ...). Received: {present['KERASTUNER_TUNER_ID']!r}"
        )
    if CHIEF in tuner_id and tuner_id != CHIEF:
        raise ConfigurationError(
            "KERASTUNER_TUNER_ID must be exactly 'chief' for the chief; Keras Tuner "
            f"treats any id containing 'chief' as one. Received: {tuner_id!r}"
        )
    if not ip or re.search(r"\s", ip):
        raise ConfigurationError(
            "KERASTUNER_ORACLE_IP must be the chief's address (e.g. 10.0.0.5 or "
            f"127.0.0.1). Received: {present['KERASTUNER_ORACLE_IP']!r}"
        )
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigurationError(
            "KERASTUNER_ORACLE_PORT must be a port number, 1-65535. "
            f"Received: {present['KERASTUNER_ORACLE_PORT']!r}"
        )
    return Role(tuner_id=tuner_id, ip=ip, port=int(port_text))


# Tuners and oracles


@functools.cache
def _oracle_classes():
    """Our oracle classes, made on first use (keras_tuner imports TensorFlow)."""
    import keras_tuner

    class ReconcilingOracle:
        """Mixin: atomic state files, a reload that trusts the trial files, and a
        stop after too many failures in a row that every tuner hears of."""

        #: why the search stops early (too many failures in a row), or None.
        stop_reason = None

        def save(self):
            _write_json(self._get_oracle_fname(), self.get_state())

        def _save_trial(self, trial):
            path = Path(self._get_trial_dir(trial.trial_id)) / "trial.json"
            _write_json(path, trial.get_state())

        def reload(self):
            super().reload()
            # Each trial file is written before the oracle's state, so it is the
            # newer of the two wherever a kill fell between them.
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
            # A trial queued again on a reload (a restarted chief) may since have
            # been finished by the worker that was running it.
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
            try:
                super().end_trial(trial)
            except _TooManyFailures as error:
                # Keras Tuner raises before it records the trial and releases it;
                # record it, then stop every tuner at its next request.
                self.stop_reason = str(error)
                self._save_trial(self.trials[trial.trial_id])
                self.save()
                for tuner_id, ongoing in list(self.ongoing_trials.items()):
                    if ongoing.trial_id == trial.trial_id:
                        self.ongoing_trials.pop(tuner_id)

        def _check_consecutive_failures(self):
            # The failures at the end of the record, not anywhere in it: after a
            # fix, a resumed search goes on until it fails that often again.
            failures = 0
            for trial_id in reversed(self.end_order):
                if self.trials[trial_id].status != "FAILED":
                    break
                failures += 1
            if failures >= self.max_consecutive_failed_trials:
                last = self.trials[self.end_order[-1]]
                message = (last.message or "").strip().splitlines()
                raise _TooManyFailures(
                    f"{failures} trials failed in a row (the limit, "
                    "--max-consecutive-failed-trials, is "
                    f"{self.max_consecutive_failed_trials}); the last one: "
                    f"{message[-1] if message else 'no message'}."
                )

    class RandomOracle(ReconcilingOracle, keras_tuner.oracles.RandomSearchOracle):
        """Random search."""

    class HyperbandOracle(ReconcilingOracle, keras_tuner.oracles.HyperbandOracle):
        """Hyperband (Li et al., 2018)."""

    class BayesianOracle(
        ReconcilingOracle, keras_tuner.oracles.BayesianOptimizationOracle
    ):
        """Bayesian optimisation with a Gaussian process."""

    return {
        "random": RandomOracle,
        "hyperband": HyperbandOracle,
        "bayesian": BayesianOracle,
    }


@functools.cache
def _tuner_classes():
    import keras
    import keras_tuner

    class CoreTuner:
        """Mixin: each trial trains in DIR/trials/trial_<id> through the training core.

        Also: per-trial seeding, trial timing, failure logging, atomic saves, and a
        reload that happens whenever the oracle has a state.
        """

        def __init__(self, oracle, hypermodel, *, seed=None, **kwargs):
            self.seed = seed
            self.search_dir = Path(kwargs["directory"])
            project = self.search_dir / kwargs["project_name"]
            tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
            worker = _is_worker()
            if (
                not kwargs.get("overwrite")
                and not worker
                and (project / "oracle.json").exists()
                and not (project / f"{tuner_id}.json").exists()
            ):
                # Keras Tuner reloads only when the tuner's own file exists; a kill
                # can fall after the oracle's first save and before it.
                _write_json(project / f"{tuner_id}.json", {})
            # Straight to keras_tuner.Tuner: RandomSearch, Hyperband, ... only make
            # their own oracle, and ours persists safely.
            keras_tuner.Tuner.__init__(
                self, oracle=oracle, hypermodel=hypermodel, **kwargs
            )

        def trial_run_dir(self, trial_id) -> Path:
            return self.search_dir / TRIALS / f"trial_{trial_id}"

        def run_trial(self, trial, *args, **kwargs):
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
            if trial.status in ("INVALID", "FAILED"):
                _log_failure(self.trial_run_dir(trial.trial_id), trial)
            super().on_trial_end(trial)

        def save(self):
            if not self._is_worker():
                self.oracle.save()
            _write_json(self._get_tuner_fname(), self.get_state())

    class Tuner(CoreTuner, keras_tuner.Tuner):
        """Random search and Bayesian optimisation (the oracle decides)."""

    class HyperbandTuner(CoreTuner, keras_tuner.Hyperband):
        """Hyperband: its epochs per trial and weights carried between rounds."""

        def _build_hypermodel(self, hp):
            with warnings.catch_warnings():
                # A continued trial loads the earlier round's weights into a fresh
                # optimiser: Keras warns that the saved optimiser slots are skipped.
                warnings.filterwarnings(
                    "ignore", message="Skipping variable loading for optimizer"
                )
                return super()._build_hypermodel(hp)

    return CoreTuner, Tuner, HyperbandTuner


def _is_worker() -> bool:
    role = distributed_role()
    return role is not None and not role.chief


def bayesian_available() -> bool:
    """Keras Tuner's Bayesian optimisation needs scikit-learn and SciPy."""
    try:
        import scipy.optimize  # noqa: F401
        import sklearn.gaussian_process  # noqa: F401
    except ImportError:
        return False
    return True


def check_tuner(kind) -> None:
    """Raises ConfigurationError for an unknown tuner ``kind``, or Bayesian
    optimisation without scikit-learn (before anything is written)."""
    if kind not in TUNERS:
        raise ConfigurationError(f"tuner must be one of {TUNERS}. Received: {kind!r}")
    if kind == "bayesian" and not bayesian_available():
        raise ConfigurationError(
            "--tuner bayesian needs scikit-learn (Keras Tuner's Gaussian process): "
            "pip install scikit-learn, or use --tuner random or hyperband."
        )


def make_tuner(
    kind,
    hypermodel,
    directory,
    *,
    max_trials,
    epochs,
    hyperband_factor=3,
    seed=None,
    max_retries_per_trial=1,
    max_consecutive_failed_trials=3,
    strategy=None,
    overwrite=False,
):
    """A Keras Tuner tuner of ``kind`` over ``hypermodel``, its project in DIR.

    Every tuner stops at ``max_trials`` trials (Hyperband too: it runs brackets
    until then, each trial up to ``epochs`` epochs, ``hyperband_factor`` the
    reduction factor between rounds). Bayesian
    optimisation starts with a third of the trials (at least 2) at random, then
    follows its Gaussian process. With ``overwrite=False`` an existing search in
    ``directory`` is reloaded and resumes; ``overwrite=True`` removes it first
    (:func:`clear_search`).

    Raises:
        ConfigurationError: an unknown ``kind``, ``max_trials`` < 1, or Bayesian
            optimisation without scikit-learn.
    """
    check_tuner(kind)
    _check_count("max_trials", max_trials, 1)
    _check_count("epochs", epochs, 1)
    _check_count("hyperband_factor", hyperband_factor, 2)
    _check_count("max_retries_per_trial", max_retries_per_trial, 0)
    _check_count("max_consecutive_failed_trials", max_consecutive_failed_trials, 1)
    import keras_tuner

    if overwrite:
        clear_search(directory)
    oracles = _oracle_classes()
    _, tuner_class, hyperband_class = _tuner_classes()
    objective = keras_tuner.Objective(OBJECTIVE, direction="max")
    failures = {
        "max_retries_per_trial": max_retries_per_trial,
        "max_consecutive_failed_trials": max_consecutive_failed_trials,
    }
    if kind == "hyperband":
        oracle = oracles[kind](
            objective,
            max_epochs=epochs,
            factor=hyperband_factor,
            hyperband_iterations=None,  # as many brackets as max_trials allows
            seed=seed,
            **failures,
        )
        oracle.max_trials = max_trials
        cls = hyperband_class
    elif kind == "bayesian":
        oracle = oracles[kind](
            objective,
            max_trials=max_trials,
            num_initial_points=max(2, max_trials // 3),
            seed=seed,
            **failures,
        )
        cls = tuner_class
    else:
        oracle = oracles[kind](objective, max_trials=max_trials, seed=seed, **failures)
        cls = tuner_class
    return cls(
        oracle,
        hypermodel,
        seed=seed,
        directory=str(directory),
        project_name=PROJECT,
        overwrite=False,  # cleared above, with the trials' run directories
        distribution_strategy=strategy,
    )


def serve_oracle(tuner, role: Role) -> None:
    """The chief: serves the tuner's oracle until every worker has been stopped.

    Keras Tuner's own server (``oracle_chief.start_server``) polls every 20 s once a
    worker is stopped; this one polls every half second and reports a port it
    cannot bind. Its servicer and protocol are Keras Tuner's.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    tuner.save()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(tuner.oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    address = f"{role.ip}:{role.port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise ConfigurationError(
            f"the chief cannot listen on {address}: {error}"
        ) from error
    if not bound:
        raise ConfigurationError(
            f"the chief cannot listen on {address} (in use, or not this machine's "
            "address). Choose another KERASTUNER_ORACLE_PORT."
        )
    server.start()
    print(f"chief: serving the oracle on {address}", flush=True)
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(tuner.oracle)):
            time.sleep(SERVER_POLL_SECONDS)
    finally:
        server.stop(grace=2).wait()


# The search directory


def search_directory(directory, model: str, dataset: str):
    """The `--output` of `python -m tuning search`, opened as a train command opens
    its run directory (`apps.runs.RunDirectory`: ours or refused, one search at a
    time, `--overwrite` only after every check), marked by `search.json`.

    An empty ``keras_tuner/`` does not make the directory "not ours" (a worker
    started before its chief makes one), nor does the marker's own temporary file.
    """
    from apps import runs

    class SearchDirectory(runs.RunDirectory):
        record = SEARCH_FILE

        def marker(self):  # search() writes search.json before anything else
            return None

        @staticmethod
        def identity_of(data) -> dict:
            search = data["search"]
            return {
                "command": data["command"],
                "model": search["model"],
                "dataset": search["dataset"],
            }

        def _entries(self) -> list[str]:
            project = self.path / PROJECT
            return [
                name
                for name in super()._entries()
                if name != f".{SEARCH_FILE}.tmp"  # a kill while the marker was written
                and (name != PROJECT or not project.is_dir() or any(project.iterdir()))
            ]

    return SearchDirectory(directory, "tuning search", model, dataset)


# Trial run directories


def _claim_run_dir(run_dir: Path, values: dict) -> None:
    """Makes run_dir this trial's: one left by other values (a reset search) goes."""
    marker = run_dir / "hyperparameters.json"
    if run_dir.exists():
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, ValueError):
            recorded = None
        if recorded != _jsonable(values):
            shutil.rmtree(run_dir)
    if not marker.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(marker, _jsonable(values))


def _add_time(run_dir: Path, seconds: float, tuner_id: str) -> None:
    """Adds an attempt's time to the trial's timing.json, with who ran it."""
    path = run_dir / "timing.json"
    try:
        timing = json.loads(path.read_text())
    except (OSError, ValueError):
        timing = {"seconds": 0.0, "attempts": 0}
    timing["seconds"] += seconds
    timing["attempts"] += 1
    timing["tuner_id"] = tuner_id
    with contextlib.suppress(OSError):
        _write_json(path, timing)


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


# The record: tables, plot, best hyper-parameters, best model


def clear_search(directory) -> None:
    """Removes a search's files from ``directory`` (``--overwrite``), nothing else."""
    directory = Path(directory)
    for name in (PROJECT, TRIALS):
        shutil.rmtree(directory / name, ignore_errors=True)
    for name in (
        SEARCH_FILE,
        PREPROCESSING_FILE,
        BEST_HYPERPARAMETERS,
        BEST_MODEL,
        "trials.csv",
        "trials.json",
        "trials.png",
    ):
        (directory / name).unlink(missing_ok=True)


def has_search(directory) -> bool:
    return (Path(directory) / PROJECT / "oracle.json").is_file()


def collect_trials(directory) -> list[dict]:
    """Every trial of the search in ``directory``, from its files, in trial order.

    Each row: ``trial_id``, ``status``, ``score`` (best ``val_accuracy``, or None),
    ``best_epoch`` (1-based), ``seconds`` (training time, all attempts), ``attempts``,
    ``tuner_id`` (who ran it last: ``tuner0`` alone, a worker's id when distributed),
    ``hyperparameters`` (name -> value), ``message`` (a failure's last line).
    A damaged ``trial.json`` is named in a warning on stderr and left out.
    Reads JSON only: no TensorFlow.
    """
    directory = Path(directory)
    rows = []
    for path in (directory / PROJECT).glob("trial_*/trial.json"):
        try:
            state = json.loads(path.read_text())
            trial_id = str(state["trial_id"])
            values = state["hyperparameters"].get("values", {})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            print(
                f"warning: {path} is damaged ({type(error).__name__}): that trial "
                "is left out.",
                file=sys.stderr,
            )
            continue
        timing = _read_json(directory / TRIALS / f"trial_{trial_id}" / "timing.json")
        message = (state.get("message") or "").strip()
        score = state.get("score")
        best_step = state.get("best_step")
        rows.append(
            {
                "trial_id": trial_id,
                "status": state.get("status"),
                "score": None if score is None or _nan(score) else float(score),
                "best_epoch": None if best_step is None else int(best_step) + 1,
                "seconds": (timing or {}).get("seconds"),
                "attempts": (timing or {}).get("attempts"),
                "tuner_id": (timing or {}).get("tuner_id"),
                "hyperparameters": values,
                "message": message.splitlines()[-1] if message else "",
            }
        )
    return sorted(rows, key=lambda row: _trial_order(row["trial_id"]))


def best_trial(rows) -> dict | None:
    """The completed trial with the highest score (the first of equals), or None."""
    completed = [
        row for row in rows if row["status"] == "COMPLETED" and row["score"] is not None
    ]
    return max(completed, key=lambda row: row["score"], default=None)


def hyperparameter_names(rows) -> list[str]:
    names = {name for row in rows for name in row["hyperparameters"]}
    leading = [name for name in LEADING_COLUMNS if name in names]
    return leading + sorted(names - set(leading))


def write_reports(directory, rows=None, *, summary=None) -> dict | None:
    """Writes trials.csv/.json, trials.png, best_hyperparameters.json, best_model.keras.

    Returns the best trial's row (None if no trial completed).
    """
    directory = Path(directory)
    rows = collect_trials(directory) if rows is None else rows
    names = hyperparameter_names(rows)
    _write_json(
        directory / "trials.json",
        {"objective": OBJECTIVE, "direction": "max", "trials": rows},
    )
    temporary = directory / ".trials.csv.tmp"
    with open(temporary, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            [
                "trial_id",
                "status",
                OBJECTIVE,
                "best_epoch",
                "seconds",
                "attempts",
                "tuner_id",
            ]
            + names
            + ["message"]
        )
        for row in rows:
            writer.writerow(
                [
                    row["trial_id"],
                    row["status"],
                    "" if row["score"] is None else row["score"],
                    "" if row["best_epoch"] is None else row["best_epoch"],
                    "" if row["seconds"] is None else round(row["seconds"], 3),
                    "" if row["attempts"] is None else row["attempts"],
                    row["tuner_id"] or "",
                ]
                + [row["hyperparameters"].get(name, "") for name in names]
                + [row["message"]]
            )
    os.replace(temporary, directory / "trials.csv")
    plot_trials(rows, directory / "trials.png")
    best = best_trial(rows)
    if best is None:
        return None
    model_file = _keep_best_model(directory, best["trial_id"])
    _write_json(
        directory / BEST_HYPERPARAMETERS,
        {
            "objective": OBJECTIVE,
            "direction": "max",
            "score": best["score"],
            "trial_id": best["trial_id"],
            "best_epoch": best["best_epoch"],
            "hyperparameters": {
                key: value
                for key, value in best["hyperparameters"].items()
                if not key.startswith("tuner/")
            },
            "best_model": model_file,
            **(summary or {}),
        },
    )
    return best


def _keep_best_model(directory: Path, trial_id) -> str | None:
    """Copies the best trial's best epoch (else its last) to DIR/best_model.keras."""
    run_dir = directory / TRIALS / f"trial_{trial_id}"
    for name in ("best.keras", "model.keras"):
        source = run_dir / name
        if source.is_file():
            temporary = directory / f".{BEST_MODEL}.tmp"
            shutil.copyfile(source, temporary)
            os.replace(temporary, directory / BEST_MODEL)
            return BEST_MODEL
    return None


def plot_trials(rows, path) -> Path:
    """Score against trial: completed trials, failures at the bottom, best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axis = plt.subplots(figsize=(max(6, 0.3 * len(rows)), 4))
    positions = list(range(len(rows)))
    done = [
        (x, row["score"])
        for x, row in zip(positions, rows, strict=True)
        if row["score"] is not None
    ]
    failed = [x for x, row in zip(positions, rows, strict=True) if row["score"] is None]
    if done:
        axis.plot(*zip(*done, strict=True), "o", label=f"trial {OBJECTIVE}")
        best, running = -math.inf, []
        for x, score in done:
            best = max(best, score)
            running.append((x, best))
        axis.step(*zip(*running, strict=True), where="post", label="best so far")
    if failed:
        bottom = min((score for _, score in done), default=0.0)
        axis.plot(failed, [bottom] * len(failed), "x", color="red", label="failed")
    if len(rows) <= 40:
        axis.set_xticks(positions, [row["trial_id"] for row in rows])
    axis.set(xlabel="trial", ylabel=OBJECTIVE, title="Search: score by trial")
    axis.grid(alpha=0.3)
    if done or failed:
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def format_table(rows) -> str:
    """The trials as an aligned text table, one trial a line."""
    names = [
        name for name in hyperparameter_names(rows) if not name.startswith("tuner/")
    ]
    header = ["trial", "status", OBJECTIVE, *names, "seconds"]
    lines = [header]
    for row in rows:
        values = row["hyperparameters"]
        lines.append(
            [
                row["trial_id"],
                row["status"] or "?",
                "-" if row["score"] is None else f"{row['score']:.4f}",
                *(_format_value(values.get(name, "-")) for name in names),
                "-" if row["seconds"] is None else f"{row['seconds']:.1f}",
            ]
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in lines
    )


def summary_text(directory, rows) -> str:
    """The table, the count by status and the best trial, for a person to read."""
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    status = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    lines = [format_table(rows), "", f"{len(rows)} trial(s): {status or 'none'}."]
    best = best_trial(rows)
    if best is None:
        lines.append("No trial completed.")
    else:
        values = {
            key: _format_value(value)
            for key, value in best["hyperparameters"].items()
            if not key.startswith("tuner/")
        }
        shown = ", ".join(f"{key}={value}" for key, value in values.items())
        lines.append(
            f"Best: trial {best['trial_id']}, {OBJECTIVE} {best['score']:.4f} "
            f"({shown})."
        )
        directory = Path(directory)
        if (directory / BEST_MODEL).is_file():
            lines.append(f"Best model: {directory / BEST_MODEL}")
    return "\n".join(lines)


# Data: the same loading and pipeline as apps.classify train


def datasets(args, spec, global_batch, augment):
    """Training stream, validation and steps, as `apps.classify` makes them.

    ``args`` has ``dataset``, ``validation_split`` (> 0: the objective is measured
    on it), ``steps_per_epoch``, ``eval_steps`` and ``seed``. Returns ``(train,
    validation, steps)``. ``train`` is a ``start_epoch -> stream`` factory that
    builds the stream on first use (a search with no trial left reads no data) and
    reuses it for every trial that starts at epoch 0, and for the next search in
    this process with the same data: the in-memory training split is read once,
    not once per trial.
    """
    from apps import data

    common = {
        "image_size": tuple(spec["input_shape"][:2]),
        "channels": spec["channels"],
        "seed": args.seed,
    }
    percent = round(100 * (1 - args.validation_split))
    limit = args.eval_steps * global_batch if args.eval_steps else -1
    train_examples = data.load(args.dataset, f"train[:{percent}%]")
    natural_steps = data.images.epoch_steps(
        data.images.count_examples(train_examples), global_batch
    )
    steps = args.steps_per_epoch or natural_steps
    key = (args.dataset, percent, global_batch, repr(common), tuple(augment))

    def stream(start_epoch):
        if start_epoch == 0 and key in _FIRST_STREAM:
            return _FIRST_STREAM[key]
        built = data.pipeline(
            train_examples,
            batch_size=global_batch,
            training=True,
            augment=augment,
            start_epoch=start_epoch,
            **common,
        )
        if start_epoch == 0:
            _FIRST_STREAM.clear()  # one at a time: each holds its split in memory
            _FIRST_STREAM[key] = built
        return built

    def train(start_epoch):
        if steps == natural_steps:  # an epoch is a data epoch: start there
            return stream(start_epoch)
        # Epochs of --steps-per-epoch steps: one stream, skipped to the epoch.
        return stream(0).skip(start_epoch * steps)

    held_out = data.load(args.dataset, f"train[{percent}%:]").take(limit)
    validation = data.pipeline(held_out, batch_size=global_batch, **common)
    return train, validation, steps


# Helpers


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(
            f"{name} must be an integer >= {minimum}. Received: {name}={value!r}"
        )


def _trial_order(trial_id):
    return (0, int(trial_id), "") if str(trial_id).isdigit() else (1, 0, str(trial_id))


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _nan(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _jsonable(values: dict) -> dict:
    return json.loads(json.dumps(values, default=str))


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _write_json(path, data) -> None:
    """Writes JSON atomically: a kill leaves the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as file:
        file.write(json.dumps(data, indent=1, default=str))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
