"""Other ways out than TF Serving: ONNX and LiteRT files, each verified in its own
runtime before it is published.

    python -m apps.classify export --model-path runs/lenet5/model.keras \\
        --name lenet5 --format onnx              # -> saved_models/lenet5/onnx/1/
    python -m apps.classify export --model-path runs/lenet5/model.keras \\
        --name lenet5 --format litert --quantize int8
    python -m apps.generate export --model-path runs/dcgan/model.keras \\
        --name dcgan --format litert             # -> saved_models/dcgan/litert/1/

The dependencies are the `export` extra (`pip install -e ".[export]"`: tf2onnx,
onnx, onnxruntime, ai-edge-litert); without them a request names the extra.

Layout: each format has its own versioned base path beside a name's SavedModel
versions (TF Serving ignores the non-integer child), published like them through
`apps.export.staged_version` (staged in `.tmp-*`, renamed to its number once
verified; a killed export leaves no version and the existing ones untouched), while
the export name is held (`apps.export.export_lock`):

    saved_models/lenet5/1/                       SavedModel for TF Serving
    saved_models/lenet5/onnx/1/model.onnx        + class_names.txt, preprocessing.json,
    saved_models/lenet5/litert/1/model.tflite      export.json (inputs, outputs, checks)

What the file computes: a classifier's `images` float32 `(batch, H, W, C)`,
preprocessed as `preprocessing.json` says (as the SavedModel's `serving_default`
takes them) -> `probabilities` float32 `(batch, classes)` in the order of
`class_names.txt`; only the first output (GoogLeNet's auxiliary heads are dropped).
A generator's `latent` float32 `(batch, latent_dim)` (and `class_ids` int32
`(batch,)` when conditional) -> `images` float32 `(batch, H, W, C)`, the tanh output
in [-1, 1] (pixels: `(images + 1) * 127.5`). A mixed-precision model is exported
with float32 compute (a copy of it with the same, float32, weights).

Conversion: ONNX with tf2onnx from the frozen graph of a `tf.function`, after
removing the XLA markers Keras puts on grouped convolutions (AlexNet) so that they
inline; LiteRT with the TFLite converter from a SavedModel of that function, TFLite
builtin ops only (the plain LiteRT interpreter runs it everywhere), optionally
quantised after training: float16 weights, or int8 calibrated on training images
(float inputs and outputs).

Verification: the staged file is loaded in onnxruntime's `InferenceSession` or
LiteRT's `Interpreter` and run on test images of the model's dataset, preprocessed
as in training (generators: fixed latent vectors); its outputs are compared with the
Keras model's: max abs difference, top-1 agreement and, where labels are known,
accuracy. Over the tolerance (max abs difference 1e-4 float, 1e-2 float16; int8:
accuracy more than 1 point below the Keras model's) -> `VerificationError`, nothing
is published.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps import export as exporter
from apps.errors import one_line
from apps.export import ExportError

FORMATS = ("saved_model", "onnx", "litert")
FILE_FORMATS = ("onnx", "litert")
QUANTIZATIONS = ("int8", "float16")
MODEL_FILES = {"onnx": "model.onnx", "litert": "model.tflite"}
RUNTIME_NAMES = {"onnx": "ONNX Runtime", "litert": "LiteRT"}
# module -> PyPI package, per format
PACKAGES = {
    "onnx": {"tf2onnx": "tf2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime"},
    "litert": {"ai_edge_litert": "ai-edge-litert"},
}
EXTRA_INSTALL = 'pip install -e ".[export]"'
TOLERANCES = {None: 1e-4, "float16": 1e-2}  # max abs difference from Keras
MAX_ACCURACY_DROP = 1.0  # int8: points of accuracy below the Keras model's
VERIFY_EXAMPLES = 512  # test images of a classifier
GENERATOR_VERIFY_EXAMPLES = 64  # latent vectors
CALIBRATION_EXAMPLES = 256
BATCH_SIZE = 64
SIGNATURE = "serving_default"
DESCRIPTION_FILE = "export.json"
# Keras compiles grouped convolutions with XLA on CPUs (a nested jit_compile
# function); these attributes keep grappler from inlining it, and tf2onnx cannot
# convert the call. Without them it inlines to a plain grouped Conv2D.
_XLA_ATTRIBUTES = ("_XlaMustCompile", "_XlaCompile", "_XlaScope", "_noinline")


class ConversionError(RuntimeError):
    """The converter could not translate the model into the format; nothing was
    published."""


class VerificationError(RuntimeError):
    """The exported file did not load, run or agree with Keras in its own runtime;
    nothing was published. `check` holds the figures when it ran."""

    def __init__(self, message: str, check: Check | None = None):
        super().__init__(message)
        self.check = check


# What can be asked for


def missing_packages(fmt: str) -> list[str]:
    """The PyPI packages `fmt` needs that are not installed (none for SavedModel)."""
    return [
        package
        for module, package in PACKAGES.get(fmt, {}).items()
        if importlib.util.find_spec(module) is None
    ]


def check_request(
    fmt: str,
    quantize: str | None = None,
    *,
    examples: int | None = None,
    tolerance: float | None = None,
    max_accuracy_drop: float | None = None,
    refused: Mapping[str, str] | None = None,
) -> None:
    """Refuses, before anything is done, an export that cannot be met.

    Raises ExportError (exit 2 on the command lines) for an unknown format, a
    quantisation other than with `litert`, verification options with the
    SavedModel (verified by its own warm-up replay), a format `refused` maps to
    the reason the model cannot be held in it, or a format whose converter or
    runtime is not installed (naming the extra).
    """
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {FORMATS}. Received: format={fmt!r}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(
            f"quantize must be one of {QUANTIZATIONS} or None. "
            f"Received: quantize={quantize!r}"
        )
    if quantize is not None and fmt != "litert":
        raise ExportError(
            "quantize (--quantize) is post-training quantisation of a LiteRT file; "
            f"use it with format litert. Received: format={fmt!r}"
        )
    given = [
        flag
        for flag, value in [
            ("--verify-examples", examples),
            ("--tolerance", tolerance),
            ("--max-accuracy-drop", max_accuracy_drop),
        ]
        if value is not None
    ]
    if fmt == "saved_model" and given:
        raise ExportError(
            f"{', '.join(given)} check an ONNX or LiteRT file (--format onnx or "
            "litert); a SavedModel is checked by replaying its warm-up requests."
        )
    _check_verification(examples, tolerance, max_accuracy_drop)
    if refused and fmt in refused:
        raise ExportError(refused[fmt])
    missing = missing_packages(fmt)
    if missing:
        raise ExportError(
            f"format {fmt} needs {', '.join(missing)}, not installed here; install "
            f"the export extra: {EXTRA_INSTALL}"
        )


def _check_verification(examples, tolerance, max_accuracy_drop) -> None:
    if examples is not None and (
        isinstance(examples, bool) or not isinstance(examples, int) or examples < 1
    ):
        raise ExportError(
            f"examples (--verify-examples) must be a positive integer. "
            f"Received: {examples!r}"
        )
    for label, value, low in [
        ("tolerance (--tolerance)", tolerance, 0.0),
        ("max_accuracy_drop (--max-accuracy-drop)", max_accuracy_drop, None),
    ]:
        if value is None:
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ExportError(f"{label} must be a finite number. Received: {value!r}")
        if value < 0 or (low is not None and value <= low):
            bound = "positive" if low is not None else "0 or more"
            raise ExportError(f"{label} must be {bound}. Received: {value!r}")


# The model as exported


def inference_model(model: keras.Model) -> keras.Model:
    """The computation a file holds: the first output only, in float32.

    A model with several outputs (GoogLeNet's auxiliary heads) becomes a functional
    model from its inputs to its first output (shared layers). A mixed-precision
    model becomes a float32-compute copy with the same weights (they are float32
    variables under a mixed policy): ONNX Runtime and LiteRT CPUs have few
    float16/bfloat16 kernels, and a float32 file is what every runtime runs.
    """
    if len(model.outputs) > 1:
        model = keras.Model(model.inputs, model.outputs[0], name=model.name)
    if mixed_precision_policy(model) is None:
        return model
    config = keras.saving.serialize_keras_object(model)
    copy = keras.saving.deserialize_keras_object(_float32_policies(config))
    copy.set_weights(model.get_weights())
    return copy


def mixed_precision_policy(model: keras.Model) -> str | None:
    """The name of the first non-float32 compute policy among the model's layers
    (nested models included), or None."""
    for layer in model.layers:
        policy = layer.dtype_policy
        if policy.name.startswith("mixed_"):
            return policy.name
        if isinstance(layer, keras.Model):
            nested = mixed_precision_policy(layer)
            if nested is not None:
                return nested
    return None


def _float32_policies(config):
    """A serialized model with every mixed dtype policy replaced by float32."""
    if isinstance(config, list):
        return [_float32_policies(item) for item in config]
    if not isinstance(config, dict):
        return config
    if (
        str(config.get("class_name", "")).endswith("DTypePolicy")
        and isinstance(config.get("config"), dict)
        and str(config["config"].get("name", "")).startswith("mixed_")
    ):
        return {**config, "config": {**config["config"], "name": "float32"}}
    return {key: _float32_policies(value) for key, value in config.items()}


def classifier_function(model: keras.Model, input_shape):
    """`images` float32 (batch, H, W, C) -> {"probabilities": float32 (batch, K)}."""
    spec = tf.TensorSpec((None, *input_shape), tf.float32, name="images")

    @tf.function(input_signature=[spec])
    def serve(images):
        return {"probabilities": tf.cast(model(images, training=False), tf.float32)}

    return serve


def generator_function(generator: keras.Model, latent_dim: int, conditional: bool):
    """`latent` (and `class_ids`) -> {"images": float32 in [-1, 1]}."""
    latent_spec = tf.TensorSpec((None, latent_dim), tf.float32, name="latent")
    if conditional:
        classes_spec = tf.TensorSpec((None,), tf.int32, name="class_ids")

        @tf.function(input_signature=[latent_spec, classes_spec])
        def generate(latent, class_ids):
            images = generator([latent, class_ids], training=False)
            return {"images": tf.cast(images, tf.float32)}

        return generate

    @tf.function(input_signature=[latent_spec])
    def generate_unconditional(latent):
        return {"images": tf.cast(generator(latent, training=False), tf.float32)}

    return generate_unconditional


# Examples to verify and calibrate on


@dataclasses.dataclass
class Examples:
    """Inputs for a file's signature, with labels where known and where they came
    from in words (`"512 fashion_mnist test images"`)."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))


def classifier_examples(
    spec: Mapping, split: str, count: int, seed: int = 0
) -> Examples:
    """`count` images of the spec's dataset split, preprocessed as in training.

    Fashion-MNIST and MNIST are read from their local IDX files; other datasets
    (tfds names, image folders) through `apps.data.load`. A dataset that cannot be
    read here gives seeded random images instead, and says so in `source`.
    """
    name = spec.get("dataset")
    try:
        images, labels = _dataset_images(name, split, count)
        source = f"{len(images)} {name} {split} images"
    except Exception as error:  # any unavailable dataset: verify on noise instead
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, (count, *spec["input_shape"]), dtype=np.uint8)
        labels = None
        reason = one_line(error, 300) if name else "the spec names no dataset"
        source = f"{count} random images ({name or 'dataset'} not readable: {reason})"
    return Examples({"images": _preprocess(images, spec)}, labels, source)


def _dataset_images(name, split, count):
    """(images, labels) of a split as arrays; uint8 images may differ in size."""
    from apps.data import datasets

    if not name:
        raise ValueError("no dataset")
    directory = datasets.local_idx_dir(name)
    if directory is not None:
        images, labels = datasets.read_idx_split(directory, split)
        return images[:count, ..., None], labels[:count].astype(np.int64)
    import apps.data

    dataset = apps.data.load(name, split).take(count)
    pairs = list(dataset.as_numpy_iterator())
    if not pairs:
        raise ValueError(f"the {split} split is empty")
    return [image for image, _ in pairs], np.array([label for _, label in pairs])


def _preprocess(images, spec) -> np.ndarray:
    from apps.data.images import preprocess, spec_options

    options = spec_options(spec)
    if isinstance(images, np.ndarray):  # one size: in batches
        return np.concatenate(
            [
                preprocess(images[start : start + 256], **options).numpy()
                for start in range(0, len(images), 256)
            ]
        )
    return np.stack([preprocess(image, **options).numpy() for image in images])


def generator_examples(
    latent_dim: int, num_classes: int | None, count: int, seed: int = 0
) -> Examples:
    """`count` seeded standard-normal latent vectors (and classes in turn)."""
    rng = np.random.default_rng(seed)
    inputs = {"latent": rng.standard_normal((count, latent_dim)).astype(np.float32)}
    if num_classes:
        inputs["class_ids"] = (np.arange(count) % num_classes).astype(np.int32)
    return Examples(inputs, None, f"{count} fixed latent vectors (seed {seed})")


# Conversion


def convert(
    fmt: str,
    function,
    model: keras.Model,
    path: str | os.PathLike,
    *,
    quantize: str | None = None,
    calibration: Examples | None = None,
) -> None:
    """Writes `function` (a `tf.function` with an input signature, using `model`)
    as an ONNX or LiteRT file at `path`; ConversionError when the converter fails."""
    if fmt == "onnx":
        _to_onnx(function, Path(path))
    elif fmt == "litert":
        _to_litert(function, model, Path(path), quantize, calibration)
    else:
        raise ExportError(f"format must be one of {FILE_FORMATS}. Received: {fmt!r}")


def _to_onnx(function, path: Path) -> None:
    import onnx
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    _patch_tf2onnx()
    concrete = function.get_concrete_function()
    inputs = [t.name for t in concrete.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    renames = tf2onnx.convert.tensor_names_from_structed(concrete, inputs, outputs)
    try:
        with _quiet_loggers("tf2onnx", "tensorflow"):
            frozen = convert_variables_to_constants_v2(
                concrete, lower_control_flow=False, aggressive_inlining=True
            )
            graph_def = frozen.graph.as_graph_def(add_shapes=True)
            _allow_inlining(graph_def)
            _erfc_as_erf(graph_def)
            proto, _ = tf2onnx.convert.from_graph_def(
                graph_def,
                input_names=inputs,
                output_names=outputs,
                tensors_to_rename=renames,
            )
    except Exception as error:  # tf2onnx raises many types
        raise ConversionError(
            f"tf2onnx could not convert the model: {one_line(error, 300)}; nothing was "
            "published."
        ) from None
    unknown = sorted(
        {
            node.op_type
            for node in proto.graph.node
            if not onnx.defs.has(node.op_type, node.domain)
        }
    )
    if unknown:
        raise ConversionError(
            f"tf2onnx left TensorFlow ops that ONNX does not have: {unknown}; "
            "nothing was published."
        )
    path.write_bytes(proto.SerializeToString())


def _allow_inlining(graph_def) -> None:
    """Removes the XLA and no-inline markers from a graph and its functions."""
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        for name in _XLA_ATTRIBUTES:
            if name in function.attr:
                del function.attr[name]
        nodes.extend(function.node_def)
    for node in nodes:
        for name in _XLA_ATTRIBUTES:
            if name in node.attr:
                del node.attr[name]


def _erfc_as_erf(graph_def) -> None:
    """Rewrites every `Erfc(x)` node as `1 - Erf(x)`: ONNX has Erf but no Erfc, and
    Keras's exact GELU (ViT's MLP blocks) is `0.5 * x * erfc(-x / sqrt(2))`."""
    for node in [node for node in graph_def.node if node.op == "Erfc"]:
        dtype = node.attr["T"].type
        erf = graph_def.node.add(name=f"{node.name}/erf", op="Erf", device=node.device)
        erf.input.extend(node.input)
        erf.attr["T"].type = dtype
        one = graph_def.node.add(
            name=f"{node.name}/one", op="Const", device=node.device
        )
        one.attr["dtype"].type = dtype
        one.attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(1.0, dtype=tf.dtypes.as_dtype(dtype))
        )
        node.op = "Sub"
        del node.input[:]
        node.input.extend([one.name, erf.name])


def _patch_tf2onnx() -> None:
    """Keras's numpy-2 patches of tf2onnx 1.17 (what `model.export` applies)."""
    with contextlib.suppress(ImportError), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # its own np.object probe
        from keras.src.export.tf2onnx_lib import patch_tf2onnx

        patch_tf2onnx()


def _to_litert(function, model, path: Path, quantize, calibration) -> None:
    with tempfile.TemporaryDirectory(prefix="litert-savedmodel-") as scratch:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(SIGNATURE, function)
        with _quiet_loggers("tensorflow"):
            archive.write_out(scratch, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            converter.representative_dataset = _representative(calibration)
        try:
            with _quiet_loggers("tensorflow", "absl"), warnings.catch_warnings():
                # int8 calibration runs TF's own (deprecated) interpreter
                warnings.filterwarnings(
                    "ignore", r"(?s).*tf\.lite\.Interpreter is deprecated"
                )
                data = converter.convert()
        except Exception as error:  # ConverterError, or errors from tracing
            raise ConversionError(
                f"the LiteRT converter could not convert the model: "
                f"{_converter_reason(error)}; nothing was published."
            ) from None
    path.write_bytes(data)


def _representative(calibration: Examples):
    def examples():
        for index in range(len(calibration)):
            yield {
                key: value[index : index + 1]
                for key, value in calibration.inputs.items()
            }

    return examples


def _converter_reason(error) -> str:
    """The line of a TFLite ConverterError that names the ops, else all of it on one
    line."""
    for line in str(error).splitlines():
        if "TF Select ops:" in line or "not supported" in line:
            return line.strip()
    return one_line(error, 300)


# Running the file


def runtime_session(
    fmt: str, path: str | os.PathLike, num_threads: int | None = None
) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """Loads an exported file in its own runtime; returns `run(inputs) -> outputs`
    (dicts by signature name, any batch size)."""
    if fmt == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        names = [output.name for output in session.get_outputs()]

        def run_onnx(inputs):
            return dict(zip(names, session.run(names, dict(inputs)), strict=True))

        return run_onnx
    if fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter

        from apps import runtime

        # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on
        # the first call: made here, on zeros of batch 1, with its output held back.
        with runtime.held_back_stderr():
            interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
            runner = interpreter.get_signature_runner(SIGNATURE)
            runner(**_zeros_of_batch_one(runner.get_input_details()))

        def run_litert(inputs):
            return {key: np.copy(value) for key, value in runner(**inputs).items()}

        return run_litert
    raise ExportError(f"format must be one of {FILE_FORMATS}. Received: {fmt!r}")


def _in_batches(call, examples: Examples, output: str) -> np.ndarray:
    """`call(inputs)[output]` over the examples in batches, concatenated."""
    parts = []
    for start in range(0, len(examples), BATCH_SIZE):
        chunk = {
            key: value[start : start + BATCH_SIZE]
            for key, value in examples.inputs.items()
        }
        parts.append(np.asarray(call(chunk)[output], dtype=np.float32))
    return np.concatenate(parts)


def keras_outputs(function, examples: Examples, output: str) -> np.ndarray:
    """The Keras model's outputs through the exported `tf.function` itself."""
    return _in_batches(
        lambda chunk: {k: v.numpy() for k, v in function(**chunk).items()},
        examples,
        output,
    )


# Verification


@dataclasses.dataclass
class Check:
    """How an exported file's outputs compared with the Keras model's."""

    fmt: str
    quantize: str | None
    source: str
    examples: int
    max_abs_diff: float
    tolerance: float | None
    top1_agreement: float | None = None
    keras_accuracy: float | None = None
    file_accuracy: float | None = None
    max_accuracy_drop: float | None = None
    mixed_precision: dict | None = None  # against the mixed-precision original

    @property
    def label(self) -> str:
        kind = self.quantize or "float"
        return f"{RUNTIME_NAMES[self.fmt]} ({kind})"

    @property
    def accuracy_drop(self) -> float | None:
        if self.keras_accuracy is None or self.file_accuracy is None:
            return None
        return 100 * (self.keras_accuracy - self.file_accuracy)

    def failure(self) -> str | None:
        """Why the file must not be published, in one line, or None."""
        if not math.isfinite(self.max_abs_diff):
            return (
                f"{self.label} outputs are not finite (NaN or inf) on "
                f"{self.source}; nothing was published."
            )
        if self.tolerance is not None and self.max_abs_diff > self.tolerance:
            return (
                f"{self.label} outputs differ from Keras by up to "
                f"{self.max_abs_diff:.2e} on {self.source}, over the tolerance "
                f"{self.tolerance:.0e}; nothing was published."
            )
        drop = self.accuracy_drop
        if self.max_accuracy_drop is not None and drop is not None:
            if drop > self.max_accuracy_drop:
                return (
                    f"{self.label} accuracy {100 * self.file_accuracy:.2f} % is "
                    f"{drop:.2f} points below Keras's {100 * self.keras_accuracy:.2f} "
                    f"% on {self.source} (allowed: {self.max_accuracy_drop:g}); "
                    "nothing was published. Try --quantize float16, or raise "
                    "--max-accuracy-drop."
                )
        return None

    def lines(self) -> list[str]:
        """The figures, for people."""
        agreement = (
            ""
            if self.top1_agreement is None
            else f", top-1 agreement {100 * self.top1_agreement:.2f} %"
        )
        limit = "" if self.tolerance is None else f" (tolerance {self.tolerance:.0e})"
        lines = [
            f"verified in {self.label} on {self.source}: max abs difference from "
            f"Keras {self.max_abs_diff:.2e}{limit}{agreement}"
        ]
        if self.accuracy_drop is not None:
            lines.append(
                f"accuracy on those images: Keras float "
                f"{100 * self.keras_accuracy:.2f} %, {self.label} "
                f"{100 * self.file_accuracy:.2f} %"
            )
        if self.mixed_precision:
            original = self.mixed_precision
            agreement = original.get("top1_agreement")
            lines.append(
                f"exported with float32 compute; against the {original['policy']} "
                f"Keras model: max abs difference {original['max_abs_diff']:.2e}"
                + (
                    ""
                    if agreement is None
                    else f", top-1 agreement {100 * agreement:.2f} %"
                )
            )
        return lines

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "runtime": RUNTIME_NAMES[self.fmt]}


def compare(
    fmt: str,
    quantize: str | None,
    examples: Examples,
    expected: np.ndarray,
    actual: np.ndarray,
    *,
    classifier: bool,
    tolerance: float | None = None,
    max_accuracy_drop: float | None = None,
) -> Check:
    """The figures of a file's outputs (`actual`) against Keras's (`expected`)."""
    if tolerance is None and quantize != "int8":
        tolerance = TOLERANCES[quantize]
    if quantize == "int8":
        tolerance = None
        if max_accuracy_drop is None:
            max_accuracy_drop = MAX_ACCURACY_DROP
    else:
        max_accuracy_drop = None
    if expected.shape != actual.shape:
        raise VerificationError(
            f"{RUNTIME_NAMES[fmt]} returned shape {actual.shape}, Keras "
            f"{expected.shape}; nothing was published."
        )
    difference = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
    check = Check(
        fmt=fmt,
        quantize=quantize,
        source=examples.source,
        examples=len(examples),
        max_abs_diff=float(np.max(difference)) if difference.size else 0.0,
        tolerance=tolerance,
        max_accuracy_drop=max_accuracy_drop,
    )
    if classifier:
        check.top1_agreement = _agreement(expected, actual)
        if examples.labels is not None:
            check.keras_accuracy = _accuracy(expected, examples.labels)
            check.file_accuracy = _accuracy(actual, examples.labels)
    return check


def _agreement(expected, actual) -> float:
    return float(np.mean(np.argmax(expected, -1) == np.argmax(actual, -1)))


def _accuracy(probabilities, labels) -> float:
    return float(np.mean(np.argmax(probabilities, -1) == labels))


def _mixed_reference(original, function_of, examples, output, expected, classifier):
    """Figures against the mixed-precision original, or None for a float32 one."""
    policy = mixed_precision_policy(original)
    if policy is None:
        return None
    reference = keras_outputs(function_of(original), examples, output)
    figures = {
        "policy": policy,
        "max_abs_diff": float(np.max(np.abs(reference - expected))),
    }
    if classifier:
        figures["top1_agreement"] = _agreement(reference, expected)
    return figures


# Publishing


def export_classifier_file(
    model: keras.Model,
    spec: Mapping,
    fmt: str,
    *,
    name: str,
    export_dir: str | os.PathLike = "saved_models",
    version: int | str | None = None,
    force: bool = False,
    quantize: str | None = None,
    examples: int = VERIFY_EXAMPLES,
    tolerance: float | None = None,
    max_accuracy_drop: float | None = None,
) -> tuple[Path, Check]:
    """Exports an image classifier as `EXPORT_DIR/NAME/FORMAT/VERSION/`, verified.

    Args:
        model: a trained Keras classifier (first output `(batch, classes)`
            probabilities), as for `apps.export.export_classifier`.
        spec: its preprocessing spec (`preprocessing.json`); its `dataset` gives the
            test images to verify on and the training images to calibrate on.
        fmt: `"onnx"` or `"litert"`.
        name, export_dir, version, force: as for `apps.export.export_signatures`;
            versions are numbered per format.
        quantize: LiteRT only: None (float32), `"float16"` or `"int8"`.
        examples: how many test images to verify on.
        tolerance: largest max abs difference of the probabilities from Keras's
            (None: 1e-4, float16 1e-2; not used for int8).
        max_accuracy_drop: int8: largest accuracy loss in points (None: 1.0).

    Returns:
        (the published version directory, the verification figures).

    Raises:
        ExportError: bad arguments, a model or spec that does not fit, a missing
            runtime, an existing version (before anything is written).
        ConversionError, VerificationError: nothing was published.
    """
    check_request(
        fmt,
        quantize,
        examples=examples,
        tolerance=tolerance,
        max_accuracy_drop=max_accuracy_drop,
    )
    _check_file_format(fmt)
    spec = exporter.check_classifier_spec(spec)
    exporter.check_classifier_model(model, spec)
    with exporter.export_lock(export_dir, name):
        exporter.parse_version(version)
        served = inference_model(model)
        input_shape = tuple(spec["input_shape"])
        function = classifier_function(served, input_shape)
        data = classifier_examples(spec, "test", examples)
        expected = keras_outputs(function, data, "probabilities")
        mixed = _mixed_reference(
            model,
            lambda original: classifier_function(
                keras.Model(original.inputs, original.outputs[0]), input_shape
            ),
            data,
            "probabilities",
            expected,
            classifier=True,
        )
        calibration = None
        if quantize == "int8":
            calibration = classifier_examples(spec, "train", CALIBRATION_EXAMPLES, 1)
        description = {
            "inputs": {
                "images": f"float32 (batch, {', '.join(map(str, input_shape))}), "
                "preprocessed as preprocessing.json says"
            },
            "outputs": {
                "probabilities": f"float32 (batch, {len(spec['class_names'])}), in "
                "the order of class_names.txt"
            },
            "calibration": None if calibration is None else calibration.source,
        }
        files = {
            exporter.CLASS_NAMES_ASSET: "\n".join(spec["class_names"]) + "\n",
            "preprocessing.json": json.dumps(dict(spec), indent=2) + "\n",
        }
        request = _Request(fmt, name, export_dir, version, force, quantize)
        converted = _Conversion(
            function,
            served,
            data,
            expected,
            "probabilities",
            classifier=True,
            mixed=mixed,
            calibration=calibration,
            description={"model": model.name, **description},
            files=files,
        )
        return _publish(request, converted, tolerance, max_accuracy_drop)


def export_generator_file(
    gan,
    fmt: str,
    *,
    name: str,
    export_dir: str | os.PathLike = "saved_models",
    version: int | str | None = None,
    force: bool = False,
    quantize: str | None = None,
    examples: int = GENERATOR_VERIFY_EXAMPLES,
    tolerance: float | None = None,
) -> tuple[Path, Check]:
    """Exports a GAN's generator as `EXPORT_DIR/NAME/FORMAT/VERSION/`, verified on
    `examples` fixed latent vectors (int8: calibrated on other ones).

    `gan`: an `apps.generative.gan.GAN` (its `generator`, `latent_dim`,
    `num_classes`, `image_shape`); the other arguments as for
    `export_classifier_file`. An int8 generator is published when its outputs are
    finite; its difference from Keras is reported, not bounded.
    """
    check_request(fmt, quantize, examples=examples, tolerance=tolerance)
    _check_file_format(fmt)
    conditional = gan.num_classes is not None
    with exporter.export_lock(export_dir, name):
        exporter.parse_version(version)
        served = inference_model(gan.generator)
        function = generator_function(served, gan.latent_dim, conditional)
        data = generator_examples(gan.latent_dim, gan.num_classes, examples)
        expected = keras_outputs(function, data, "images")
        mixed = _mixed_reference(
            gan.generator,
            lambda original: generator_function(original, gan.latent_dim, conditional),
            data,
            "images",
            expected,
            classifier=False,
        )
        calibration = None
        if quantize == "int8":
            calibration = generator_examples(
                gan.latent_dim, gan.num_classes, CALIBRATION_EXAMPLES, seed=1
            )
        inputs = {"latent": f"float32 (batch, {gan.latent_dim}), standard normal"}
        if conditional:
            inputs["class_ids"] = f"int32 (batch,), in [0, {gan.num_classes})"
        shape = ", ".join(map(str, gan.image_shape))
        description = {
            "model": gan.generator.name,
            "inputs": inputs,
            "outputs": {
                "images": f"float32 (batch, {shape}) in [-1, 1] (tanh); pixels are "
                "round((images + 1) * 127.5)"
            },
            "latent_dim": gan.latent_dim,
            "num_classes": gan.num_classes,
            "calibration": None if calibration is None else calibration.source,
        }
        request = _Request(fmt, name, export_dir, version, force, quantize)
        converted = _Conversion(
            function,
            served,
            data,
            expected,
            "images",
            mixed=mixed,
            calibration=calibration,
            description=description,
        )
        return _publish(request, converted, tolerance, max_accuracy_drop=None)


def _check_file_format(fmt) -> None:
    if fmt not in FILE_FORMATS:
        raise ExportError(
            f"format must be one of {FILE_FORMATS} here (the SavedModel is "
            f"apps.export's). Received: format={fmt!r}"
        )


@dataclasses.dataclass(frozen=True)
class _Request:
    """Where and how a file export is published (the caller's arguments)."""

    fmt: str
    name: str
    export_dir: str | os.PathLike
    version: int | str | None
    force: bool
    quantize: str | None


@dataclasses.dataclass
class _Conversion:
    """What an exporter hands to :func:`_publish`: the function to convert, the model
    whose variables it reads, the verification examples with Keras's outputs, and
    what the version directory records."""

    function: Callable
    model: keras.Model
    data: Examples
    expected: np.ndarray
    output: str
    classifier: bool = False
    mixed: dict | None = None  # figures against a mixed-precision original
    calibration: Examples | None = None
    description: dict = dataclasses.field(default_factory=dict)
    files: dict = dataclasses.field(default_factory=dict)


def _publish(
    request: _Request, converted: _Conversion, tolerance, max_accuracy_drop
) -> tuple[Path, Check]:
    """Converts into a staged version, verifies it there, publishes it."""
    fmt, quantize = request.fmt, request.quantize
    with exporter.staged_version(
        request.name,
        request.export_dir,
        request.version,
        force=request.force,
        subdirectory=fmt,
    ) as staging:
        staging.path.mkdir()
        model_file = staging.path / MODEL_FILES[fmt]
        convert(
            fmt,
            converted.function,
            converted.model,
            model_file,
            quantize=quantize,
            calibration=converted.calibration,
        )
        check = verify(
            fmt,
            model_file,
            converted.data,
            converted.expected,
            output=converted.output,
            quantize=quantize,
            classifier=converted.classifier,
            tolerance=tolerance,
            max_accuracy_drop=max_accuracy_drop,
        )
        check.mixed_precision = converted.mixed
        record = {
            "format": fmt,
            "file": MODEL_FILES[fmt],
            "quantization": quantize,
            **converted.description,
            "verification": check.as_dict(),
            "versions": _versions(fmt),
        }
        files = {
            **converted.files,
            DESCRIPTION_FILE: json.dumps(record, indent=2) + "\n",
        }
        for filename, content in files.items():
            (staging.path / filename).write_text(content, encoding="utf-8")
    return staging.target, check


def verify(
    fmt: str,
    path: str | os.PathLike,
    data: Examples,
    expected: np.ndarray,
    *,
    output: str,
    quantize: str | None = None,
    classifier: bool = True,
    tolerance: float | None = None,
    max_accuracy_drop: float | None = None,
) -> Check:
    """Runs the file in its runtime on `data` and compares with `expected` (the
    Keras outputs); VerificationError when it fails to load or run, or disagrees."""
    try:
        run = runtime_session(fmt, path)
        actual = _in_batches(run, data, output)
    except Exception as error:  # the runtimes raise many types
        raise VerificationError(
            f"{RUNTIME_NAMES[fmt]} could not run the exported file: "
            f"{one_line(error, 300)}; nothing was published."
        ) from None
    check = compare(
        fmt,
        quantize,
        data,
        expected,
        actual,
        classifier=classifier,
        tolerance=tolerance,
        max_accuracy_drop=max_accuracy_drop,
    )
    failure = check.failure()
    if failure:
        raise VerificationError(failure, check)
    return check


def _versions(fmt) -> dict:
    from importlib import metadata

    versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
    for package in PACKAGES[fmt].values():
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return versions


@contextlib.contextmanager
def _quiet_loggers(*names):
    """Python loggers of converters at ERROR (their INFO and deprecation chatter)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _zeros_of_batch_one(details) -> dict:
    """Zero inputs for a LiteRT signature runner, dynamic sizes set to 1."""
    return {
        name: np.zeros(
            [1 if size < 0 else size for size in detail["shape_signature"]],
            detail["dtype"],
        )
        for name, detail in details.items()
    }
