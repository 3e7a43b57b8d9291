"""The image classifier's serving signatures: preprocessed images or encoded files in,
probabilities, class ids and class names out.

    python -m apps.classify export --model-path runs/lenet5-fashion-mnist/model.keras \\
        --name lenet5            # -> saved_models/lenet5/1/, a few seconds for LeNet-5
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps.export.publish import ExportError, check_name, parse_version
from apps.export.signatures import export_signatures

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

    check_name(name)
    number = parse_version(version)
    spec = check_classifier_spec(spec)
    classes = check_classifier_model(model, spec)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ExportError(
            f"top_k must be a positive integer. Received: top_k={top_k!r}"
        )
    top_k = min(top_k, classes)
    max_pixels = _check_max_pixels(max_pixels, image_ops)
    height, width, channels = spec["input_shape"]
    preprocess_options = image_ops.spec_options(spec)

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


def check_classifier_spec(spec) -> dict:
    """A classifier's preprocessing spec (its `preprocessing.json`) checked as
    `export_classifier` checks it; ExportError naming the field that is wrong."""
    from apps.data import images as image_ops

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


def check_classifier_model(model, spec) -> int:
    """The number of classes of a model that fits a checked spec (one image input
    of its shape, `(batch, classes)` first output, one class name per class);
    ExportError otherwise."""
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
