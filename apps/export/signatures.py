"""Any exportable computation as a warmed-up, verified SavedModel version.

`export_signatures(signatures, name=...)` is the machinery every command shares
(classifier, GAN generator, translator): a dict of `tf.function`s with input
signatures is written with Keras's `keras.export.ExportArchive` into a staged version
(`apps.export.publish.staged_version`), given TF Serving warm-up records
(`apps.export.warmup`), loaded back and run once, and only then published.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from apps.export.publish import (
    NAME_PATTERN,
    ExportError,
    check_name,
    parse_version,
    staged_version,
)
from apps.export.warmup import (
    WARMUP_FILE,
    coerce_requests,
    replay,
    write_warmup_requests,
)


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
    check_name(name)
    number = parse_version(version)
    signatures = dict(signatures)
    _check_signatures(signatures, warmup or {})
    extra_assets = dict(extra_assets or {})
    for filename in extra_assets:
        if not NAME_PATTERN.fullmatch(filename) or filename == WARMUP_FILE:
            raise ExportError(
                f"extra_assets names must be plain file names other "
                f"than {WARMUP_FILE!r}. Received: {filename!r}"
            )

    warmup = coerce_requests(signatures, warmup or {})

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
            replay(staging.path, signatures, warmup or {})
    return staging.target


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
