"""The model zoo on real Fashion-MNIST: every classic network trained with its recipe.

    python benchmarks/zoo.py [--budget cpu|full] [--models lenet5 mlp ...]
        [--runs-dir runs/zoo] [--results benchmarks/results/zoo] [--redo]
    python benchmarks/zoo.py --markdown        # the README table from the results

Each model is trained by the real command, one model at a time,

    python -m apps.classify train --model M --dataset fashion_mnist --seed S \\
        --output RUNS/BUDGET/M/seedS [--epochs E --steps-per-epoch N]

with the model's registered recipe (`apps.recipes`): the ``full`` budget is the
recipe's whole schedule (meant for a GPU), ``cpu`` its cut for a 2-core CPU (about
45 minutes a model, ``Recipe.cpu_budget``). A model whose first seed takes at most
``--cheap-seconds`` (10 minutes) is trained with 3 seeds, the others with one.

A row per model is appended to ``RESULTS.json`` and ``RESULTS.csv`` as soon as the
model is done (timm's results CSV is the model): parameters, multiply-accumulates
at the network's input size, the input size, budget, epochs, seeds, test top-1
(mean and standard deviation over the seeds) and top-5 on the 10,000 test images,
training images/s, inference images/s (batch 256, the saved model.keras), wall
time and the commit. Interrupted, it resumes: finished models are skipped (unless
``--redo``), and a model interrupted mid-training continues from its run
directory's saved state (the command resumes itself).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's apps, as the subprocesses run them
RESULTS = ROOT / "benchmarks" / "results" / "zoo"
CPU_MODELS = (  # cheapest first, so that a partial run has the most rows
    "lenet5",
    "mlp",
    "rnn",
    "gru",
    "lstm",
    "bilstm",
    "vit",
    "alexnet",
    "googlenet",
    "vgg11",
    "resnet18",
    "vgg16_bn",
    "vgg16",
)
FULL_MODELS = (*CPU_MODELS, "resnet34", "resnet50")  # the deeper ones: full only
CPU_BUDGET_SECONDS = 45 * 60
# zalandoresearch/fashion-mnist's benchmark table, as submitted (test accuracy).
REFERENCES = {
    "mlp": "88.33 % (MLP 256-128-100)",
    "alexnet": "89.9 %",
    "vgg16": "93.5 %",
    "googlenet": "93.7 %",
    "resnet18": "94.9 % (flips, translation, rotation)",
    "gru": "88.8-89.7 %",
}
# Issue 15's figures to reach (test top-1): 88 %, rnn 85 %, these 92 %. The issue
# asks 92 % of "VGG-16 (with or without BN)": the BN variant carries that figure,
# vgg16 (no BN) the 88 % of every zoo model.
TARGETS = {
    "rnn": 0.85,
    "resnet18": 0.92,
    "vgg16_bn": 0.92,
    "googlenet": 0.92,
}
DEFAULT_TARGET = 0.88
COLUMNS = (
    "model",
    "parameters",
    "macs",
    "input_size",
    "budget",
    "epochs",
    "steps_per_epoch",
    "seeds",
    "top1_mean",
    "top1_std",
    "top5_mean",
    "train_images_per_second",
    "inference_images_per_second",
    "wall_seconds_per_seed",
    "over_cpu_budget",
    "recipe",
    "command",
    "commit",
    "load_average",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/zoo.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--budget", choices=("cpu", "full"), default="cpu")
    parser.add_argument(
        "--models", nargs="+", help="default: the budget's zoo (cpu: no ResNet-34/50)"
    )
    parser.add_argument("--runs-dir", default="runs/zoo", help="run directories")
    parser.add_argument(
        "--results", default=str(RESULTS), help="RESULTS.json and RESULTS.csv"
    )
    parser.add_argument("--max-seeds", type=int, default=3, help="for cheap models")
    parser.add_argument(
        "--cheap-seconds",
        type=float,
        default=600,
        help="a model whose first seed trains this fast gets --max-seeds seeds",
    )
    parser.add_argument(
        "--epochs", type=int, help="override the budget's epochs (smoke runs)"
    )
    parser.add_argument(
        "--steps-per-epoch", type=int, help="override the budget's steps (smoke runs)"
    )
    parser.add_argument(
        "--inference-seconds",
        type=float,
        default=5.0,
        help="time spent measuring inference at batch 256",
    )
    parser.add_argument("--redo", action="store_true", help="re-measure done models")
    parser.add_argument(
        "--markdown", action="store_true", help="print the README table and exit"
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    results = Path(args.results)
    if args.markdown:
        print(markdown(_read_rows(results)))
        return 0
    import apps

    models = list(args.models or (CPU_MODELS if args.budget == "cpu" else FULL_MODELS))
    unknown = [name for name in models if name not in apps.list_models()]
    if unknown or args.max_seeds < 1:
        reason = (
            f"unknown model(s) {unknown}; registered: "
            f"{', '.join(apps.list_models(task=None))}"
            if unknown
            else f"--max-seeds must be >= 1. Received: {args.max_seeds}"
        )
        print(f"error: {reason}", file=sys.stderr)
        return 2
    for name in models:
        rows = _read_rows(results)
        done = any(r["model"] == name and r["budget"] == args.budget for r in rows)
        if done and not args.redo:
            print(f"{name}: already measured ({results}.json); --redo to re-run")
            continue
        row = measure(name, args)
        if row is None:
            return 1
        rows = [
            r for r in rows if not (r["model"] == name and r["budget"] == args.budget)
        ]
        _write_rows(results, [*rows, row])
        print(
            f"{name}: {row['top1_mean']:.2%} ± {row['top1_std']:.2%} over "
            f"{row['seeds']} seed(s), {row['wall_seconds_per_seed']:.0f} s a seed"
        )
    return 0


def measure(name: str, args) -> dict | None:
    """Trains `name` at the budget (1 or `max_seeds` seeds) and returns its row."""
    import apps

    recipe = apps.get_model_info(name).recipe
    budget = _budget(recipe, args)
    metrics, seconds = [], []
    for seed in range(args.max_seeds):
        run_dir = Path(args.runs_dir) / args.budget / name / f"seed{seed}"
        command = _command(name, seed, run_dir, budget)
        result = _train(command, run_dir)
        if result is None:
            return None
        metrics.append(result)
        seconds.append(result["wall_seconds"])
        if seed == 0 and seconds[0] > args.cheap_seconds:
            break
    first_run = Path(args.runs_dir) / args.budget / name / "seed0"
    model, input_size = _load(first_run)
    from apps import complexity, recipes

    top1 = [m["test_accuracy"] for m in metrics]
    return {
        "model": name,
        "parameters": model.count_params(),
        "macs": complexity.multiply_accumulates(model),
        "input_size": input_size,
        "budget": args.budget,
        "epochs": metrics[0]["epochs"],
        "steps_per_epoch": budget["steps_per_epoch"],
        "seeds": len(metrics),
        "top1_mean": statistics.fmean(top1),
        "top1_std": statistics.pstdev(top1),
        "top5_mean": statistics.fmean(m["test_top5"] for m in metrics),
        "train_images_per_second": statistics.fmean(
            m["images_per_second"] or 0 for m in metrics
        ),
        "inference_images_per_second": inference_speed(model, args.inference_seconds),
        "wall_seconds_per_seed": statistics.fmean(seconds),
        "over_cpu_budget": max(seconds) > CPU_BUDGET_SECONDS,
        "recipe": recipes.describe(recipe) if recipe else "command defaults",
        "command": "python " + " ".join(_command(name, 0, Path("DIR"), budget)[1:]),
        "commit": _commit(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _budget(recipe, args) -> dict:
    from apps import recipes

    budget = (recipe or recipes.Recipe()).budget(args.budget)
    if args.epochs:
        budget["epochs"] = args.epochs
    if args.steps_per_epoch:
        budget["steps_per_epoch"] = args.steps_per_epoch
    return budget


def _command(name, seed, run_dir, budget) -> list[str]:
    from apps import cli

    command = [sys.executable, "-m", "apps.classify", "train", "--model", name]
    return command + cli.as_flags(
        dataset="fashion_mnist",
        seed=seed,
        output=run_dir,
        augment=budget.get("augment"),
        validation_split=budget.get("validation_split"),
        epochs=budget["epochs"],
        steps_per_epoch=budget["steps_per_epoch"] or None,
    )


def _train(command, run_dir) -> dict | None:
    """Runs (or resumes, or finds finished) one training run; its metrics.json."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = run_dir.parent / f"{run_dir.name}.log"
    started = time.perf_counter()
    with open(log, "a") as output:
        done = subprocess.run(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT
        )
    if done.returncode != 0:
        tail = log.read_text().splitlines()[-5:]
        print(
            f"error: {' '.join(command[1:])} failed (exit {done.returncode}); "
            f"see {log}:\n" + "\n".join(tail),
            file=sys.stderr,
        )
        return None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if time.perf_counter() - started > 60:  # a fresh (or resumed) run, not a skip
        print(f"  {run_dir}: {metrics['test_accuracy']:.2%}", flush=True)
    return metrics


def _load(run_dir: Path):
    """The saved model and the size its network computes at (after `resize`)."""
    import keras

    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    spec = json.loads((run_dir / "preprocessing.json").read_text())
    height, width = spec["input_shape"][:2]
    size = f"{height}x{width}"
    for layer in model.layers:
        if layer.name == "resize":
            inner = layer.output.shape
            size = f"{inner[1]}x{inner[2]} (resized in the model from {size})"
    return model, size


def inference_speed(model, seconds: float, batch: int = 256) -> float:
    """Images/s of `model.predict_on_batch` at `batch`, after one warm-up call."""
    import numpy as np

    images = np.random.default_rng(0).random(
        (batch, *model.input_shape[1:]), dtype=np.float32
    )
    model.predict_on_batch(images)
    calls, started = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - started < seconds:
        model.predict_on_batch(images)
        calls += 1
    return calls * batch / (time.perf_counter() - started)


def _commit() -> str:
    def git(*arguments):
        return subprocess.run(
            ["git", *arguments], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "apps") else "")


def _read_rows(results: Path) -> list[dict]:
    path = results.with_suffix(".json")
    if not path.is_file():
        return []
    return json.loads(path.read_text())["rows"]


def _write_rows(results: Path, rows: list[dict]):
    """Both files written atomically (apps.runs): a kill never leaves a half-written
    table."""
    from apps import runs

    results.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "zoo", "dataset": "fashion_mnist", "rows": rows}
    runs.write_json(results.with_suffix(".json"), document)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({key: row.get(key) for key in COLUMNS} for row in rows)
    text = table.getvalue().encode()
    runs.atomic_write(results.with_suffix(".csv"), lambda file: file.write(text))


def markdown(rows: list[dict]) -> str:
    """The README's zoo table: our figure beside the reference, with the command."""
    lines = [
        "| model | budget | test top-1 | target | top-5 | reference | params | MACs | "
        "input | train img/s | s a seed | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        spread = f" ± {row['top1_std']:.2%}" if row["seeds"] > 1 else ""
        over = " (over 45 min)" if row["over_cpu_budget"] else ""
        lines.append(
            f"| `{row['model']}` | {row['budget']}, {row['epochs']} ep"
            f"{' × ' + str(row['steps_per_epoch']) if row['steps_per_epoch'] else ''}"
            f" | {row['top1_mean']:.2%}{spread} ({row['seeds']} seed"
            f"{'s' if row['seeds'] > 1 else ''}) | {_target(row)} | "
            f"{row['top5_mean']:.2%} | "
            f"{REFERENCES.get(row['model'], '—')} | {row['parameters']:,} | "
            f"{row['macs'] / 1e6:,.1f} M | {row['input_size']} | "
            f"{row['train_images_per_second']:,.0f} | "
            f"{row['wall_seconds_per_seed']:,.0f}{over} | `{row['command']}`"
            f"{_full_command(row)} |"
        )
    return "\n".join(lines)


def _reached(row) -> bool:
    return row["top1_mean"] >= TARGETS.get(row["model"], DEFAULT_TARGET)


def _target(row) -> str:
    """Issue 15's figure for the model, and whether this row reached it."""
    target = f"≥ {TARGETS.get(row['model'], DEFAULT_TARGET):.0%}"
    return f"{target} met" if _reached(row) else f"{target} **not reached**"


def _full_command(row) -> str:
    """For a cpu row short of its target: the command of the recipe's whole
    schedule (a GPU's work)."""
    if row["budget"] != "cpu" or _reached(row):
        return ""
    return f"; full: `python benchmarks/zoo.py --budget full --models {row['model']}`"


if __name__ == "__main__":
    sys.exit(main())
