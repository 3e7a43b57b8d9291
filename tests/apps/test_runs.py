"""A run directory is ours or it is refused; one command at a time (apps.runs)."""

import json
import os

import pytest

from apps import runs
from apps.cli import UsageError

COMMAND = "apps.classify train"


def _run(path, model="lenet5", dataset="fashion_mnist"):
    return runs.RunDirectory(path, COMMAND, model, dataset)


def _record(path, model="lenet5", dataset="fashion_mnist", finished=False):
    path.mkdir(parents=True, exist_ok=True)
    record = {"command": COMMAND, "arguments": {"model": model, "dataset": dataset}}
    (path / "run.json").write_text(json.dumps(record))
    (path / "history.csv").write_text("epoch,loss\n0,1.0\n")
    if finished:
        (path / "metrics.json").write_text("{}")


def _users_folder(path):
    (path / "state").mkdir(parents=True)
    for name in ("notes.txt", "model.keras", "history.csv", "state/keep.txt"):
        (path / name).write_text("the user's")
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_missing_or_empty_directories_are_new(tmp_path):
    assert _run(tmp_path / "missing").check(overwrite=False) == "new"
    (tmp_path / "empty").mkdir()
    assert _run(tmp_path / "empty").check(overwrite=False) == "new"


def test_our_run_resumes_or_is_finished(tmp_path):
    _record(tmp_path / "unfinished")
    assert _run(tmp_path / "unfinished").check(overwrite=False) == "resume"
    _record(tmp_path / "finished", finished=True)
    assert _run(tmp_path / "finished").check(overwrite=False) == "finished"
    assert _run(tmp_path / "finished").check(overwrite=True) == "replace"


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_folder_is_refused_and_untouched(tmp_path, overwrite):
    before = _users_folder(tmp_path / "mine")
    with pytest.raises(UsageError, match="is not a run directory"):
        _run(tmp_path / "mine").check(overwrite=overwrite)
    assert (
        sorted(
            str(p.relative_to(tmp_path / "mine"))
            for p in (tmp_path / "mine").rglob("*")
        )
        == before
    )


def test_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        _run(tmp_path / "file").check(overwrite=False)


@pytest.mark.parametrize(
    "model, dataset", [("mlp", "fashion_mnist"), ("lenet5", "mnist")]
)
def test_another_models_or_datasets_run_is_refused_not_mixed(tmp_path, model, dataset):
    _record(tmp_path / "run")
    with pytest.raises(UsageError, match="holds a run of lenet5 on fashion_mnist"):
        _run(tmp_path / "run", model, dataset).check(overwrite=False)
    assert _run(tmp_path / "run", model, dataset).check(overwrite=True) == "replace"


def test_a_damaged_record_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text('{"comm')
    with pytest.raises(UsageError, match="run.json is damaged"):
        _run(tmp_path / "run").check(overwrite=True)


def test_a_second_command_on_the_same_directory_fails_at_once(tmp_path):
    first = _run(tmp_path / "run")
    first.open()
    with pytest.raises(UsageError, match=f"in use by pid {os.getpid()}"):
        _run(tmp_path / "run").open()
    with pytest.raises(UsageError, match="in use by pid"):
        _run(tmp_path / "run").open(replace=True)
    first.close()
    second = _run(tmp_path / "run")
    second.open()
    second.close()


def test_replace_starts_afresh_and_never_appends(tmp_path):
    _record(tmp_path / "run", finished=True)
    run = _run(tmp_path / "run")
    run.open(replace=True)
    assert sorted(os.listdir(tmp_path / "run")) == [runs.LOCK, "run.json"]
    assert json.loads((tmp_path / "run" / "run.json").read_text()) == run.marker()
    assert sorted(os.listdir(tmp_path)) == ["run"]  # the old one is gone, not aside
    run.close()


def test_a_kill_before_the_full_record_leaves_a_run_the_command_resumes(tmp_path):
    run = _run(tmp_path / "run")
    run.open()
    (tmp_path / "run" / "split.json").write_text("{}")  # then SIGKILL: no close()
    run._lock.close()
    assert _run(tmp_path / "run").check(overwrite=False) == "resume"


def test_a_directory_left_empty_by_a_failure_is_removed(tmp_path):
    with _run(tmp_path / "new") as run:
        run.open()
        assert (tmp_path / "new" / runs.LOCK).exists()
    assert not (tmp_path / "new").exists()
    with _run(tmp_path / "kept") as run:
        run.open()
        (tmp_path / "kept" / "run.json").write_text("{}")
    assert (tmp_path / "kept" / "run.json").exists()


def test_an_unwritable_place_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot create --output"):
        _run(tmp_path / "file" / "run").open()
