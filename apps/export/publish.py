"""Versioned, atomic publishing of export versions, one export of a name at a time.

TF Serving watches a base path, `EXPORT_DIR/NAME/`, and serves the integer-named
children `1/`, `2/`, ... as versions (the highest by default); other children are
ignored. Built on that contract:

- `staged_version(name, export_dir)`: a version is written into a staging directory
  beside the target whose name is not a number (`.tmp-<version>-<pid>-<hex>`), flushed
  to disk, and only then renamed to `<version>/`. A Serving process polling the base
  path never sees a half-written version, and an export that is killed leaves nothing
  that looks like one; the next export removes what dead exports left behind
  (`remove_stale`).
- `export_lock(export_dir, name)`: an export holds its name (an `flock` on
  `EXPORT_DIR/.NAME.lock`) while it runs; a second export of the name fails at once
  with "in use by pid N". `staged_version` takes it; the commands take it first.

Versions: without one, the next integer after the highest existing; an existing
version is never overwritten unless `force=True`, which swaps the new one in
atomically (Linux `renameat2(RENAME_EXCHANGE)`; elsewhere rename the old away, rename
the new in, delete the old).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from apps.runs import LockHeld, lock_with_pid

# Staging and swapped-out directories live beside the versions; TF Serving ignores
# them because their names are not integers. The pid says whether their owner lives.
_SCRATCH = re.compile(r"\.(?P<kind>tmp|old)-(?P<version>\d+)-(?P<pid>\d+)-[0-9a-f]+")
_VERSION = re.compile(r"[0-9]+")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MAX_VERSION = 2**63 - 1  # TF Serving keeps versions in an int64
STALE_AFTER_SECONDS = 24 * 3600  # scratch of a live pid this old is left over anyway


class ExportError(ValueError):
    """An export that cannot be done as asked: bad name, version, model or spec, or a
    version that exists already (without `force`). Nothing was written."""


def check_name(name) -> None:
    """ExportError unless `name` can be an export name (a directory and TF
    Serving's model name)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ExportError(
            "name must be 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it becomes a directory and TF Serving's model name). "
            f"Received: name={name!r}"
        )


class _Staging:
    """Where a version is being written (`path`) and where it will appear."""

    def __init__(self, base: Path, version: int | None, force: bool):
        self.base = base
        self.force = force
        self.auto = version is None
        self.version = next_version(base) if version is None else version
        self.path = base / f".tmp-{self.version}-{os.getpid()}-{uuid.uuid4().hex[:12]}"

    @property
    def target(self) -> Path:
        return self.base / str(self.version)


@contextlib.contextmanager
def staged_version(
    name: str,
    export_dir: str | os.PathLike = "saved_models",
    version: int | str | None = None,
    *,
    force: bool = False,
    subdirectory: str | None = None,
):
    """Yields a staging area for one version; publishes it when the block succeeds.

    The lower layer of `export_signatures`, for exports that write the SavedModel
    themselves: write into `staging.path` (it does not exist yet); on leaving the
    block without an exception the directory is flushed to disk and renamed to
    `staging.target`; on an exception (or a kill) it never becomes a version. Stale
    scratch directories of dead exports under the same base path are removed first.
    The export name is held (`export_lock`) meanwhile.

    `name` and `version` are checked as in `export_signatures`. `subdirectory`: the
    versions live in `EXPORT_DIR/NAME/SUBDIRECTORY/` instead (other formats than
    the SavedModel, e.g. `"onnx"`; TF Serving ignores such a non-integer child).
    """
    check_name(name)
    version = parse_version(version)
    base = check_export_dir(export_dir) / name
    if subdirectory is not None:
        check_name(subdirectory)
        if _VERSION.fullmatch(subdirectory):
            raise ExportError(
                f"subdirectory must not be a number (TF Serving would take it for "
                f"a version). Received: {subdirectory!r}"
            )
        base = base / subdirectory
    if base.exists() and not base.is_dir():
        raise ExportError(f"{base} exists and is not a directory.")
    with export_lock(export_dir, name):
        if version is not None and _is_version(base / str(version)) and not force:
            raise ExportError(
                f"version {version} of {name!r} exists already "
                f"({base / str(version)}); pass force=True (--force) to replace it, "
                "or choose another version."
            )
        _make_directory(base)
        remove_stale(base)
        staging = _Staging(base, version, force)
        try:
            yield staging
            if not staging.path.is_dir():
                raise RuntimeError(f"nothing was written to {staging.path}")
            _fsync_tree(staging.path)
            _publish(staging)
        finally:
            # After a publish this is gone, or (after a swap) holds the old version.
            shutil.rmtree(staging.path, ignore_errors=True)


def check_export_dir(export_dir: str | os.PathLike) -> Path:
    """`export_dir` as a Path, or an ExportError when it cannot hold exports: it, or
    the nearest of its parents that exists, is not a directory. Creates nothing."""
    path = Path(export_dir)
    for candidate in (path, *path.parents):
        try:
            if not candidate.exists():
                continue
        except OSError as error:
            raise ExportError(
                f"cannot use export_dir {path}: {error.strerror or error}. Choose a "
                "directory you can write to (--export-dir)."
            ) from None
        if candidate.is_dir():
            return path
        where = "it is" if candidate == path else f"{candidate} is"
        raise ExportError(
            f"export_dir {path} cannot hold exports: {where} a file, not a "
            "directory. Choose a directory (--export-dir)."
        )
    return path


def _make_directory(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(
            f"cannot create {path}: {error.strerror or error}. Choose an export "
            "directory you can write to (--export-dir)."
        ) from None


# Export names held by this process: lock file -> [open file, depth]. Re-entrant, so
# a command may hold its name for its whole run while the library takes it again.
_HELD_LOCKS: dict[str, list] = {}
_HELD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def export_lock(export_dir: str | os.PathLike, name: str):
    """Holds the export name `name` under `export_dir` for this process.

    An exclusive `fcntl.flock` on `EXPORT_DIR/.NAME.lock` (beside the base path, so
    TF Serving's base path holds only versions; the kernel releases it when the
    process dies). A second process exporting the same name meanwhile gets an
    ExportError "... in use by pid N" at once, before it converts or writes
    anything. Re-entrant within a process. Creates `export_dir` if needed.
    """
    check_name(name)
    directory = check_export_dir(export_dir)
    _make_directory(directory)
    path = directory / f".{name}.lock"
    key = os.path.realpath(path)
    with _HELD_LOCKS_GUARD:
        held = _HELD_LOCKS.get(key)
        if held is None:
            held = _HELD_LOCKS[key] = [_acquire(path, name), 0]
        held[1] += 1
    try:
        yield path
    finally:
        with _HELD_LOCKS_GUARD:
            held[1] -= 1
            if held[1] == 0:
                del _HELD_LOCKS[key]
                held[0].close()


def _acquire(path: Path, name: str):
    """The open, flock-ed lock file with our pid in it; ExportError if held."""
    try:
        return lock_with_pid(path)
    except LockHeld as held:
        raise ExportError(
            f"export name {name!r} in {path.parent} is in use by pid "
            f"{held.holder or 'unknown'} (another export of it is running); wait "
            "for it to finish or choose another --name."
        ) from None
    except OSError as error:
        raise ExportError(
            f"cannot create {path}: {error.strerror or error}. Choose an export "
            "directory you can write to (--export-dir)."
        ) from None


def _publish(staging: _Staging) -> None:
    """Renames the staged directory to its version, atomically."""
    while True:
        target = staging.target
        if not _is_version(target):
            try:
                _rename_no_replace(staging.path, target)
                break
            except FileExistsError:
                pass  # another exporter published this version meanwhile
        elif staging.force:
            _swap(staging.path, target, staging.base, staging.version)
            break
        if not staging.auto:
            raise ExportError(
                f"version {staging.version} appeared in {staging.base} while "
                "exporting; pass force=True (--force) to replace it."
            )
        staging.version = next_version(staging.base)
    _fsync_directory(staging.base)


def versions(base: str | os.PathLike) -> list[int]:
    """The version numbers under a base path (integer-named directories), sorted."""
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted(int(entry.name) for entry in base.iterdir() if _is_version(entry))


def next_version(base: str | os.PathLike) -> int:
    """One more than the highest version under `base`; 1 for none."""
    existing = versions(base)
    return existing[-1] + 1 if existing else 1


def parse_version(version) -> int | None:
    """A version argument (None, an int or a string of digits) as an int or None."""
    if version is None:
        return None
    number = None
    if isinstance(version, (int, np.integer)) and not isinstance(version, bool):
        number = int(version)
    elif isinstance(version, str) and _VERSION.fullmatch(version.strip()):
        number = int(version.strip())
    if number is None or not 1 <= number <= _MAX_VERSION:
        raise ExportError(
            "version must be a positive integer (TF Serving's version directories "
            f"are integers; omit it for the next one). Received: version={version!r}"
        )
    return number


def remove_stale(base: str | os.PathLike) -> list[Path]:
    """Removes what dead exports left under a base path; returns what it removed.

    Staging directories (`.tmp-*`) of processes that no longer run, or older than
    `STALE_AFTER_SECONDS`, are deleted. A swapped-out old version (`.old-N-*`, from an
    interrupted `force` without `renameat2`) is put back if version N is missing,
    else deleted. The pid test assumes one machine writes a base path at a time.
    """
    removed = []
    for entry in Path(base).iterdir():
        match = _SCRATCH.fullmatch(entry.name)
        if not match or not entry.is_dir():
            continue
        try:
            age = time.time() - entry.stat().st_mtime
        except FileNotFoundError:
            continue  # its owner just finished
        if _alive(int(match["pid"])) and age < STALE_AFTER_SECONDS:
            continue
        original = Path(base) / match["version"]
        if match["kind"] == "old" and not original.exists():
            with contextlib.suppress(OSError):
                os.rename(entry, original)
                continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _is_version(path: Path) -> bool:
    return bool(_VERSION.fullmatch(path.name)) and path.is_dir()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    return True


# Renames. A plain rename of a directory onto an existing empty one succeeds on POSIX,
# so "publish unless it exists" and "swap two versions" need Linux's renameat2.
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2(source: Path, destination: Path, flags: int) -> bool:
    """renameat2(2); False where the system or file system does not provide it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    source, destination = os.fsencode(source), os.fsencode(destination)
    if function(_AT_FDCWD, source, _AT_FDCWD, destination, flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(
        code, os.strerror(code), os.fsdecode(source), None, os.fsdecode(destination)
    )


def _rename_no_replace(source: Path, destination: Path) -> None:
    if _renameat2(source, destination, _RENAME_NOREPLACE):
        return
    if destination.exists():
        raise FileExistsError(errno.EEXIST, "exists", str(destination))
    try:
        os.rename(source, destination)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(errno.EEXIST, "exists", str(destination)) from error
        raise


def _swap(staged: Path, target: Path, base: Path, version: int) -> None:
    """Puts `staged` in place of the existing `target`; the old one ends up at
    `staged` (atomic exchange) or is deleted."""
    if _renameat2(staged, target, _RENAME_EXCHANGE):
        return
    # No atomic exchange: the version is missing for an instant; if we die in that
    # instant, `remove_stale` puts the old one back.
    old = base / f".old-{version}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    os.rename(target, old)
    os.rename(staged, target)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    """Flushes every file and directory under `root` (survives a power cut too)."""
    for directory, _, files in os.walk(root):
        for filename in files:
            descriptor = os.open(os.path.join(directory, filename), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _fsync_directory(directory)


def _fsync_directory(path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
