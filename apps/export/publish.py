"""The one way out: versioned, atomic, warmed-up SavedModels for TensorFlow Serving.

    python -m apps.classify export --model-path runs/lenet5-fashion-mnist/model.keras \\
        --name lenet5            # -> saved_models/lenet5/1/, a few seconds for LeNet-5

TensorFlow Serving watches a base path, `EXPORT_DIR/NAME/`, and serves the integer-named
children `1/`, `2/`, ... as versions (the highest by default); other children are
ignored. Everything here is built on that contract:

- `export_signatures(signatures, name=...)` is the shared machinery for every command
  (classifier, GAN generator, translator): a dict of `tf.function`s with input
  signatures is written with Keras's `keras.export.ExportArchive` into a staging
  directory beside the target whose name is not a number (`.tmp-<version>-<pid>-<hex>`),
  given TF Serving warm-up records (`assets.extra/tf_serving_warmup_requests`), loaded
  back and run once, flushed to disk, and only then renamed to `<version>/`. A Serving
  process polling the base path never sees a half-written version, and an export that
  is killed leaves nothing that looks like one; the next export removes what dead
  exports left behind.
- `export_classifier(model, spec, name=...)` builds the image classifier's two
  signatures on it (see its docstring for inputs and outputs).
- `export_lock(export_dir, name)`: an export holds its name (an `flock` on
  `EXPORT_DIR/.NAME.lock`) while it runs; a second export of the name fails at once
  with "in use by pid N". `staged_version` takes it; the commands take it first.
- ONNX and LiteRT files (`apps.export_formats`) are published through
  `staged_version` too, under `EXPORT_DIR/NAME/FORMAT/VERSION/`.

Versions: without one, the next integer after the highest existing; an existing
version is never overwritten unless `force=True`, which swaps the new one in
atomically (Linux `renameat2(RENAME_EXCHANGE)`; elsewhere rename the old away, rename
the new in, delete the old).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

WARMUP_FILE = "tf_serving_warmup_requests"
CLASS_NAMES_ASSET = "class_names.txt"
IMAGE_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "predict_images"
CLASSIFIER_OUTPUTS = (
    "probabilities",
    "class_ids",
    "class_names",
    "top_k_probabilities",
    "top_k_class_ids",
    "top_k_class_names",
)
SPEC_KEYS = ("input_shape", "channels", "resize_mode", "normalization", "class_names")
# Staging and swapped-out directories live beside the versions; TF Serving ignores
# them because their names are not integers. The pid says whether their owner lives.
_SCRATCH = re.compile(r"\.(?P<kind>tmp|old)-(?P<version>\d+)-(?P<pid>\d+)-[0-9a-f]+")
_VERSION = re.compile(r"[0-9]+")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MAX_VERSION = 2**63 - 1  # TF Serving keeps versions in an int64
STALE_AFTER_SECONDS = 24 * 3600  # scratch of a live pid this old is left over anyway


class ExportError(ValueError):
    """An export that cannot be done as asked: bad name, version, model or spec, or a
    version that exists already (without `force`). Nothing was written."""


# The generic machinery


def export_signatures(
    signatures: Mapping[str, tf.types.experimental.GenericFunction],
    *,
    name: str,
    export_dir: str | os.PathLike = "saved_models",
    version: int | str | None = None,
    force: bool = False,
    track: Sequence = (),
    warmup: Mapping[str, Sequence[Mapping[str, object]]] | None = None,
    extra_assets: Mapping[str, str | bytes] | None = None,
    verify: bool = True,
) -> Path:
    """Writes `EXPORT_DIR/NAME/VERSION/`, a SavedModel with the given signatures,
    atomically.

    Any exportable computation fits: pass `tf.function`s created with an
    `input_signature` (their Python argument names become the signature's input names,
    the keys of the returned dict its output names). A GAN generator, for example::

        @tf.function(input_signature=[tf.TensorSpec((None, 100), tf.float32)])
        def generate(latent):
            images = generator(latent, training=False)  # tanh, in [-1, 1]
            return {"images": tf.cast(tf.round((images + 1) * 127.5), tf.uint8)}

        latent = np.zeros((1, 100), np.float32)  # warm-up: the signature's dtype
        export_signatures({"serving_default": generate}, name="dcgan",
                          track=[generator],
                          warmup={"serving_default": [{"latent": latent}]})
        # -> saved_models/dcgan/1

    A translator's signature takes and returns strings the same way
    (`tf.TensorSpec((None,), tf.string)`); its vocabulary lookup layers or tables go in
    `track` so that their asset files travel with the SavedModel.

    The first signature is also TF Serving's `serving_default` unless one has that name.

    Args:
        signatures: signature name -> `tf.function` with an `input_signature`. Names
            must be Python identifiers (they also become attributes of the loaded
            object).
        name: the model's name: the directory under `export_dir` and the `NAME` in
            TF Serving's `/v1/models/NAME` (letters, digits, `.`, `_`, `-`).
        export_dir: the directory holding one base path per model.
        version: a positive integer (or its string); None: one more than the highest.
        force: replace an existing `version`; otherwise that is an `ExportError`.
        track: Keras models or layers, and TF resources such as lookup tables (with
            their asset files), that the functions use; see `ExportArchive.track`.
        warmup: signature name -> a few requests, each `{input name: array-like}`,
            written as TF Serving warm-up records (`PredictionLog`s); TF Serving
            replays them before it serves the version, so the first real request
            does not pay for graph initialisation. None: no warm-up file.
        extra_assets: file name -> content, written to `assets.extra/` for clients and
            people (the graph never reads them), e.g. the preprocessing spec.
        verify: load the staged SavedModel back and run every warm-up request through
            it before publishing (a version TF Serving cannot load or warm up never
            appears).

    Returns:
        The published version directory.

    Raises:
        ExportError: bad arguments or an existing version without `force`; raised
            before anything is written.
    """
    _check_name(name)
    number = parse_version(version)
    signatures = dict(signatures)
    _check_signatures(signatures, warmup or {})
    extra_assets = dict(extra_assets or {})
    for filename in extra_assets:
        if not _NAME.fullmatch(filename) or filename == WARMUP_FILE:
            raise ExportError(
                f"extra_assets names must be plain file names other "
                f"than {WARMUP_FILE!r}. Received: {filename!r}"
            )

    warmup = _coerce_warmup(signatures, warmup or {})

    with staged_version(name, export_dir, number, force=force) as staging:
        archive = keras.export.ExportArchive()
        for resource in track:
            archive.track(resource)
        for signature_name, function in signatures.items():
            function.get_concrete_function()  # traced here: errors name the signature
            archive.add_endpoint(signature_name, function)
        archive.write_out(str(staging.path), verbose=False)
        extra = staging.path / "assets.extra"
        if warmup or extra_assets:
            extra.mkdir(exist_ok=True)
        for filename, content in extra_assets.items():
            data = content.encode() if isinstance(content, str) else content
            (extra / filename).write_bytes(data)
        if warmup:
            write_warmup_requests(extra / WARMUP_FILE, name, warmup)
        if verify:
            _replay(staging.path, signatures, warmup or {})
    return staging.target


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
    _check_name(name)
    version = parse_version(version)
    base = check_export_dir(export_dir) / name
    if subdirectory is not None:
        _check_name(subdirectory)
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
    _check_name(name)
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
        lock = open(path, "a+")
    except OSError as error:
        raise ExportError(
            f"cannot create {path}: {error.strerror or error}. Choose an export "
            "directory you can write to (--export-dir)."
        ) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        if error.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        raise ExportError(
            f"export name {name!r} in {path.parent} is in use by pid {holder} "
            "(another export of it is running); wait for it to finish or choose "
            "another --name."
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


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


def write_warmup_requests(
    path: str | os.PathLike,
    model_name: str,
    requests: Mapping[str, Sequence[Mapping[str, object]]],
) -> int:
    """Writes TF Serving warm-up records: one `PredictionLog` per request.

    Args:
        path: the file, by convention `assets.extra/tf_serving_warmup_requests` in
            the version directory.
        model_name: the name in each request's `model_spec`.
        requests: signature name -> requests, each `{input name: array-like}` (bytes
            for string inputs).

    Returns:
        The number of records written.
    """
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature_name, batch in requests.items():
            for inputs in batch:
                request = predict_pb2.PredictRequest()
                request.model_spec.name = model_name
                request.model_spec.signature_name = signature_name
                for key, value in inputs.items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
                writer.write(log.SerializeToString())
                count += 1
    return count


def read_warmup_requests(path: str | os.PathLike) -> list[tuple[str, dict]]:
    """The warm-up records of a file as `(signature name, {input: ndarray})` pairs."""
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        requests.append((request.model_spec.signature_name, inputs))
    return requests


def _replay(path: Path, signatures: Mapping, warmup: Mapping) -> None:
    """Loads the staged SavedModel and runs each warm-up request through it."""
    loaded = tf.saved_model.load(str(path))
    missing = sorted(set(signatures) - set(loaded.signatures))
    if missing:
        raise RuntimeError(f"the SavedModel at {path} lacks signatures {missing}")
    warmup_file = path / "assets.extra" / WARMUP_FILE
    if warmup and warmup_file.is_file():
        for signature_name, inputs in read_warmup_requests(warmup_file):
            loaded.signatures[signature_name](**inputs)


def check_name(name) -> None:
    """ExportError unless `name` can be an export name (a directory and TF
    Serving's model name)."""
    _check_name(name)


def _check_name(name) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ExportError(
            "name must be 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it becomes a directory and TF Serving's model name). "
            f"Received: name={name!r}"
        )


def _check_signatures(signatures: dict, warmup: Mapping) -> None:
    if not signatures:
        raise ExportError("signatures must name at least one tf.function.")
    for signature_name, function in signatures.items():
        if not str(signature_name).isidentifier():
            raise ExportError(
                "signature names must be Python identifiers. "
                f"Received: {signature_name!r}"
            )
        if getattr(function, "input_signature", None) is None:
            raise ExportError(
                f"signature {signature_name!r} must be a tf.function created with an "
                "input_signature (its inputs' dtypes and shapes, batch dimension None)."
            )
    unknown = sorted(set(warmup) - set(signatures))
    if unknown:
        raise ExportError(
            f"warmup names unknown signatures {unknown}; "
            f"the signatures are {sorted(signatures)}"
        )


def _coerce_warmup(signatures: dict, warmup: Mapping) -> dict:
    """Warm-up inputs as arrays of the signatures' dtypes; unknown or missing input
    names are an ExportError (a bad warm-up record stops TF Serving loading a version).
    """
    coerced = {}
    for signature_name, requests in warmup.items():
        function = signatures[signature_name]
        names = list(inspect.signature(function.python_function).parameters)
        specs = dict(zip(names, function.input_signature, strict=False))
        coerced[signature_name] = []
        for inputs in requests:
            if set(inputs) != set(specs):
                raise ExportError(
                    f"warm-up requests for {signature_name!r} must give exactly the "
                    f"inputs {sorted(specs)}. Received: {sorted(inputs)}"
                )
            coerced[signature_name].append(
                {
                    key: np.asarray(value, dtype=object)
                    if specs[key].dtype == tf.string
                    else np.asarray(value, dtype=specs[key].dtype.as_numpy_dtype)
                    for key, value in inputs.items()
                }
            )
    return coerced


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


# The image classifier


def export_classifier(
    model: keras.Model,
    spec: Mapping,
    *,
    name: str,
    export_dir: str | os.PathLike = "saved_models",
    version: int | str | None = None,
    force: bool = False,
    top_k: int = 5,
    max_pixels: int | None = None,
) -> Path:
    """Exports an image classifier for TF Serving with two signatures.

    - `serving_default`: `images`, float32 `(batch, H, W, C)` already preprocessed
      exactly as `model.predict` takes them (the spec's size, channels and
      normalisation, e.g. [0, 1] for `"unit"`).
    - `predict_images`: `image_bytes`, a string `(batch,)` of encoded PNG/JPEG/GIF/BMP
      files (JSON clients send `{"b64": ...}`); decoded, converted to the spec's
      channels, resized and normalised inside the graph by
      `apps.data.images.preprocess`, as in training. Images may differ in size;
      one of more than `max_pixels` (width x height, read from its header) fails
      the request (INVALID_ARGUMENT) before it is decoded.

    Both return `probabilities` float32 `(batch, classes)`, `class_ids` int64
    `(batch,)`, `class_names` string `(batch,)`, and the `top_k` best as
    `top_k_probabilities`, `top_k_class_ids` and `top_k_class_names`
    `(batch, min(top_k, classes))`. The class names are an asset
    (`assets/class_names.txt`, one per line) read by a lookup table in the graph.
    Only the model's first output is served (GoogLeNet's auxiliary heads are not).
    The spec is also saved as `assets.extra/preprocessing.json` for clients.

    Args:
        model: a trained Keras classifier: one image input, first output
            `(batch, classes)` probabilities (a softmax head, the builders' default).
        spec: the preprocessing spec saved beside the model (`preprocessing.json`):
            `input_shape`, `channels`, `resize_mode`, `normalization`, `class_names`.
        name, export_dir, version, force: see `export_signatures`.
        top_k: how many best classes the `top_k_*` outputs list.
        max_pixels: the largest image `predict_images` decodes; default
            `apps.data.images.MAX_PIXELS` (40 megapixels).

    Returns:
        The version directory written, e.g. `saved_models/lenet5/3`.

    Raises:
        ExportError: the model is not such a classifier, the spec does not fit it, or
            the name, version or `force` forbid the export (nothing is written).
    """
    from apps.data import images as image_ops

    _check_name(name)
    number = parse_version(version)
    spec = _check_spec(spec, image_ops)
    classes = _check_classifier(model, spec)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ExportError(
            f"top_k must be a positive integer. Received: top_k={top_k!r}"
        )
    top_k = min(top_k, classes)
    max_pixels = _check_max_pixels(max_pixels, image_ops)
    height, width, channels = spec["input_shape"]
    preprocess_options = {
        "image_size": (height, width),
        "channels": channels,
        "resize_mode": spec["resize_mode"],
        "normalization": spec["normalization"],
    }

    with tempfile.TemporaryDirectory(prefix="export-assets-") as scratch:
        # The table reads this file now; the SavedModel copies it into assets/ and
        # re-reads that copy wherever it is loaded.
        names_file = Path(scratch) / CLASS_NAMES_ASSET
        names_file.write_text("\n".join(spec["class_names"]) + "\n", encoding="utf-8")
        table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                str(names_file),
                key_dtype=tf.int64,
                key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                value_dtype=tf.string,
                value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            ),
            default_value="",
        )

        def outputs(batch):
            probabilities = tf.cast(
                _first_output(model(batch, training=False)), tf.float32
            )
            class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
            top_probabilities, top_ids = tf.math.top_k(probabilities, k=top_k)
            top_ids = tf.cast(top_ids, tf.int64)
            return {
                "probabilities": probabilities,
                "class_ids": class_ids,
                "class_names": table.lookup(class_ids),
                "top_k_probabilities": top_probabilities,
                "top_k_class_ids": top_ids,
                "top_k_class_names": table.lookup(top_ids),
            }

        @tf.function(
            input_signature=[
                tf.TensorSpec(
                    (None, height, width, channels), tf.float32, name="images"
                )
            ]
        )
        def serving_default(images):
            return outputs(images)

        def decode(data):
            image = image_ops.decode_image_bytes(data, channels, max_pixels)
            return image_ops.preprocess(image, **preprocess_options)

        @tf.function(
            input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")]
        )
        def predict_images(image_bytes):
            decoded = tf.TensorSpec((height, width, channels), tf.float32)
            batch = tf.map_fn(decode, image_bytes, fn_output_signature=decoded)
            return outputs(batch)

        return export_signatures(
            {IMAGE_SIGNATURE: serving_default, BYTES_SIGNATURE: predict_images},
            name=name,
            export_dir=export_dir,
            version=number,
            force=force,
            track=[model, table],
            warmup=classifier_warmup(spec),
            extra_assets={"preprocessing.json": json.dumps(dict(spec), indent=2)},
        )


def classifier_warmup(spec: Mapping, seed: int = 0) -> dict:
    """Warm-up requests for both classifier signatures: batches of 1 and 4 images,
    and encoded images at the model's size and twice it (the resize path)."""
    height, width, channels = spec["input_shape"]
    rng = np.random.default_rng(seed)
    shape = (height, width, channels)
    big = (2 * height, 2 * width, channels)
    pixels = rng.integers(0, 256, size=big, dtype=np.uint8)
    png, jpeg = tf.io.encode_png, tf.io.encode_jpeg
    return {
        IMAGE_SIGNATURE: [
            {"images": np.zeros((1, *shape), np.float32)},
            {"images": rng.random((4, *shape), dtype=np.float32)},
        ],
        BYTES_SIGNATURE: [
            {"image_bytes": np.array([png(pixels[::2, ::2]).numpy()], dtype=object)},
            {
                "image_bytes": np.array(
                    [png(pixels).numpy(), jpeg(pixels).numpy()], dtype=object
                )
            },
        ],
    }


def _check_max_pixels(max_pixels, image_ops) -> int:
    if max_pixels is None:
        return image_ops.MAX_PIXELS
    wrong_type = isinstance(max_pixels, bool) or not isinstance(max_pixels, int)
    if wrong_type or max_pixels < 1:
        raise ExportError(
            "max_pixels must be a positive integer. "
            f"Received: max_pixels={max_pixels!r}"
        )
    return max_pixels


def _first_output(outputs):
    if isinstance(outputs, Mapping):
        outputs = list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        return outputs[0]
    return outputs


def check_classifier_spec(spec) -> dict:
    """A classifier's preprocessing spec (its `preprocessing.json`) checked as
    `export_classifier` checks it; ExportError naming the field that is wrong."""
    from apps.data import images as image_ops

    return _check_spec(spec, image_ops)


def check_classifier_model(model, spec) -> int:
    """The number of classes of a model that fits a checked spec (one image input
    of its shape, `(batch, classes)` first output, one class name per class);
    ExportError otherwise."""
    return _check_classifier(model, spec)


def _check_spec(spec, image_ops) -> dict:
    if not isinstance(spec, Mapping):
        raise ExportError(
            f"spec must be a dict (preprocessing.json). Received: {spec!r}"
        )
    missing = [key for key in SPEC_KEYS if key not in spec]
    if missing:
        raise ExportError(
            f"the preprocessing spec lacks {missing}; a classifier "
            f"export needs {list(SPEC_KEYS)}."
        )
    shape = spec["input_shape"]
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) != 3
        or not all(isinstance(d, int) and d > 0 for d in shape)
    ):
        raise ExportError(
            "spec input_shape must be [height, width, channels] of "
            f"positive integers. Received: {shape!r}"
        )
    if spec["channels"] not in (1, 3) or spec["channels"] != shape[2]:
        raise ExportError(
            "spec channels must be 1 or 3 and match input_shape. "
            f"Received: channels={spec['channels']!r}, "
            f"input_shape={shape!r}"
        )
    if spec["resize_mode"] not in image_ops.RESIZE_MODES:
        raise ExportError(
            f"spec resize_mode must be one of {image_ops.RESIZE_MODES}. "
            f"Received: {spec['resize_mode']!r}"
        )
    if spec["normalization"] not in image_ops.NORMALIZATIONS:
        raise ExportError(
            "spec normalization must be one of "
            f"{image_ops.NORMALIZATIONS}. "
            f"Received: {spec['normalization']!r}"
        )
    names = spec["class_names"]
    if (
        not isinstance(names, (list, tuple))
        or not names
        or not all(
            isinstance(n, str) and n and "\n" not in n and "\r" not in n for n in names
        )
    ):
        raise ExportError(
            "spec class_names must be a non-empty list of one-line, "
            f"non-empty strings. Received: {names!r}"
        )
    return {**spec, "input_shape": [int(d) for d in shape], "class_names": list(names)}


def _check_classifier(model, spec) -> int:
    """The number of classes of a model that fits the spec; ExportError otherwise."""
    if not isinstance(model, keras.Model):
        raise ExportError(f"model must be a keras.Model. Received: {type(model)}")
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        raise ExportError(
            "a classifier export needs a model with one image input. "
            f"{model.name} has {len(inputs or [])}."
        )
    input_shape = tuple(inputs[0].shape)
    expected = tuple(spec["input_shape"])
    if len(input_shape) != 4 or any(
        have is not None and have != want
        for have, want in zip(input_shape[1:], expected, strict=True)
    ):
        raise ExportError(
            f"the spec's input_shape {list(expected)} does not fit the "
            f"model's input {input_shape}."
        )
    output_shape = tuple(model.outputs[0].shape)
    if len(output_shape) != 2 or output_shape[1] is None:
        raise ExportError(
            f"{model.name} is not a classifier: its (first) output has shape "
            f"{output_shape}, not (batch, classes)."
        )
    classes = int(output_shape[1])
    if classes != len(spec["class_names"]):
        raise ExportError(
            f"{model.name} has {classes} classes but the spec names "
            f"{len(spec['class_names'])}."
        )
    return classes
