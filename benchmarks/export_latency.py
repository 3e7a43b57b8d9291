"""Latency and throughput of an exported classifier, in every format, next to the
Keras model itself.

    python benchmarks/export_latency.py --model lenet5 --repeats 200

Exports the model with `apps.export.export_classifier` into a temporary directory,
loads it back with `tf.saved_model.load` (what TF Serving runs, minus the RPC),
exports it with `apps.export.formats` as ONNX and LiteRT files (float32, and int8
calibrated on Fashion-MNIST training images; each verified against Keras before it
is used), loads those in ONNX Runtime and LiteRT's interpreter (as many threads as
the machine has CPUs), and times on the same inputs, on this machine's CPU:

- `saved_model serving_default`: the exported float-image signature;
- `saved_model predict_images`: the image-bytes signature (PNG decode + resize inside);
- `onnxruntime`, `litert float32`, `litert int8` (`--formats`): the files'
  `images -> probabilities`, the same computation as `serving_default`'s
  probabilities;
- `model.predict(x)`: Keras's batch-inference loop;
- `model(x)`: a direct eager call of the Keras model.

Batch 1: per-call latency p50/p99 over `--repeats` calls. Batch `--batch-size`
(256): throughput in images/s from the median of `--repeats / 20` calls. The four
take turns call by call, so load from other work falls on all of them alike.
Writes JSON (default `benchmarks/results/export_latency.json`) and prints a table.
Without `--model-path` the registry's model is built with random weights (speed does
not depend on them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

WARMUP_CALLS = 10
# --formats: label -> (format, quantisation)
FILE_FORMATS = {
    "onnx": ("onnx", None),
    "litert": ("litert", None),
    "litert-int8": ("litert", "int8"),
    "litert-float16": ("litert", "float16"),
}
LABELS = {
    "onnx": "onnxruntime",
    "litert": "litert float32",
    "litert-int8": "litert int8",
    "litert-float16": "litert float16",
}


def build_parser() -> argparse.ArgumentParser:
    parser = _harness.parser(__doc__, "export_latency")
    parser.add_argument(
        "--model",
        default="lenet5",
        help="a name from apps.list_models() (default lenet5)",
    )
    parser.add_argument(
        "--model-path",
        help="a trained model.keras (with preprocessing.json beside "
        "it) instead of a freshly built --model",
    )
    parser.add_argument(
        "--repeats", type=int, default=200, help="timed calls at batch 1 (default 200)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="batch for the throughput measurement (default 256)",
    )
    parser.add_argument(
        "--formats",
        default="onnx,litert,litert-int8",
        help=f"comma-separated, of {', '.join(FILE_FORMATS)}; 'none' for the "
        "SavedModel and Keras only (default onnx,litert,litert-int8)",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeats < 2 or args.batch_size < 1:
        raise SystemExit("--repeats must be >= 2 and --batch-size >= 1")
    formats = [] if args.formats == "none" else args.formats.split(",")
    unknown = sorted(set(formats) - set(FILE_FORMATS))
    if unknown:
        raise SystemExit(f"--formats: unknown {unknown}; choose from {FILE_FORMATS}")
    load_before = os.getloadavg()[0]
    import numpy as np
    import tensorflow as tf

    from apps import export

    model, spec = _classifier(args)
    shape = tuple(spec["input_shape"])
    rng = np.random.default_rng(0)
    single = rng.random((1, *shape), dtype=np.float32)
    batch = rng.random((args.batch_size, *shape), dtype=np.float32)
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    png = tf.io.encode_png(pixels).numpy()

    with tempfile.TemporaryDirectory(prefix="export-latency-") as directory:
        started = time.perf_counter()
        path = export.export_classifier(model, spec, name="bench", export_dir=directory)
        export_seconds = time.perf_counter() - started
        loaded = tf.saved_model.load(str(path))
        images_signature = loaded.signatures[export.IMAGE_SIGNATURE]
        bytes_signature = loaded.signatures[export.BYTES_SIGNATURE]
        contenders = {
            "saved_model serving_default": lambda x: images_signature(
                images=tf.constant(x)
            )["probabilities"].numpy(),
            "saved_model predict_images": lambda x: bytes_signature(
                image_bytes=tf.constant([png] * len(x))
            )["probabilities"].numpy(),
            "model.predict(x)": lambda x: model.predict(
                x, batch_size=len(x), verbose=0
            ),
            "model(x)": lambda x: np.asarray(model(x, training=False)),
        }
        files = {
            LABELS[label]: _file_contender(model, spec, label, directory)
            for label in formats
        }
        contenders.update({label: run for label, (run, _) in files.items()})
        large_repeats = max(3, args.repeats // 20)
        latencies = _interleaved(contenders, single, args.repeats)
        batch_times = _interleaved(contenders, batch, large_repeats)
        results = {
            label: {
                "batch1_p50_ms": 1000 * float(np.percentile(latencies[label], 50)),
                "batch1_p99_ms": 1000 * float(np.percentile(latencies[label], 99)),
                f"batch{args.batch_size}_images_per_second": args.batch_size
                / float(np.median(batch_times[label])),
            }
            for label in contenders
        }

    report = {
        "command": " ".join(
            [
                "python",
                "benchmarks/export_latency.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "model": spec.get("model", args.model),
        "model_path": args.model_path,
        "input_shape": list(shape),
        "repeats_batch1": args.repeats,
        "repeats_large_batch": large_repeats,
        "batch_size": args.batch_size,
        "export_seconds": export_seconds,
        "files": {label: record for label, (_, record) in files.items()},
        "results": results,
        "machine": {
            **_harness.machine(),
            "versions": _harness.versions("onnxruntime", "ai-edge-litert"),
            # Shared machines: other work skews the numbers; this says how much.
            "load_average_1min_before": load_before,
        },
    }
    output = Path(args.output)
    _harness.write_result(output, report)
    _print_table(report)
    print(f"written to {output}")
    return 0


def _classifier(args):
    """The model and its preprocessing spec: a trained run's, or a built one's."""
    if args.model_path:
        from apps.tasks import classification

        return classification.load(args.model_path)
    import apps

    model = apps.build(args.model, classes=10)
    input_shape = [int(d) for d in model.inputs[0].shape[1:]]
    spec = {
        "input_shape": input_shape,
        "channels": input_shape[-1],
        "resize_mode": "resize",
        "normalization": "unit",
        "class_names": [f"class_{i}" for i in range(10)],
        "model": args.model,
        "dataset": "fashion_mnist",  # verification and int8 calibration images
    }
    return model, spec


def _file_contender(model, spec, label, directory):
    """An ONNX/LiteRT export of the model, verified, loaded in its runtime: the
    call to time and what the export reported."""
    import numpy as np

    from apps.export import formats as export_formats

    fmt, quantize = FILE_FORMATS[label]
    started = time.perf_counter()
    target, check = export_formats.export_classifier_file(
        model,
        spec,
        fmt,
        name=label,
        export_dir=directory,
        quantize=quantize,
        examples=256,
        max_accuracy_drop=100.0,  # random weights: the accuracy means nothing
    )
    seconds = time.perf_counter() - started
    path = target / export_formats.MODEL_FILES[fmt]
    run = export_formats.runtime_session(fmt, path, num_threads=os.cpu_count())

    def call(x):
        return np.asarray(run({"images": x})["probabilities"])

    record = {
        "export_seconds": seconds,
        "file_bytes": path.stat().st_size,
        "threads": os.cpu_count(),
        "max_abs_diff": check.max_abs_diff,
        "top1_agreement": check.top1_agreement,
        "verified_on": check.source,
    }
    return call, record


def _interleaved(contenders, inputs, repeats):
    """Seconds per call of each contender, taking turns call by call so that load
    from other work on a shared machine falls on all of them alike."""
    for call in contenders.values():
        for _ in range(min(WARMUP_CALLS, repeats)):
            call(inputs)
    times = {label: [] for label in contenders}
    for _ in range(repeats):
        for label, call in contenders.items():
            started = time.perf_counter()
            call(inputs)
            times[label].append(time.perf_counter() - started)
    return times


def _print_table(report):
    batch = report["batch_size"]
    machine = report["machine"]
    print(
        f"{report['model']} {report['input_shape']}, {machine['cpu']} "
        f"({machine['cores']} CPUs), TF {machine['versions']['tensorflow']}"
    )
    header = f"{'':30} {'b=1 p50 ms':>11} {'b=1 p99 ms':>11} {f'b={batch} img/s':>13}"
    print(header)
    for label, row in report["results"].items():
        print(
            f"{label:30} {row['batch1_p50_ms']:11.3f} {row['batch1_p99_ms']:11.3f} "
            f"{row[f'batch{batch}_images_per_second']:13,.0f}"
        )


if __name__ == "__main__":
    sys.exit(main())
