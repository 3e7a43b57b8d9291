"""A small-budget search against the default hyper-parameters, same family, same budget.

    python benchmarks/tuning_search.py          # LeNet-5: ~2 min on 2 CPU cores

Runs, on Fashion-MNIST (the 10 % of the training split held out for validation):

1. the default model: exactly ``python -m apps.classify train --model lenet5
   --dataset fashion_mnist --epochs 2 --steps-per-epoch 100 --batch-size 64
   --seed 0 --output DIR/default`` (the builder's defaults: tanh, average pooling,
   no dropout; Adam at its default 1e-3);
2. the search: exactly ``python -m tuning search --model lenet5 --dataset
   fashion_mnist --tuner random --max-trials 6 --epochs 2 --steps-per-epoch 100
   --batch-size 64 --seed 0 --output DIR/search`` (learning_rate, dropout,
   activation, pool_type; LeNet-5's depth is fixed),

both in this process, through what those commands call (the classification
task's ``train``; ``tuning.search.prepare`` and ``run``), with the same training
core, data pipeline, seed and budget per model (2 epochs x 100 steps x 64
images). Compared: the best epoch's validation accuracy (the search's objective)
of the default run and of the best trial, and, as a check that is not the
objective, the test accuracy (10,000 images) of the default run's final model and
of the best trial's final model.
Writes benchmarks/results/tuning_search.json and prints the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "tuning_search.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet5", help="a tunable model (lenet5)")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--tuner", default="random")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-steps",
        type=int,
        help="limit validation and test to N batches (smoke runs; default: all)",
    )
    parser.add_argument("--workdir", help="keep the runs here (default: temporary)")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON file")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from apps import cli

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tuning-bench-") as temporary:
        workdir = Path(args.workdir or temporary)
        budget = cli.as_flags(**_budget(args))
        default_argv = ["train", "--model", args.model, *budget]
        default_argv += ["--output", str(workdir / "default")]
        search_argv = ["search", "--model", args.model, "--tuner", args.tuner]
        search_argv += ["--max-trials", str(args.trials), *budget]
        search_argv += ["--output", str(workdir / "search")]

        search_command = "python -m tuning " + " ".join(search_argv)

        from apps import cli, training
        from tuning import search as search_lib

        started = time.perf_counter()
        if cli.run_command(_train_default, (args, workdir / "default")) != 0:
            return 1
        default_seconds = time.perf_counter() - started
        started = time.perf_counter()
        code = cli.run_command(
            _search,
            (args, workdir / "search", search_command),
            usage_errors=(search_lib.ConfigurationError,),
        )
        if code != 0:
            return 1
        search_seconds = time.perf_counter() - started

        default_history = training.read_history(workdir / "default")
        rows = search_lib.collect_trials(workdir / "search")
        best = search_lib.best_trial(rows)
        best_run = workdir / "search" / "trials" / f"trial_{best['trial_id']}"
        default_test = _test_accuracy(workdir / "default" / "model.keras", args)
        tuned_test = _test_accuracy(best_run / "model.keras", args, workdir / "search")
        default_val = max(default_history["val_accuracy"])

    result = {
        "benchmark": "tuning_search",
        "command": " ".join(
            ["python benchmarks/tuning_search.py", *(argv or sys.argv[1:])]
        ),
        "default_command": "python -m apps.classify " + " ".join(default_argv),
        "search_command": search_command,
        "budget_per_model": {
            "epochs": args.epochs,
            "steps_per_epoch": args.steps_per_epoch,
            "batch_size": args.batch_size,
            "images": args.epochs * args.steps_per_epoch * args.batch_size,
        },
        "default": {
            "val_accuracy": default_val,
            "val_accuracy_final_epoch": default_history["val_accuracy"][-1],
            "test_accuracy": default_test,
            "seconds": default_seconds,
        },
        "search": {
            "tuner": args.tuner,
            "trials": len(rows),
            "best_trial": best["trial_id"],
            "best_hyperparameters": best["hyperparameters"],
            "val_accuracy": best["score"],
            "test_accuracy": tuned_test,
            "seconds": search_seconds,
            "trial_scores": [row["score"] for row in rows],
            "trial_seconds": [row["seconds"] for row in rows],
        },
        "search_beats_default": {
            "val_accuracy": best["score"] > default_val,
            "test_accuracy": tuned_test > default_test,
        },
        "versions": training.versions(),
        "git": _git_commit(),
        # Shared machines: other work skews the times; this says how much.
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }
    _harness.write_result(args.output, result)
    print()
    print(f"{'':24}{'val acc':>9}{'test acc':>10}{'seconds':>9}")
    print(
        f"{'default ' + args.model:24}{default_val:9.4f}{default_test:10.4f}"
        f"{default_seconds:9.0f}"
    )
    print(
        f"{f'search ({len(rows)} trials)':24}{best['score']:9.4f}"
        f"{tuned_test:10.4f}{search_seconds:9.0f}"
    )
    print(f"best hyper-parameters: {best['hyperparameters']}")
    return 0


def _git_commit() -> str | None:
    """The checkout's commit, with "+changes" when the tree differs from it."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return None
    return f"{commit}+changes" if commit and dirty else commit or None


def _budget(args) -> dict:
    """The training budget both sides share (the search's flags, the default's
    configuration)."""
    return {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "eval_steps": args.eval_steps or None,
    }


def _train_default(job) -> int:
    """What `default_command` runs: the classification task's train with the
    model's recipe and the search's budget."""
    from apps.tasks import classification

    args, run_dir = job
    config, options, sources = classification.configure(
        model=args.model, **_budget(args)
    )
    classification.train(config, options, run_dir, recipe=sources)
    return 0


def _search(job) -> int:
    """What `search_command` runs: `tuning.search`'s prepare and run, with the
    default run's budget; a stopped search is said as the command says it
    ("search stopped: ...", exit 1)."""
    from tuning import search as search_lib

    try:
        return _run_search(*job)
    except search_lib.SearchError as error:
        print(f"search stopped: {error}", file=sys.stderr)
        return 1


def _run_search(args, output, command) -> int:
    """The search of `command` (a single process: its table is printed here)."""
    from apps import cli
    from apps.options import TrainOptions
    from tuning import search as search_lib

    if search_lib.distributed_role() is not None:
        raise cli.UsageError(
            "this benchmark runs a single-process search; unset KERASTUNER_TUNER_ID."
        )
    with cli.bad_input():  # every check before anything is written
        config = search_lib.SearchConfig(
            model=args.model,
            dataset=args.dataset,
            output=output,
            options=TrainOptions(
                epochs=args.epochs,
                steps_per_epoch=args.steps_per_epoch,
                batch_size=args.batch_size,
                seed=args.seed,
            ),
            tuner=args.tuner,
            max_trials=args.trials,
            eval_steps=args.eval_steps or None,
            arguments={"command": command},
        )
        prepared = search_lib.prepare(config)
    outcome = search_lib.run(prepared)
    search_lib.report(output, outcome)
    return 0


def _test_accuracy(model_path, args, spec_dir=None) -> float:
    """Accuracy on the whole test split, as `apps.classify evaluate` measures it."""
    import keras

    from apps import data
    from apps.tasks import classification

    model = keras.saving.load_model(model_path)
    spec_file = Path(spec_dir or Path(model_path).parent) / "preprocessing.json"
    spec = json.loads(spec_file.read_text())
    batches = data.pipeline(
        data.load(args.dataset, "test"),
        batch_size=256,
        cache=False,
        **data.images.spec_options(spec),
    )
    if args.eval_steps:
        batches = batches.take(args.eval_steps)
    probabilities, labels = classification.predict_dataset(model, batches)
    return float((probabilities.argmax(axis=1) == labels).mean())


if __name__ == "__main__":
    sys.exit(main())
