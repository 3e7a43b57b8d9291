"""Training step time of our VGG16 and ResNet50 builders vs keras.applications'.

    python benchmarks/applications_parity.py                     # ~5 min
    python benchmarks/applications_parity.py --input-size 96 --batch-size 16

Builds, in two worker processes (alternating rounds, see `_harness`):
``ours`` = `apps.build("vgg16", dropout=0.0)` (keras.applications' VGG16 has no
dropout) and `apps.build("resnet50", conv_bias=True)` (keras.applications'
convention), and ``keras.applications`` = `VGG16` / `ResNet50(weights=None)`, at the
same input size and classes (10), compiled alike (`compile_classifier`: Adam,
sparse cross-entropy, accuracy and top-5) and trained with the same step
(`apps.loop.DistributedLoop.train_function`) on one in-memory batch of random
images. Parameter counts are recorded and must match. Reports our step time over
keras.applications' (target <= 1.02), and, as a control of the measurement, the
same ratio between two processes that both train keras.applications' model.
Writes benchmarks/results/applications_parity.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

TARGET = 1.02
DEFAULT_STEPS = {"vgg16": 2, "resnet50": 5}
CONTROL = "keras.applications (control)"
VALID_1X1 = "ours, 1x1 convolutions padding=valid"  # as in _sides
KERAS_CONFIG = "ours, 1x1 padding=valid, BatchNormalization axis=3"


def build_parser():
    parser = _harness.parser(__doc__, "applications_parity")
    parser.add_argument("--models", default="vgg16,resnet50")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--steps", type=int, help="steps per round (default: vgg16 2, resnet50 5)"
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--control",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time keras.applications' model in a second process (A/A): "
        "the ratio between the two identical sides is this machine's noise",
    )
    parser.add_argument("--variant", default="", help="a _harness variant for both")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="resnet50: also time ours with its 1x1 convolutions at padding='valid', "
        "and with that and BatchNormalization(axis=3): keras.applications' settings, "
        "the only configuration differences",
    )
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    variant = _harness.parse_variant(args.variant)
    result = _harness.envelope("applications_parity", __file__, argv)
    result.update(
        {
            "input_shape": [args.input_size, args.input_size, 3],
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "variant": _harness.variant_label(variant),
            "target_step_time_ratio": TARGET,
            "models": {},
        }
    )
    work = Path(tempfile.mkdtemp(prefix="bench-parity-"))
    with _harness.LoadSampler() as load:
        for model in args.models.split(","):
            common = {
                "model": model,
                "input_size": args.input_size,
                "batch_size": args.batch_size,
            }
            specs = {}
            for source in ("ours", "keras.applications"):
                kwargs = {**common, "source": source}
                specs[source] = ("_sides", "keras_parity", variant, kwargs)
            if args.diagnose and model == "resnet50":
                for source in (VALID_1X1, KERAS_CONFIG):
                    kwargs = {**common, "source": source}
                    specs[source] = ("_sides", "keras_parity", variant, kwargs)
            if args.control:
                kwargs = {**common, "source": "keras.applications"}
                specs[CONTROL] = ("_sides", "keras_parity", variant, kwargs)
            steps = args.steps or DEFAULT_STEPS.get(model, 3)
            print(
                f"{model}: {args.input_size}x{args.input_size}x3, batch "
                f"{args.batch_size}",
                flush=True,
            )
            workers = _harness.start_workers(specs, log_dir=work)
            try:
                infos = {name: w.ready() for name, w in workers.items()}
                times = _harness.alternate(
                    workers, rounds=args.rounds, steps=steps, warmup=steps
                )
            finally:
                _harness.close_workers(workers)
            summary = _harness.summarise(
                times, args.batch_size, reference="keras.applications"
            )
            ours = summary["ours"]
            # ratio_to_reference is theirs/ours in images/s = ours/theirs in time.
            ratio = 1 / ours["ratio_to_reference"]
            report = {
                "steps_per_round": steps,
                "sides": {n: {**summary[n], "info": infos[n]} for n in workers},
                "step_time_ratio_ours_over_keras": ratio,
                "step_time_ratio_best_rounds": 1
                / ours["ratio_to_reference_best_rounds"],
                "parameters": {n: infos[n]["all_parameters"] for n in workers},
                "parameters_match": infos["ours"]["all_parameters"]
                == infos["keras.applications"]["all_parameters"],
                "meets_target": ratio <= TARGET,
            }
            for source, key in (
                (VALID_1X1, "valid_1x1"),
                (KERAS_CONFIG, "keras_config"),
            ):
                if source in summary:
                    report[f"{key}_step_time_ratio"] = (
                        1 / summary[source]["ratio_to_reference"]
                    )
            if CONTROL in summary:  # A/A: two processes, the same model
                report["control_step_time_ratio"] = (
                    1 / summary[CONTROL]["ratio_to_reference"]
                )
            result["models"][model] = report
            print(
                f"  {model}: ours {ours['step_seconds_median'] * 1e3:.0f} ms, "
                f"keras.applications "
                f"{summary['keras.applications']['step_seconds_median'] * 1e3:.0f} ms"
                f" per step: {ratio:.3f}x (target <= {TARGET}); A/A control "
                f"{report.get('control_step_time_ratio', float('nan')):.3f}x; "
                f"parameters {report['parameters']}",
                flush=True,
            )
    result["load_average"] = load.report()
    _harness.write_result(args.output, result)
    return result


if __name__ == "__main__":
    main()
