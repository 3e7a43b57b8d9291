"""A run directory is ours or it is refused, and one command at a time works in it.

Every `train` command (classify, generate, translate) opens its `--output` through
`RunDirectory` before it writes anything:

- a missing or empty directory is a new run;
- a directory with a `run.json` of the same command, model and dataset is that run:
  resumed if unfinished, left alone if finished (`metrics.json`);
- anything else is refused with exit code 2 and left untouched: a file, a non-empty
  directory without `run.json` (`--output /etc`, a folder of the user's), a run of
  another model or dataset (it would be mixed with this one);
- `--overwrite` replaces an existing run, but only after every argument has been
  checked (`replace()` is called after validation): the old directory is renamed
  aside atomically, a fresh one is created, then the old one is deleted. A failure
  before that point leaves the old run as it was; the new run never appends to the
  old history;
- an exclusive lock (`fcntl.flock` on `.lock` inside the directory, released by the
  kernel when the process dies) makes a second command on the same directory fail at
  once with "in use by pid N".
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from pathlib import Path

from apps.errors import UsageError

RECORD = "run.json"
FINISHED = "metrics.json"
LOCK = ".lock"


class RunDirectory:
    """The `--output` of one train command.

    >>> run = RunDirectory("runs/lenet5", "apps.classify train", "lenet5",
    ...                    "fashion_mnist")                      # doctest: +SKIP
    >>> run.check(overwrite=False)     # "new", "resume" or "finished"; or raises
    >>> run.open(replace=False)        # after validation: lock (and replace)
    >>> run.close()                    # at the end (also on failure)

    `run.train(kind, chief, work)` is the sequence after `check` that every train
    command follows.

    A subclass may name another `record` file and read its identity
    (`identity_of`): `tuning.search.SearchDirectory` does, for `search.json`.
    """

    record = RECORD  # the file that makes a directory a run of ours

    def __init__(self, path, command: str, model: str, dataset: str | None):
        self.path = Path(path)
        self.identity = {"command": command, "model": model, "dataset": dataset}
        self._lock = None
        self._created = False

    # Before validation: read-only

    def check(self, overwrite: bool) -> str:
        """What the directory holds for this command: `"new"`, `"resume"`,
        `"finished"` or, with `overwrite`, `"replace"` for an existing run.

        Raises:
            UsageError: the directory is not ours or holds another run.
        """
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(
                f"--output {self.path} is a file; give a directory (new or a run "
                "directory of this command)."
            )
        if not self._entries():
            return "new"
        self._refuse_if_in_use()
        recorded = self._recorded_identity()
        if overwrite:
            return "replace"
        if recorded != self.identity:
            raise UsageError(
                f"--output {self.path} holds a run of {_describe(recorded)}, not of "
                f"{_describe(self.identity)}; mixing them would spoil both. Choose "
                "another --output, or pass --overwrite to replace that run."
            )
        return "finished" if (self.path / FINISHED).exists() else "resume"

    def _refuse_if_in_use(self) -> None:
        """Another command holding the lock is named first: what it is running
        does not matter, only that it is running there now."""
        try:
            probe = open(self.path / LOCK)
        except OSError:
            return
        with probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise UsageError(_in_use(self.path, probe.read().strip())) from None
            fcntl.flock(probe, fcntl.LOCK_UN)

    def _entries(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return [name for name in os.listdir(self.path) if name != LOCK]

    def _recorded_identity(self) -> dict:
        record = self.path / self.record
        if not record.is_file():
            raise UsageError(
                f"--output {self.path} is not empty and is not a run directory (it "
                f"has no {self.record}); nothing was touched. Choose a new or empty "
                "directory."
            )
        try:
            return self.identity_of(json.loads(record.read_text()))
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as error:
            raise UsageError(
                f"{record} is damaged ({type(error).__name__}), so the run in "
                f"--output {self.path} cannot be identified; nothing was touched. "
                "Choose another --output, or delete that directory yourself."
            ) from None

    @staticmethod
    def identity_of(data) -> dict:
        """The identity (command, model, dataset) a record holds; raises
        KeyError, AttributeError or TypeError for a record that holds none."""
        arguments = data.get("arguments", {})
        return {
            "command": data["command"],
            "model": arguments.get("model"),
            "dataset": arguments.get("dataset"),
        }

    def say_finished(self) -> None:
        print(
            f"{self.path} holds a finished run ({FINISHED}); nothing to do. "
            "Pass --overwrite to train again, or choose another --output."
        )

    # After validation: lock, and replace the old run

    def train(self, kind: str, chief: bool, work):
        """What a train command does once its checks passed (`kind` from
        :meth:`check`): a finished run is said to be finished (None); else the chief
        opens the directory (only the chief writes it), `work()` runs, and the
        directory is closed, also on failure. Returns what `work` returns."""
        if kind == "finished":
            self.say_finished()
            return None
        if chief:
            self.open(replace=kind == "replace")
        try:
            return work()
        finally:
            self.close()

    def open(self, replace: bool = False) -> None:
        """Creates and locks the directory; with `replace`, swaps in a fresh one
        (the old run is deleted only once the new directory is locked).

        Raises:
            UsageError: the directory cannot be created, or is in use.
        """
        if not replace:
            self._create_and_lock(self.path)
            self._mark()
            return
        self._create_and_lock(self.path)  # no one else may be using the old run
        old_lock, aside = (
            self._lock,
            self.path.with_name(f".{self.path.name}.replaced-{os.getpid()}"),
        )
        self._lock = None
        os.replace(self.path, aside)
        try:
            self._create_and_lock(self.path)
        finally:
            old_lock.close()
        shutil.rmtree(aside, ignore_errors=True)
        self._mark()

    def marker(self) -> dict | None:
        """The record written as soon as the directory is locked, so that a kill
        before the command writes its full record leaves a directory that the
        same command still recognises (and resumes); None writes nothing."""
        return {
            "command": self.identity["command"],
            "arguments": {
                "model": self.identity["model"],
                "dataset": self.identity["dataset"],
            },
        }

    def _mark(self) -> None:
        record, marker = self.path / self.record, self.marker()
        if marker is None or record.exists():
            return
        write_json(record, marker)

    def _create_and_lock(self, path: Path) -> None:
        try:
            self._created = not path.exists() or self._created
            path.mkdir(parents=True, exist_ok=True)
            self._lock = lock_with_pid(path / LOCK)
        except LockHeld as held:
            raise UsageError(_in_use(path, held.holder)) from None
        except OSError as error:
            raise UsageError(
                f"cannot create --output {path}: {error.strerror or error}. Choose a "
                "directory you can write to."
            ) from None

    def close(self) -> None:
        """Releases the lock; a directory this command created and left with
        nothing in it (a failure before the first file) is removed."""
        if self._lock is None:
            return
        self._lock.close()
        self._lock = None
        if self._created and not self._entries_besides_marker():
            shutil.rmtree(self.path, ignore_errors=True)

    def _entries_besides_marker(self) -> list[str]:
        entries = self._entries()
        if entries != [self.record]:
            return entries
        try:
            written = json.loads((self.path / self.record).read_text())
        except (OSError, ValueError):
            return entries
        return [] if written == self.marker() else entries

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _in_use(path, holder: str) -> str:
    return (
        f"--output {path} is in use by pid {holder or 'unknown'} (another command "
        "is working there); wait for it to finish or choose another --output."
    )


def _describe(identity: dict) -> str:
    dataset = identity.get("dataset")
    on = f" on {dataset}" if dataset else ""
    return f"{identity.get('model')}{on} ({identity.get('command')})"


def write_record(run_dir, command: str, arguments, options, strategy=None, **extra):
    """run.json: what was run (the command, its arguments, the resolved training
    options, versions, the strategy and replicas) and any `extra` fields. The one
    writer of run records, for every command."""
    import dataclasses

    from apps import training

    record = {
        "command": command,
        "arguments": dict(vars(arguments))
        if hasattr(arguments, "__dict__")
        else dict(arguments),
        "options": dataclasses.asdict(options)
        if dataclasses.is_dataclass(options)
        else options,
        "versions": training.versions(),
        **extra,
    }
    if strategy is not None:
        record["strategy"] = type(strategy).__name__
        record["replicas"] = training.replicas(strategy)
    write_json(Path(run_dir) / RECORD, record)


class LockHeld(Exception):
    """Another process holds the lock: ``holder`` is the pid it wrote, or ``""``."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def lock_with_pid(path):
    """Opens (creating) `path`, takes an exclusive `fcntl.flock` on it without
    waiting and writes our pid in it; the open file holds the lock until closed.

    Raises:
        OSError: `path` cannot be created.
        LockHeld: another process holds the lock.
    """
    lock = open(path, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        lock.seek(0)
        holder = lock.read().strip()
        lock.close()
        if error.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        raise LockHeld(holder) from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


# Files in a run directory are written whole or not at all: a kill mid-write leaves
# the previous version (or none), never half a file.


def atomic_write(path, write) -> None:
    """Calls `write(file)` on a temporary binary file beside `path`, syncs it to disk,
    then renames it over `path` (POSIX rename is atomic)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path, data) -> None:
    """`data` as indented, key-sorted JSON, written atomically. NumPy scalars become
    numbers, paths strings, anything else its repr."""
    text = json.dumps(data, indent=2, sort_keys=True, default=jsonable) + "\n"
    atomic_write(path, lambda file: file.write(text.encode()))


def jsonable(value):
    """A JSON value for what `json` cannot write (the `default` of `json.dumps`)."""
    if hasattr(value, "item") and callable(value.item):  # a NumPy scalar
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return repr(value)
