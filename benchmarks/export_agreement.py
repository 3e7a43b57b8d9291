"""ONNX and LiteRT files of every registered image classifier and both DCGAN
generators, each verified against Keras in its own runtime.

    python benchmarks/export_agreement.py --examples 512

For each model: built as `python -m apps.classify train` builds it for Fashion-MNIST
(28x28x1, 10 classes, its recipe's model options; the network resizes inside), with
random weights (seed 0), plus the hard variants: AlexNet with its two towers
(grouped convolutions), GoogLeNet with its auxiliary heads, LeNet-5 and ResNet-18
under mixed_bfloat16, the DCGAN generators (TransposedConv2D; one with SAGAN
self-attention) at their default width. Each is exported with `apps.export.formats`
(which verifies before it publishes) on `--examples` Fashion-MNIST test images
(generators: fixed latent vectors), into a temporary directory. Records the max abs
difference from Keras, the top-1 agreement and the seconds taken, or the error, per
model and format; writes JSON (default `benchmarks/results/export_agreement.json`)
and prints a table.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

INPUT_SHAPE = (28, 28, 1)
# name -> (registry model, builder options over the recipe's, mixed precision)
VARIANTS = {
    "alexnet groups=2": ("alexnet", {"groups": 2}, False),
    "googlenet aux": ("googlenet", {"aux_classifiers": True}, False),
    "lenet5 mixed_bfloat16": ("lenet5", {}, True),
    "resnet18 mixed_bfloat16": ("resnet18", {}, True),
    "dcgan attention": ("dcgan", {"attention": True}, False),  # SelfAttention2D
}
GENERATORS = ("dcgan", "cdcgan")

EXPORT_PACKAGES = ("tf2onnx", "onnx", "onnxruntime", "ai-edge-litert")


def build_parser() -> argparse.ArgumentParser:
    parser = _harness.parser(__doc__, "export_agreement")
    parser.add_argument(
        "--models",
        nargs="*",
        default=["*"],
        help="fnmatch patterns of the rows to run (default: all)",
    )
    parser.add_argument(
        "--formats", nargs="*", default=["onnx", "litert"], choices=["onnx", "litert"]
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=512,
        help="test images per classifier (default 512); generators: 64 latents",
    )
    return parser


def rows() -> dict:
    """Row name -> (registry model, builder options, mixed precision)."""
    import apps
    from apps import registry

    table = {}
    for name in apps.list_models(task="image_classification"):
        recipe = registry.get_model_info(name).recipe
        options = dict(recipe.model_options) if recipe is not None else {}
        table[name] = (name, options, False)
    for label, (name, options, mixed) in VARIANTS.items():
        recipe = registry.get_model_info(name).recipe
        base = dict(recipe.model_options) if recipe is not None else {}
        table[label] = (name, {**base, **options}, mixed)
    for name in GENERATORS:
        table[name] = (name, {}, False)
    return table


def measure(label, name, options, mixed, fmt, examples, export_dir) -> dict:
    """Builds one row's model and exports it in one format; its figures or error."""
    import keras

    import apps
    from apps import registry
    from apps.export import formats as export_formats

    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        if registry.get_model_info(name).task == "generation":
            gan = apps.build(name, seed=0, **options)
            export = export_formats.export_generator_file
            _, check = export(gan, fmt, name="bench", export_dir=export_dir)
        else:
            model = apps.build(name, input_shape=INPUT_SHAPE, classes=10, **options)
            keras.mixed_precision.set_global_policy("float32")
            spec = {
                "input_shape": list(INPUT_SHAPE),
                "channels": 1,
                "resize_mode": "resize",
                "normalization": "unit",
                "class_names": [str(i) for i in range(10)],
                "dataset": "fashion_mnist",
                "model": name,
            }
            _, check = export_formats.export_classifier_file(
                model,
                spec,
                fmt,
                name="bench",
                export_dir=export_dir,
                examples=examples,
            )
    except Exception as error:  # a failure is a result here
        return {
            "row": label,
            "format": fmt,
            "ok": False,
            "error": f"{type(error).__name__}: {str(error)[:500]}",
            "seconds": time.perf_counter() - started,
        }
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {
        "row": label,
        "format": fmt,
        "ok": True,
        "model": name,
        "options": options,
        "mixed_precision": mixed,
        "seconds": time.perf_counter() - started,
        **{
            key: value
            for key, value in check.as_dict().items()
            if key
            in (
                "source",
                "examples",
                "max_abs_diff",
                "tolerance",
                "top1_agreement",
                "mixed_precision",
            )
        },
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    load_before = os.getloadavg()[0]

    table = {
        label: row
        for label, row in rows().items()
        if any(fnmatch.fnmatchcase(label, pattern) for pattern in args.models)
    }
    results = []
    with tempfile.TemporaryDirectory(prefix="export-agreement-") as directory:
        for label, (name, options, mixed) in table.items():
            for fmt in args.formats:
                result = measure(
                    label, name, options, mixed, fmt, args.examples, directory
                )
                results.append(result)
                _print_row(result)
    report = {
        "command": " ".join(
            [
                "python",
                "benchmarks/export_agreement.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "input_shape": list(INPUT_SHAPE),
        "examples": args.examples,
        "results": results,
        "machine": {
            **_harness.machine(),
            "versions": _harness.versions(*EXPORT_PACKAGES),
            "load_average_1min_before": load_before,
        },
    }
    output = Path(args.output)
    _harness.write_result(output, report)
    failed = [f"{r['row']} {r['format']}" for r in results if not r["ok"]]
    print(f"written to {output}; " + (f"FAILED: {failed}" if failed else "all passed"))
    return 1 if failed else 0


def _print_row(result) -> None:
    head = f"{result['row']:26} {result['format']:7} {result['seconds']:7.1f} s  "
    if not result["ok"]:
        print(head + result["error"], flush=True)
        return
    agreement = result.get("top1_agreement")
    agreement = "" if agreement is None else f"  top-1 {100 * agreement:.2f} %"
    print(head + f"max |diff| {result['max_abs_diff']:.2e}{agreement}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
