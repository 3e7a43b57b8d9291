"""python -m tuning search/show in-process: files, resume, tuners, failures, errors."""

import csv
import json

import keras
import numpy as np
import pytest
from tiny import tiny_flags

from tuning import hypermodels
from tuning import search as search_lib
from tuning.__main__ import main

TINY = tiny_flags(epochs=2)


def _search(output, *extra, model="mlp", trials=2):
    argv = ["search", "--model", model, *TINY, "--max-trials", str(trials)]
    return main([*argv, "--output", str(output), *extra])


def _trials(output):
    return json.loads((output / "trials.json").read_text())["trials"]


def _values(rows):
    return [json.dumps(row["hyperparameters"], sort_keys=True) for row in rows]


@pytest.fixture(scope="module")
def two_trials(fashion_mnist, tmp_path_factory):
    output = tmp_path_factory.mktemp("search")
    assert _search(output) == 0
    return output


def test_a_search_writes_its_record(two_trials, capsys):
    for name in (
        "best_hyperparameters.json",
        "best_model.keras",
        "trials.csv",
        "trials.json",
        "trials.png",
        "search.json",
        "preprocessing.json",
        "keras_tuner/oracle.json",
    ):
        assert (two_trials / name).is_file(), name
    rows = _trials(two_trials)
    assert [row["status"] for row in rows] == ["COMPLETED", "COMPLETED"]
    assert len(set(_values(rows))) == 2
    for row in rows:
        assert 0.0 <= row["score"] <= 1.0 and row["seconds"] > 0
        assert set(hypermodels.TUNED) <= set(row["hyperparameters"])
        run_dir = two_trials / "trials" / f"trial_{row['trial_id']}"
        # Each trial is a run of the training core.
        assert (run_dir / "history.csv").is_file() and (
            run_dir / "model.keras"
        ).is_file()
        assert not (run_dir / "state").exists()
    with open(two_trials / "trials.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert [row["status"] for row in table] == ["COMPLETED", "COMPLETED"]
    for column in ("val_accuracy", "seconds", "learning_rate", "dropout", "depth"):
        assert column in table[0], column
    best = json.loads((two_trials / "best_hyperparameters.json").read_text())
    assert best["score"] == max(row["score"] for row in rows)
    assert set(hypermodels.TUNED) <= set(best["hyperparameters"])
    model = keras.saving.load_model(two_trials / "best_model.keras")
    assert model.predict(np.zeros((1, 28, 28, 1)), verbose=0).shape == (1, 10)
    assert main(["show", str(two_trials)]) == 0
    shown = capsys.readouterr().out
    assert "learning_rate" in shown and "COMPLETED" in shown and "Best: trial" in shown


def test_rerunning_a_finished_search_trains_nothing(two_trials, capsys):
    before = _trials(two_trials)
    assert _search(two_trials) == 0
    assert "Reloading Tuner" in capsys.readouterr().out
    after = _trials(two_trials)
    assert [row["attempts"] for row in after] == [1, 1]
    assert after == before


@pytest.mark.parametrize(
    # bayesian: the same resume path as hyperband's, 10 s on 2 CPUs
    "tuner",
    ["hyperband", pytest.param("bayesian", marks=pytest.mark.slow)],
)
def test_each_tuner_runs_and_resumes(fashion_mnist, tmp_path, tuner):
    if tuner == "bayesian" and not search_lib.bayesian_available():
        pytest.skip("Bayesian optimisation needs scikit-learn")
    extra = ["--tuner", tuner, "--epochs", "1", "--steps-per-epoch", "1"]
    if tuner == "hyperband":
        # Two rounds: two trials of 1 epoch, then the better one continued to 2.
        extra += ["--epochs", "2", "--hyperband-factor", "2"]
    assert _search(tmp_path, *extra, trials=2) == 0
    # Bayesian: the third trial is the Gaussian process's; Hyperband: the
    # continuation, decided by the reloaded brackets.
    assert _search(tmp_path, *extra, trials=3) == 0
    rows = _trials(tmp_path)
    assert [row["status"] for row in rows] == ["COMPLETED"] * 3
    assert [row["attempts"] for row in rows] == [1, 1, 1]
    if tuner == "hyperband":
        values = rows[2]["hyperparameters"]
        assert values["tuner/trial_id"] in ("0", "1")
        assert (values["tuner/initial_epoch"], values["tuner/epochs"]) == (1, 2)
    else:
        assert len(set(_values(rows))) == 3


def test_a_crashing_trial_is_retried_and_logged(fashion_mnist, tmp_path, monkeypatch):
    real_fit = hypermodels.ClassifierHyperModel.fit
    crashed = set()

    def flaky_fit(self, hp, model, *args, run_dir, **kwargs):
        if run_dir.name not in crashed:
            crashed.add(run_dir.name)
            raise OSError("disk hiccup")
        return real_fit(self, hp, model, *args, run_dir=run_dir, **kwargs)

    monkeypatch.setattr(hypermodels.ClassifierHyperModel, "fit", flaky_fit)
    assert _search(tmp_path, "--epochs", "1", trials=1) == 0
    rows = _trials(tmp_path)
    assert [row["status"] for row in rows] == ["COMPLETED"]
    assert [row["attempts"] for row in rows] == [2]
    log = (tmp_path / "trials" / "trial_0" / "errors.log").read_text()
    assert "OSError: disk hiccup" in log


def test_too_many_failures_stop_the_search(
    fashion_mnist, tmp_path, monkeypatch, capsys
):
    def broken_fit(self, *args, **kwargs):
        raise OSError("always broken")

    monkeypatch.setattr(hypermodels.ClassifierHyperModel, "fit", broken_fit)
    argv = ["--max-retries-per-trial", "1", "--max-consecutive-failed-trials", "2"]
    assert _search(tmp_path, *argv, trials=5) == 1
    error = capsys.readouterr().err
    assert "2 trials failed in a row" in error and "re-run the same command" in error
    rows = _trials(tmp_path)  # the record is written all the same
    assert [row["status"] for row in rows] == ["FAILED", "FAILED"]
    assert [row["attempts"] for row in rows] == [2, 2]
    assert "always broken" in rows[0]["message"]
    # --overwrite starts afresh: the old trials and their run directories go.
    argv = ["--max-retries-per-trial", "0", "--max-consecutive-failed-trials", "1"]
    assert _search(tmp_path, *argv, "--overwrite", trials=5) == 1
    assert [row["attempts"] for row in _trials(tmp_path)] == [1]
    assert not (tmp_path / "trials" / "trial_1").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "nosuchnet"], "Unknown model to tune"),
        (["--model", "vgg16"], "tune the family's configurable model"),
        (["--max-trials", "0"], "--max-trials must be >= 1"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--validation-split", "0"], "--validation-split must be in (0, 1)"),
        (["--learning-rate", "0.1"], "--learning-rate is not supported here"),
        (["--early-stopping", "2"], "--early-stopping is not supported here"),
        (["--model-option", "fc_units"], "KEY=VALUE"),
        (["--model-option", "width=64"], "sets ['width'] itself"),
        (["--dataset", "no_such_dataset"], "no_such_dataset"),
    ],
)
def test_bad_arguments_exit_2_before_anything_starts(
    fashion_mnist, tmp_path, capsys, argv, message
):
    base = {"--model": "mlp", "--max-trials": "2"}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        base[flag] = value
    merged = [item for pair in base.items() for item in pair]
    output = tmp_path / "out"
    assert main(["search", *TINY, *merged, "--output", str(output)]) == 2
    assert message in capsys.readouterr().err
    assert not (output / "keras_tuner").exists()


@pytest.mark.parametrize(
    ("flag", "value"), [("--tuner", "grid"), ("--optimizer", "adamw")]
)
def test_an_unknown_choice_is_refused_by_the_parser(capsys, flag, value):
    with pytest.raises(SystemExit) as stop:
        main(["search", "--model", "mlp", flag, value, *TINY, "--output", "x"])
    assert stop.value.code == 2
    assert f"invalid choice: '{value}'" in capsys.readouterr().err


def test_the_training_flags_reach_every_trial(monkeypatch, tmp_path):
    """The shared training flags (apps.cli) become the trials' TrainOptions."""
    seen = {}

    def prepare(config):
        seen["options"] = config.options
        raise search_lib.ConfigurationError("stop here")

    monkeypatch.setattr(search_lib, "prepare", prepare)
    argv = ["--weight-decay", "0.01", "--lr-schedule", "constant", "--jit"]
    assert _search(tmp_path / "out", *argv) == 2
    options = seen["options"]
    assert (options.weight_decay, options.lr_schedule, options.jit) == (
        0.01,
        "constant",
        True,
    )
    assert (options.epochs, options.batch_size, options.seed) == (2, 16, 0)


def test_another_search_in_the_same_directory_is_refused(two_trials, capsys):
    assert _search(two_trials, model="lenet5") == 2
    assert "holds another search" in capsys.readouterr().err


def test_show_without_a_search_exits_2(tmp_path, capsys):
    assert main(["show", str(tmp_path)]) == 2
    assert "holds no search" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"KERASTUNER_TUNER_ID": "tuner0"}, "KERASTUNER_ORACLE_IP"),
        (
            {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"},
            "KERASTUNER_TUNER_ID",
        ),
        (
            {
                "KERASTUNER_TUNER_ID": "tuner0",
                "KERASTUNER_ORACLE_IP": "127.0.0.1",
                "KERASTUNER_ORACLE_PORT": "http",
            },
            "KERASTUNER_ORACLE_PORT must be a port number",
        ),
        (
            {
                "KERASTUNER_TUNER_ID": "tuner0",
                "KERASTUNER_ORACLE_IP": "127.0.0.1",
                "KERASTUNER_ORACLE_PORT": "70000",
            },
            "1-65535",
        ),
        (
            {
                "KERASTUNER_TUNER_ID": "my_chief_2",
                "KERASTUNER_ORACLE_IP": "127.0.0.1",
                "KERASTUNER_ORACLE_PORT": "8000",
            },
            "exactly 'chief'",
        ),
        (
            {
                "KERASTUNER_TUNER_ID": "tuner0",
                "KERASTUNER_ORACLE_IP": " ",
                "KERASTUNER_ORACLE_PORT": "8000",
            },
            "the chief's address",
        ),
    ],
)
def test_misconfigured_distribution_exits_2(
    tmp_path, monkeypatch, capsys, environment, message
):
    for name in search_lib.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert _search(tmp_path / "out") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _damaged(directory):
    (directory / "search.json").write_text('{"command": "tuning search"')


def _in_use(directory):
    """This very search's directory, locked by another process (pid 4242)."""
    import fcntl

    search = {"model": "mlp", "dataset": "fashion_mnist", "tuner": "random"}
    record = {"command": "tuning search", "search": search}
    (directory / "search.json").write_text(json.dumps(record))
    lock = open(directory / ".lock", "a+")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lock.write("4242")
    lock.flush()
    return lock


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda directory: None, "is not empty and is not a run directory"),
        (_damaged, "search.json is damaged"),
        (_in_use, "is in use by pid 4242"),
    ],
)
def test_an_output_that_is_not_this_search_is_refused_untouched(
    fashion_mnist, tmp_path, capsys, prepare, message
):
    """It was searched in: a user's folder got keras_tuner/, trials/ and reports;
    two searches at once on one directory mixed their trials."""
    output = tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    held = prepare(output)
    before = {path.name: path.read_bytes() for path in output.iterdir()}
    try:
        assert _search(output) == 2
    finally:
        if held is not None:
            held.close()
    captured = capsys.readouterr()
    assert message in captured.err and len(captured.err.splitlines()) == 1
    assert "Traceback" not in captured.out + captured.err
    assert {path.name: path.read_bytes() for path in output.iterdir()} == before


def test_a_search_directory_is_marked_by_search_json(tmp_path):
    """An empty keras_tuner/ (a worker started before its chief made it) and the
    marker's temporary file (a kill as it was written) do not make the directory
    someone else's; any other file does."""
    directory = search_lib.search_directory(tmp_path, "mlp", "fashion_mnist")
    (tmp_path / "keras_tuner").mkdir()
    (tmp_path / ".search.json.tmp").write_text('{"comm')
    assert directory.check(overwrite=False) == "new"
    (tmp_path / "keras_tuner" / "tuner0.json").write_text("{}")
    with pytest.raises(ValueError, match="has no search.json"):
        directory.check(overwrite=False)
    record = {"model": "lenet5", "dataset": "fashion_mnist", "tuner": "random"}
    (tmp_path / "search.json").write_text(
        json.dumps({"command": "tuning search", "search": record})
    )
    with pytest.raises(ValueError, match="holds a run of lenet5 on fashion_mnist"):
        directory.check(overwrite=False)
    assert directory.check(overwrite=True) == "replace"
    record["model"] = "mlp"
    (tmp_path / "search.json").write_text(
        json.dumps({"command": "tuning search", "search": record})
    )
    assert directory.check(overwrite=False) == "resume"


def test_show_names_a_damaged_trial_and_shows_the_others(tmp_path, capsys):
    """A corrupt trial.json was dropped without a word."""
    project = tmp_path / "keras_tuner"
    for trial_id in ("0", "1"):
        (project / f"trial_{trial_id}").mkdir(parents=True)
    (project / "oracle.json").write_text("{}")
    state = {
        "trial_id": "0",
        "status": "COMPLETED",
        "score": 0.75,
        "best_step": 0,
        "hyperparameters": {"values": {"learning_rate": 0.01}},
    }
    (project / "trial_0" / "trial.json").write_text(json.dumps(state))
    (project / "trial_1" / "trial.json").write_text('{"trial_id": "1", "stat')
    assert main(["show", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "1 trial(s): 1 COMPLETED" in captured.out and "0.75" in captured.out
    warning = captured.err.strip()
    assert len(warning.splitlines()) == 1
    assert "trial_1/trial.json is damaged (JSONDecodeError)" in warning
