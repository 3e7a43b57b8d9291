"""Date normalisation: exact match on held-out dates against wall-clock time.

    python benchmarks/translate_accuracy.py            # the default train command

Runs the default ``python -m apps.translate train --output RUN_DIR`` (a Transformer,
15 epochs of 200 batches of 64 freshly generated pairs) in a child process, exactly
as a user would, and records its wall-clock time (Python and TensorFlow start-up
included) and the greedy exact-match accuracy on 2000 held-out pairs whose dates no
training pair contains. The target is >= 98 % within 15 minutes on the project's
2-core CPU. The CPU is shared, so the load average is sampled every 10 s during the
run and recorded with the result: a time measured under load is an upper bound.

``--model attention`` (or ``luong``) and ``--option=--epochs=5`` etc. measure other
settings. Writes JSON (default ``benchmarks/results/translate_accuracy.json``) and
prints a summary. The run directory is kept under ``--run-dir`` (default: a
temporary directory, removed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

TARGET_EXACT_MATCH = 0.98
TARGET_SECONDS = 15 * 60
LOAD_SAMPLE_SECONDS = 10


def build_parser() -> argparse.ArgumentParser:
    parser = _harness.parser(__doc__, "translate_accuracy")
    parser.add_argument("--model", help="a translator (default: the command's)")
    _harness.add_training_flags(
        parser,
        "more `apps.translate train` flags, e.g. --option=--epochs=5",
        metavar="FLAG=VALUE",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with _harness.run_directory(args.run_dir, "translate-accuracy-") as run_dir:
        return _measure(args, run_dir, argv)


def _measure(args, run_dir: Path, argv) -> int:
    """Trains in `run_dir`, writes the result file; 0 when the target is met."""
    command = [sys.executable, "-m", "apps.translate", "train"]
    if args.model:
        command += ["--model", args.model]
    for option in args.option:
        flag, _, value = option.partition("=")
        command += [flag, value] if value else [flag]
    command += ["--overwrite", "--output", str(run_dir)]

    with _harness.LoadSampler(LOAD_SAMPLE_SECONDS) as load:
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
    if finished.returncode != 0:
        print(finished.stdout[-3000:], finished.stderr[-3000:], file=sys.stderr)
        print(f"training failed with exit code {finished.returncode}", file=sys.stderr)
        return finished.returncode
    metrics = json.loads((run_dir / "metrics.json").read_text())
    exact = metrics["test_exact_match"]
    result = _harness.envelope("translate_accuracy", __file__, argv)
    result.update(
        {
            "training_command": " ".join(["python", *command[1:]]),
            "model": metrics["model"],
            "test_exact_match": exact,
            "test_examples": metrics["test_examples"],
            "test_errors": metrics["test_errors"],
            "wall_seconds": round(wall, 1),
            "train_seconds": round(metrics["train_seconds"], 1),
            "epochs": metrics["epochs"],
            "examples_per_second": metrics["examples_per_second"],
            "parameters": metrics["parameters"],
            "final": metrics["final"],
            "target": {
                "exact_match": TARGET_EXACT_MATCH,
                "seconds": TARGET_SECONDS,
                "met": exact >= TARGET_EXACT_MATCH and wall <= TARGET_SECONDS,
            },
            "load_average": load.report(),
        }
    )
    output = Path(args.output)
    _harness.write_result(output, result)
    mean_load = result["load_average"]["one_minute_samples"]["mean"]
    print(
        f"{result['model']}: exact match {exact:.2%} on {metrics['test_examples']} "
        f"held-out dates in {wall:.0f} s wall (target >= {TARGET_EXACT_MATCH:.0%} "
        f"in {TARGET_SECONDS} s: "
        f"{'met' if result['target']['met'] else 'NOT met'}); "
        f"load average during the run {mean_load:.2f} on "
        f"{os.cpu_count()} CPUs. Wrote {output}"
    )
    return 0 if result["target"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
