"""Time to 90 % accuracy on Fashion-MNIST with the README's main command.

    python benchmarks/time_to_accuracy.py                        # ~6 min per variant
    python benchmarks/time_to_accuracy.py --variants "baseline;precision=mixed_bfloat16"
    python benchmarks/time_to_accuracy.py --epochs 3 --target 0.85   # a quick look

Runs, in one worker process per variant (see `_harness`), exactly

    python -m apps.classify train --model lenet5 --dataset fashion_mnist \\
        --model-option activation=relu --model-option pool_type=max \\
        --augment flip --learning-rate 0.002 --epochs 20 --seed 0 --output DIR

(as the classification task's train, which that command runs, in the worker).
Method: a callback passed to it, first among the training core's callbacks, pauses
the run at the start of each epoch, so that several variants alternate epoch by
epoch (the machine is shared) and each one's clock runs only
while it trains. At each epoch end it records the time since the command started
(setup included: data, build, tracing) and the validation accuracy (the 10 %
held out, as history.csv has it), and measures the test accuracy on the 10,000 test
images with its clock stopped (`--no-test-each-epoch` to skip). Reported per variant:
the first epoch whose validation / test accuracy >= `--target` and the time at its
end, the whole command's time (test, plots and saving included, the per-epoch test
passes excluded), the final test accuracy and images/s from metrics.json, and the
brief's cross-check estimate (epochs x steps x batch / images_per_second).
Writes benchmarks/results/time_to_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

# The command above as the task's fields (apps.tasks.classification.configure).
README_SETTINGS = {
    "model": "lenet5",
    "dataset": "fashion_mnist",
    "model_options": {"activation": "relu", "pool_type": "max"},
    "augment": "flip",
    "learning_rate": 0.002,
}


def build_parser():
    parser = _harness.parser(__doc__, "time_to_accuracy")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument(
        "--variants", default="baseline", help="';'-separated _harness variants"
    )
    parser.add_argument(
        "--test-each-epoch", action=argparse.BooleanOptionalAction, default=True
    )
    _harness.add_training_flags(
        parser,
        "more train settings, a ClassificationConfig or TrainOptions field, "
        "e.g. --option=batch_size=256 or --option=--batch-size=256 (every variant)",
    )
    return parser


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    extra = _harness.option_fields(parser, args.option)
    with _harness.run_directory(args.run_dir, "bench-tta-") as work:
        return _measure(args, extra, work, argv)


def _measure(args, extra, work: Path, argv) -> dict:
    """Trains the variants side by side in `work`, with the `--option` settings
    `extra`, and writes the result file."""
    labels = [t.strip() or "baseline" for t in args.variants.split(";") if t.strip()]
    specs, run_dirs = {}, {}
    for label in labels:
        variant = _harness.parse_variant(label)
        name = _harness.variant_label(variant)
        run_dirs[name] = work / f"run-{len(run_dirs)}"
        settings = {**README_SETTINGS, "epochs": args.epochs, "seed": 0, **extra}
        specs[name] = (
            "_sides",
            "classify_run",
            variant,
            {
                "settings": settings,
                "run_dir": str(run_dirs[name]),
                "test_each_epoch": args.test_each_epoch,
            },
        )
    result = _harness.envelope("time_to_accuracy", __file__, argv)
    result["method"] = __doc__.split("Method: ", 1)[1].split("Writes")[0].strip()
    result["target_accuracy"] = args.target
    result["variants"] = {}
    with _harness.LoadSampler() as load:
        workers = _harness.start_workers(specs, log_dir=work)
        try:
            infos = {name: w.ready() for name, w in workers.items()}
            timelines = _alternate_epochs(workers)
        finally:
            _harness.close_workers(workers)
    for name, segments in timelines.items():
        result["variants"][name] = _report(
            name, segments, infos[name], run_dirs[name], args.target
        )
    names = list(result["variants"])
    if len(names) > 1:
        base = result["variants"][names[0]]
        for name in names[1:]:
            other = result["variants"][name]
            other["command_seconds_ratio_to_first"] = (
                other["command_seconds"] / base["command_seconds"]
            )
            other["same_final_test_accuracy_as_first"] = (
                other["final_test_accuracy"] == base["final_test_accuracy"]
            )
    result["load_average"] = load.report()
    _harness.write_result(args.output, result)
    return result


def _alternate_epochs(workers):
    timelines = {name: [] for name in workers}
    active = list(workers)
    turn = 0
    while active:
        shift = turn % len(active)
        for name in active[shift:] + active[:shift]:
            segment = workers[name].call("advance")
            timelines[name].append(segment)
            print(
                f"  {name}: {segment['reached']} after {segment['seconds']:.1f} s"
                + "".join(_epoch_text(e) for e in segment["epochs"]),
                flush=True,
            )
        active = [n for n in active if not timelines[n][-1]["done"]]
        turn += 1
    return timelines


def _epoch_text(record):
    text = f"; epoch {record['epoch']} val {record['val_accuracy']:.4f}"
    if "test_accuracy" in record:
        text += f" test {record['test_accuracy']:.4f}"
    return text


def _report(name, segments, info, run_dir, target):
    elapsed, epochs = 0.0, []
    for segment in segments:
        for record in segment["epochs"]:
            epochs.append(
                {
                    **record,
                    "seconds_since_start": elapsed + record["seconds_in_segment"],
                }
            )
        elapsed += segment["seconds"]
    if segments[-1].get("exit_code") not in (0, None):
        raise RuntimeError(f"{name}: the command exited with {segments[-1]}")
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    steps = _steps_per_epoch(metrics)

    def first(key):
        for record in epochs:
            if record.get(key) is not None and record[key] >= target:
                seconds = record["seconds_since_start"]
                return {"epoch": record["epoch"], "seconds": seconds}
        return None

    first_val = first("val_accuracy")
    estimate = None
    if first_val and metrics.get("images_per_second"):
        estimate = (
            first_val["epoch"]
            * steps
            * metrics["global_batch_size"]
            / metrics["images_per_second"]
        )
    return {
        "info": info,
        "setup_seconds": segments[0]["seconds"],
        "command_seconds": elapsed,
        "first_epoch_val_accuracy_at_target": first_val,
        "first_epoch_test_accuracy_at_target": first("test_accuracy"),
        "training_only_estimate_seconds_to_val_target": estimate,
        "final_test_accuracy": metrics["test_accuracy"],
        "images_per_second": metrics["images_per_second"],
        "epochs": epochs,
    }


def _steps_per_epoch(metrics):
    given = metrics.get("arguments", {}).get("steps_per_epoch")
    if given:
        return int(given)
    # 90 % of the 60,000 training images in full global batches (classify's split).
    return int(60_000 * 0.9) // metrics["global_batch_size"]


if __name__ == "__main__":
    main()
