"""TF Serving warm-up records: `assets.extra/tf_serving_warmup_requests` in a version.

TF Serving replays them before it serves the version, so that the first real request
does not pay for graph initialisation; `replay` runs them through the staged
SavedModel before it is published, so that a version TF Serving cannot load or warm
up never appears.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from apps.export.publish import ExportError

WARMUP_FILE = "tf_serving_warmup_requests"


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


def coerce_requests(signatures: dict, warmup: Mapping) -> dict:
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


def replay(path: Path, signatures: Mapping, warmup: Mapping) -> None:
    """Loads the staged SavedModel and runs each warm-up request through it."""
    loaded = tf.saved_model.load(str(path))
    missing = sorted(set(signatures) - set(loaded.signatures))
    if missing:
        raise RuntimeError(f"the SavedModel at {path} lacks signatures {missing}")
    warmup_file = path / "assets.extra" / WARMUP_FILE
    if warmup and warmup_file.is_file():
        for signature_name, inputs in read_warmup_requests(warmup_file):
            loaded.signatures[signature_name](**inputs)
