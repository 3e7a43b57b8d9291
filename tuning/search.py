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

import csv
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

from apps import runs

TUNERS = ("random", "hyperband", "bayesian")
OBJECTIVE = "val_accuracy"
PROJECT = "keras_tuner"
TRIALS = "trials"
SEARCH_FILE = "search.json"
PREPROCESSING_FILE = "preprocessing.json"
BEST_HYPERPARAMETERS = "best_hyperparameters.json"
BEST_MODEL = "best_model.keras"
ENVIRONMENT = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
CHIEF = "chief"
LEADING_COLUMNS = ("learning_rate", "dropout", "depth")


class SearchError(RuntimeError):
    """The search cannot go on; the message says what happened and what to try."""


class ConfigurationError(ValueError):
    """Bad search configuration (arguments, environment, output directory)."""


# The search: configuration, checks, then trials and reports


@dataclasses.dataclass
class SearchConfig:
    """One search: what `python -m tuning search` takes, typed.

    ``options`` are the `apps.training.TrainOptions` of every trial (the learning
    rate is tuned); ``model_options`` fixed builder arguments (``fc_units=512``);
    ``arguments`` what the command line was, recorded in search.json.
    """

    model: str
    dataset: str
    output: Path
    options: object
    tuner: str = "random"
    max_trials: int = 10
    hyperband_factor: int = 3
    max_retries_per_trial: int = 1
    max_consecutive_failed_trials: int = 3
    validation_split: float = 0.1
    eval_steps: int | None = None
    augment: str = "none"
    model_options: dict = dataclasses.field(default_factory=dict)
    overwrite: bool = False
    arguments: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Prepared:
    """A checked search, ready to run: nothing is written yet."""

    config: SearchConfig
    model: str
    role: Role | None
    directory: object
    kind: str | None
    strategy: object
    dataset_info: object
    spec: dict
    folder: object
    loaded: tuple | None
    hypermodel: object
    started: float


@dataclasses.dataclass
class Outcome:
    """What a search came to: every trial, the best, and why it stopped early."""

    rows: list
    best: dict | None
    failure: str | None


def prepare(config: SearchConfig) -> Prepared:
    """Every check, before anything is written: model, options, output, tuner,
    data; returns what `run` needs.

    The output is opened as a train command opens its run directory
    (`apps.runs`): refused unless new, empty or a search of the same model and
    dataset. In a distributed search only the chief opens it.

    Raises:
        ValueError: a bad model, option, output or tuner (ConfigurationError and
            the builders', data's and training core's ValueErrors).
        SearchError: an unreadable image in a folder dataset.
    """
    from apps import data, training
    from tuning import hypermodels, trial_data

    started = time.perf_counter()
    role = distributed_role()
    owner = role is None or role.chief  # writes (and locks) the search directory
    model = hypermodels.resolve_model(config.model)
    augment = data.images.parse_augment(config.augment)
    _check_resumable(config, model)
    directory = search_directory(config.output, model, config.dataset)
    kind = directory.check(config.overwrite) if owner else None
    check_tuner(config.tuner)
    strategy = training.setup(config.options)
    dataset_info = data.describe(config.dataset)
    spec = _preprocessing_spec(dataset_info, model)
    folder, loaded = trial_data.load(config, spec, strategy, augment, role)
    hypermodel = hypermodels.hypermodel_for(
        model,
        tuple(spec["input_shape"]),
        dataset_info.num_classes,
        options=config.options,
        **config.model_options,
    )
    return Prepared(
        config,
        model,
        role,
        directory,
        kind,
        strategy,
        dataset_info,
        spec,
        folder,
        loaded,
        hypermodel,
        started,
    )


def run(prepared: Prepared) -> Outcome | None:
    """Locks the output, records the search, runs (or serves) the trials, writes
    the reports; None for a worker of a distributed search (the chief reports).

    Raises:
        ConfigurationError: Keras Tuner refused the project, or the chief cannot
            listen on its address.
        SearchError: a worker lost the chief, or stopped on too many failures.
    """
    config, role = prepared.config, prepared.role
    owner = role is None or role.chief
    output = Path(config.output)
    if owner:
        prepared.directory.open(replace=prepared.kind == "replace")
    try:
        if owner:  # the marker first: from here on the directory is this search's
            _write_search_record(prepared)
        tuner = _tuner(prepared)
        if owner:
            tuner.save()  # from here on a re-run reloads, wherever a kill falls
        if role is not None and role.chief:
            from tuning import oracles

            oracles.serve_oracle(tuner, role)
            failure = _stop_reason(tuner)
        else:
            train, validation, steps = prepared.loaded
            config.options.steps_per_epoch = steps  # the hypermodel's: every trial
            failure = _run_trials(tuner, train, validation, prepared)
            if role is not None:
                if failure:
                    raise SearchError(failure)
                return None
        rows = collect_trials(output)
        best = write_reports(output, rows, summary=_summary(prepared, rows))
    finally:
        prepared.directory.close()
    return Outcome(rows, best, failure)


def _tuner(prepared):
    config = prepared.config
    try:
        return make_tuner(
            config.tuner,
            prepared.hypermodel,
            config.output,
            max_trials=config.max_trials,
            epochs=config.options.epochs,
            hyperband_factor=config.hyperband_factor,
            seed=config.options.seed,
            max_retries_per_trial=config.max_retries_per_trial,
            max_consecutive_failed_trials=config.max_consecutive_failed_trials,
            strategy=prepared.strategy,
            overwrite=False,  # --overwrite: the directory was replaced on opening
        )
    except ValueError as error:
        if isinstance(error, ConfigurationError):
            raise
        raise ConfigurationError(str(error)) from error


def _summary(prepared, rows) -> dict:
    return {
        "model": prepared.model,
        "dataset": prepared.dataset_info.name,
        "tuner": prepared.config.tuner,
        "trial_seconds": sum(row["seconds"] or 0.0 for row in rows),
        "session_seconds": time.perf_counter() - prepared.started,
    }


def _run_trials(tuner, train, validation, prepared) -> str | None:
    """Runs the trials; returns why the search stopped early, or None."""
    role = prepared.role
    try:
        tuner.search(train, validation, strategy=prepared.strategy)
    except Exception as error:
        if role is None or type(error).__module__.split(".")[0] != "grpc":
            raise
        details = getattr(error, "details", lambda: "")() or type(error).__name__
        return (
            f"the chief oracle at {role.ip}:{role.port} did not answer ({details}). "
            "Restart the chief if it stopped, then this worker."
        )
    return _stop_reason(tuner)


def _stop_reason(tuner) -> str | None:
    reason = getattr(tuner.oracle, "stop_reason", None)
    if reason is None:
        return None
    return (
        f"{reason} Fix the cause (see the trials' errors.log), then re-run the "
        "same command: finished trials are kept."
    )


def _check_resumable(config, model):
    """A resumed search must be the same search: model, dataset and tuner."""
    record = read_json(Path(config.output) / SEARCH_FILE)
    if record is None or config.overwrite:
        return
    previous = record.get("search", {})
    current = {"model": model, "dataset": config.dataset, "tuner": config.tuner}
    changed = {k: previous.get(k) for k in current if previous.get(k) != current[k]}
    if changed:
        raise ConfigurationError(
            f"{config.output} holds another search ({changed}); re-running resumes "
            "only the same search. Pass --overwrite to start afresh, or another "
            "--output."
        )


def _preprocessing_spec(dataset_info, model) -> dict:
    """As the classifier's, so that best_model.keras works with its commands."""
    import apps
    from apps.tasks.classification import preprocessing_spec

    return preprocessing_spec(dataset_info, apps.get_model_info(model))


def _write_search_record(prepared):
    """search.json first: it marks the directory as this search's (a kill right
    after leaves a directory that resumes, not one that is refused); then what
    best_model.keras expects, and a folder dataset's split."""
    from apps import data, training

    output, role = Path(prepared.config.output), prepared.role
    output.mkdir(parents=True, exist_ok=True)
    runs.write_json(
        output / SEARCH_FILE,
        {
            "command": "tuning search",
            "search": {
                "model": prepared.model,
                "dataset": prepared.config.dataset,
                "tuner": prepared.config.tuner,
            },
            "arguments": prepared.config.arguments,
            "distributed": None if role is None else dataclasses.asdict(role),
            "strategy": type(prepared.strategy).__name__,
            "replicas": training.replicas(prepared.strategy),
            "versions": training.versions(),
        },
    )
    runs.write_json(output / PREPROCESSING_FILE, prepared.spec)
    if prepared.folder is not None:
        runs.write_json(output / data.folders.SPLIT_FILE, prepared.folder.to_json())


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

    from tuning import oracles

    if overwrite:
        clear_search(directory)
    objective = keras_tuner.Objective(OBJECTIVE, direction="max")
    failures = {
        "max_retries_per_trial": max_retries_per_trial,
        "max_consecutive_failed_trials": max_consecutive_failed_trials,
    }
    if kind == "hyperband":
        oracle = oracles.ORACLES[kind](
            objective,
            max_epochs=epochs,
            factor=hyperband_factor,
            hyperband_iterations=None,  # as many brackets as max_trials allows
            max_trials=max_trials,
            seed=seed,
            **failures,
        )
        cls = oracles.HyperbandTuner
    elif kind == "bayesian":
        oracle = oracles.ORACLES[kind](
            objective,
            max_trials=max_trials,
            num_initial_points=max(2, max_trials // 3),
            seed=seed,
            **failures,
        )
        cls = oracles.Tuner
    else:
        oracle = oracles.ORACLES[kind](
            objective, max_trials=max_trials, seed=seed, **failures
        )
        cls = oracles.Tuner
    return cls(
        oracle,
        hypermodel,
        seed=seed,
        directory=str(directory),
        project_name=PROJECT,
        overwrite=False,  # cleared above, with the trials' run directories
        distribution_strategy=strategy,
    )


# The search directory


def search_directory(directory, model: str, dataset: str):
    """The `--output` of `python -m tuning search`, opened as a train command opens
    its run directory (`apps.runs.RunDirectory`: ours or refused, one search at a
    time, `--overwrite` only after every check), marked by `search.json`.

    An empty ``keras_tuner/`` does not make the directory "not ours" (a worker
    started before its chief makes one), nor does the marker's own temporary file.
    """

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
        timing = read_json(directory / TRIALS / f"trial_{trial_id}" / "timing.json")
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
    runs.write_json(
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
    runs.write_json(
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


def report(output, outcome: Outcome) -> None:
    """Prints a finished search's trials table and directory; raises SearchError
    when it stopped early or no trial completed (exit code 1 for the caller)."""
    print()
    print(summary_text(output, outcome.rows))
    print(f"Search directory: {output}")
    if outcome.failure:
        raise SearchError(outcome.failure)
    if outcome.best is None:
        raise SearchError(
            "no trial completed; see the trials' errors.log in "
            f"{Path(output) / TRIALS}."
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


def read_json(path):
    """The JSON in ``path``, or None if it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
