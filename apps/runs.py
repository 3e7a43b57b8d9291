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

from apps.cli import UsageError

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
    """

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

    def _entries(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return [name for name in os.listdir(self.path) if name != LOCK]

    def _recorded_identity(self) -> dict:
        record = self.path / RECORD
        if not record.is_file():
            raise UsageError(
                f"--output {self.path} is not empty and is not a run directory (it "
                f"has no {RECORD}); nothing was touched. Choose a new or empty "
                "directory."
            )
        try:
            data = json.loads(record.read_text())
            arguments = data.get("arguments", {})
            return {
                "command": data["command"],
                "model": arguments.get("model"),
                "dataset": arguments.get("dataset"),
            }
        except (OSError, ValueError, KeyError, AttributeError) as error:
            raise UsageError(
                f"{record} is damaged ({type(error).__name__}), so the run in "
                f"--output {self.path} cannot be identified; nothing was touched. "
                "Choose another --output, or delete that directory yourself."
            ) from None

    def say_finished(self) -> None:
        print(
            f"{self.path} holds a finished run ({FINISHED}); nothing to do. "
            "Pass --overwrite to train again, or choose another --output."
        )

    # After validation: lock, and replace the old run

    def open(self, replace: bool = False) -> None:
        """Creates and locks the directory; with `replace`, swaps in a fresh one
        (the old run is deleted only once the new directory is locked).

        Raises:
            UsageError: the directory cannot be created, or is in use.
        """
        if not replace:
            self._create_and_lock(self.path)
            return
        self._create_and_lock(self.path)  # no one else may be using the old run
        old_lock, aside = self._lock, self.path.with_name(
            f".{self.path.name}.replaced-{os.getpid()}"
        )
        self._lock = None
        os.replace(self.path, aside)
        try:
            self._create_and_lock(self.path)
        finally:
            old_lock.close()
        shutil.rmtree(aside, ignore_errors=True)

    def _create_and_lock(self, path: Path) -> None:
        try:
            self._created = not path.exists() or self._created
            path.mkdir(parents=True, exist_ok=True)
            lock = open(path / LOCK, "a+")
        except OSError as error:
            raise UsageError(
                f"cannot create --output {path}: {error.strerror or error}. Choose a "
                "directory you can write to."
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            raise UsageError(
                f"--output {path} is in use by pid {holder} (another command is "
                "training there); wait for it to finish or choose another --output."
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock

    def close(self) -> None:
        """Releases the lock; a directory this command created and left with
        nothing in it (a failure before the first file) is removed."""
        if self._lock is None:
            return
        self._lock.close()
        self._lock = None
        if self._created and not self._entries():
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _describe(identity: dict) -> str:
    dataset = identity.get("dataset")
    on = f" on {dataset}" if dataset else ""
    return f"{identity.get('model')}{on} ({identity.get('command')})"
