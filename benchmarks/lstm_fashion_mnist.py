"""The LSTM classifier on Fashion-MNIST, rows as time steps: test accuracy and time.

    python benchmarks/lstm_fashion_mnist.py            # 15 epochs, target >= 88 %

Runs ``python -m apps.classify train --model lstm --dataset fashion_mnist --epochs N
--seed 0 --output RUN_DIR`` (in this process, as the classification task's train,
which that command runs): each
28x28 image is read as 28 time steps of 28 pixels by a 128-unit LSTM. Records the
test accuracy on the 10,000 test images, the wall-clock time and the load average
sampled during the run (the CPU is shared). Writes JSON (default
``benchmarks/results/lstm_fashion_mnist.json``); the run directory is kept under
``--run-dir`` (default: a temporary directory, removed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

TARGET_ACCURACY = 0.88


def build_parser() -> argparse.ArgumentParser:
    parser = _harness.parser(__doc__, "lstm_fashion_mnist")
    parser.add_argument("--model", default="lstm", help="rnn, lstm, gru or bilstm")
    parser.add_argument("--epochs", type=int, default=15)
    _harness.add_training_flags(
        parser,
        "more train settings, a ClassificationConfig or TrainOptions field, "
        "e.g. --option=batch_size=64 or --option=--batch-size=64",
    )
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fields = _harness.option_fields(parser, args.option)
    import apps.sequence  # noqa: F401  (registers the recurrent classifiers)

    with _harness.run_directory(args.run_dir, "lstm-fashion-mnist-") as run_dir:
        return _measure(args, fields, run_dir, argv)


def _measure(args, fields, run_dir: Path, argv) -> int:
    """Trains in `run_dir` with the `--option` `fields`, writes the result file; 0
    when the target is met."""
    from apps import cli

    settings = {
        "model": args.model,
        "dataset": "fashion_mnist",
        "epochs": args.epochs,
        "seed": 0,
        **fields,
    }

    with _harness.LoadSampler(10) as load:
        started = time.perf_counter()
        code = cli.run_command(lambda job: _train(*job), (settings, run_dir))
        wall = time.perf_counter() - started
    if code != 0:
        print(f"training failed with exit code {code}", file=sys.stderr)
        return code
    metrics = json.loads((run_dir / "metrics.json").read_text())
    accuracy = metrics["test_accuracy"]
    result = _harness.envelope("lstm_fashion_mnist", __file__, argv)
    result.update(
        {
            "settings": settings,
            "model": args.model,
            "test_accuracy": accuracy,
            "test_top5": metrics["test_top5"],
            "test_examples": metrics["test_examples"],
            "epochs": metrics["epochs"],
            "wall_seconds": round(wall, 1),
            "images_per_second": metrics["images_per_second"],
            "parameters": metrics["parameters"],
            "final": metrics["final"],
            "target": {
                "test_accuracy": TARGET_ACCURACY,
                "met": accuracy >= TARGET_ACCURACY,
            },
            "load_average": load.report(),
        }
    )
    output = Path(args.output)
    _harness.write_result(output, result)
    print(
        f"{args.model}: test accuracy {accuracy:.2%} after "
        f"{metrics['epochs']} epochs in {wall:.0f} s "
        f"(target >= {TARGET_ACCURACY:.0%}: "
        f"{'met' if result['target']['met'] else 'NOT met'}). Wrote {output}"
    )
    return 0 if result["target"]["met"] else 1


def _train(settings, run_dir) -> int:
    """The classification task's train, with the model's recipe (a run there
    before is replaced)."""
    from apps.tasks import classification

    config, options, sources = classification.configure(**settings)
    classification.train(config, options, run_dir, overwrite=True, recipe=sources)
    return 0


if __name__ == "__main__":
    sys.exit(main())
