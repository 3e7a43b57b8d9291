"""What each architecture reaches on Fashion-MNIST with the same small CPU budget.

    python benchmarks/architectures.py [--models lenet5 mlp ...] [--epochs 3]
        [--steps-per-epoch 100] [--batch-size 64] [--output-dir runs/architectures]

Each model is trained by the real command,
`python -m apps.classify train --model M --dataset fashion_mnist --epochs E
--steps-per-epoch S --batch-size B --seed 0 --output DIR/M` (plus the model options
below), then tested on the full 10,000-image test split. The same budget for all is a
fair comparison of how fast each learns on a CPU, not of what each can reach: the
README's main command trains LeNet-5 for 20 full epochs instead. Writes
benchmarks/results/architectures.json and prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

DEFAULT_MODELS = [
    "lenet5",
    "mlp",
    "resnet18",
    "vit",
    "gru",
    "alexnet",
    "googlenet",
    "vgg11",
]
# Options that suit 28x28 inputs; everything else is the builder's default.
MODEL_OPTIONS = {
    "resnet18": ["--model-option", "small_inputs=True"],
}


def main(argv=None):
    parser = _harness.parser(__doc__, "architectures")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output-dir", default="runs/architectures")
    args = parser.parse_args(argv)
    from apps import cli  # loads TensorFlow: after --help and a bad flag

    rows, result = [], None
    for model in args.models:
        run_dir = Path(args.output_dir) / model
        command = [sys.executable, "-m", "apps.classify", "train", "--model", model]
        command += cli.as_flags(
            dataset="fashion_mnist",
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            batch_size=args.batch_size,
            recipe="none",  # one budget, the defaults: no recipes
            seed=0,
            output=run_dir,
        )
        command += MODEL_OPTIONS.get(model, [])
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            rows.append(
                {
                    "model": model,
                    "error": done.stderr[-2000:],
                    "command": " ".join(command[1:]),
                }
            )
            print(f"{model}: failed ({done.returncode})")
            continue
        metrics = json.loads((run_dir / "metrics.json").read_text())
        rows.append(
            {
                "model": model,
                "command": "python " + " ".join(command[1:]),
                "test_accuracy": metrics["test_accuracy"],
                "test_top5": metrics["test_top5"],
                "parameters": metrics["parameters"],
                "images_per_second": metrics["images_per_second"],
                "wall_seconds": seconds,
                "load_average": os.getloadavg(),
            }
        )
        print(f"{model}: {metrics['test_accuracy']:.2%} in {seconds:.0f} s")
        result = _write(args, rows)  # after each model: a long run keeps what it has
    print("| model | test accuracy | parameters | images/s | wall s |")
    print("|---|---|---|---|---|")
    for row in rows:
        if "error" not in row:
            print(
                f"| `{row['model']}` | {row['test_accuracy']:.2%} | "
                f"{row['parameters']:,} | {row['images_per_second'] or 0:,.0f} | "
                f"{row['wall_seconds']:.0f} |"
            )
    return result


def _write(args, rows):
    result = {
        "benchmark": "architectures",
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size,
        "models": rows,
    }
    _harness.write_result(args.output, result)
    return result


if __name__ == "__main__":
    main()
