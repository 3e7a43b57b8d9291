"""BatchNorm after a short run: moving-average momentum and the statistics pass.

    python benchmarks/batch_norm.py [--model resnet18] [--momenta 0.99 0.9]
        [--epochs 3] [--steps-per-epoch 100] [--batch-size 64]
        [--recalibration-steps 100] [--output-dir runs/batch_norm]

For each momentum, trains the model with the real command (`python -m apps.classify
train --model M --model-option small_inputs=True --model-option
batch_norm_momentum=X --bn-recalibration-steps 0 --epochs E --steps-per-epoch S
--batch-size B --seed 0`), then measures on the same first 2,000 test images:
training-mode accuracy (batch statistics, batches of 250), inference-mode accuracy
with the moving statistics the run left, and inference-mode accuracy after
`apps.batch_norm.recalibrate` over the given number of training batches (the pass
`classify train` runs by default), plus the full-test-set accuracy of both. This is
the measurement behind the default `batch_norm_momentum` and
`--bn-recalibration-steps`. Writes benchmarks/results/batch_norm.json.
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

PROBE_IMAGES = 2000
PROBE_BATCH = 250


def main(argv=None):
    parser = _harness.parser(__doc__, "batch_norm")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--momenta", type=float, nargs="+", default=[0.99, 0.9])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--recalibration-steps", type=int, default=100)
    parser.add_argument("--output-dir", default="runs/batch_norm")
    args = parser.parse_args(argv)

    rows = []
    for momentum in args.momenta:
        run_dir = Path(args.output_dir) / f"{args.model}_m{momentum}"
        command = _train_command(args, momentum, run_dir)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        train_seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        row = {
            "momentum": momentum,
            "command": " ".join(command[1:]),
            "train_seconds": round(train_seconds, 1),
            **_measure(run_dir / "model.keras", args),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        _write(args, rows)
    _print_table(rows)


def _train_command(args, momentum, run_dir):
    from apps import cli  # loads TensorFlow: after --help and a bad flag

    command = [sys.executable, "-m", "apps.classify", "train", "--model", args.model]
    return command + cli.as_flags(
        dataset="fashion_mnist",
        model_option=["small_inputs=True", f"batch_norm_momentum={momentum}"],
        bn_recalibration_steps=0,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        recipe="none",  # the published figure: the defaults, no recipe
        seed=0,
        output=run_dir,
        overwrite=True,
    )


def _measure(model_path, args) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from apps import batch_norm, data

    model = keras.saving.load_model(model_path)
    spec = {"image_size": tuple(model.input_shape[1:3]), "channels": 1}
    test = data.pipeline(
        data.load("fashion_mnist", "test"), batch_size=PROBE_BATCH, cache=False, **spec
    )
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in test], strict=True)
    images, labels = np.concatenate(images), np.concatenate(labels)

    forward = {
        mode: tf.function(lambda x, mode=mode: model(x, training=mode))
        for mode in (True, False)
    }

    def accuracy(count, training):
        hits = 0
        for start in range(0, count, PROBE_BATCH):
            batch = images[start : start + PROBE_BATCH]
            predicted = forward[training](batch).numpy().argmax(axis=1)
            hits += int((predicted == labels[start : start + PROBE_BATCH]).sum())
        return hits / count

    before = {
        "train_mode_2000": accuracy(PROBE_IMAGES, True),
        "inference_2000": accuracy(PROBE_IMAGES, False),
        "inference_test": accuracy(len(labels), False),
    }
    stream = data.pipeline(
        data.load("fashion_mnist", "train[:90%]"),
        batch_size=args.batch_size,
        training=True,
        seed=0,
        **spec,
    )
    started = time.perf_counter()
    batch_norm.recalibrate(model, stream, args.recalibration_steps)
    after = {
        "recalibrated_inference_2000": accuracy(PROBE_IMAGES, False),
        "recalibrated_inference_test": accuracy(len(labels), False),
        "recalibration_seconds": round(time.perf_counter() - started, 1),
    }
    return {**before, **after}


def _write(args, rows):
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    budget = f"{args.epochs} x {args.steps_per_epoch} steps of {args.batch_size}"
    _harness.write_result(
        args.output,
        {
            "model": args.model,
            "budget": budget,
            "recalibration_steps": args.recalibration_steps,
            "commit": commit,
            "load_average": os.getloadavg(),
            "rows": rows,
        },
    )


def _print_table(rows):
    print(
        "| momentum | train mode (2,000) | inference (2,000) | after BN pass "
        "(2,000) | test, as saved | test after BN pass |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        cells = [
            row[key]
            for key in (
                "train_mode_2000",
                "inference_2000",
                "recalibrated_inference_2000",
                "inference_test",
                "recalibrated_inference_test",
            )
        ]
        print(f"| {row['momentum']} | " + " | ".join(f"{c:.2%}" for c in cells) + " |")


if __name__ == "__main__":
    main()
