"""Sample quality against training time: DCGAN on Fashion-MNIST, on this machine.

    python benchmarks/gan_quality.py --epochs 5 --steps-per-epoch 200

Runs `python -m apps.generate train --model dcgan --dataset fashion_mnist` (in this
process, through `apps.generate.main`) with a small budget, and records per epoch:
FID and the Inception-Score-style score against the real test images, class
coverage of the generated samples (mode collapse shows as classes going missing),
the losses, and the seconds of training and of measuring. The quality classifier
is LeNet-5 trained by `python -m apps.classify` (3 epochs, cached on first use in
$KERAS_CLASSICS_CACHE or ~/.cache/keras-classics; its test accuracy is recorded),
so the FIDs compare our runs with each other, not with Inception-based FIDs. The
real-against-real FID (training against test images, --quality-samples of each) is
recorded as the floor a perfect generator would reach.

Writes JSON (default `benchmarks/results/gan_quality.json`) and prints a table. The
run directory (samples/epoch_NNN.png) is kept under --run-dir (default: a temporary
directory, removed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "gan_quality.json"
EPOCH_KEYS = (
    "epoch",
    "fid",
    "inception_score",
    "class_coverage",
    "class_entropy",
    "max_class_share",
    "class_shares",
    "d_loss",
    "g_loss",
    "d_real",
    "d_fake",
    "quality_seconds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dcgan", help="dcgan, cdcgan or mlp_gan")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=200,
        help="generator steps per epoch (default 200; 0: full passes, 937 steps)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--d-steps", type=int, default=1)
    parser.add_argument("--quality-samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--classifier-epochs",
        type=int,
        default=3,
        help="epochs of the quality classifier, if it is not cached yet",
    )
    parser.add_argument(
        "--classifier-steps",
        type=int,
        help="steps per classifier epoch (default: full epochs; smoke runs)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="FLAG=VALUE",
        help="more `apps.generate train` flags, e.g. --option=--attention",
    )
    parser.add_argument("--run-dir", help="keep the run directory here")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON file")
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    from apps import generate
    from apps.generative import quality

    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="gan-quality-"))
    extra = []
    for option in args.option:
        flag, _, value = option.partition("=")
        extra += [flag, value] if value else [flag]
    command = [
        "train",
        "--model",
        args.model,
        "--dataset",
        "fashion_mnist",
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--d-steps",
        str(args.d_steps),
        "--quality-samples",
        str(args.quality_samples),
        "--seed",
        str(args.seed),
        "--overwrite",
        "--output",
        str(run_dir),
        *extra,
    ]
    if args.steps_per_epoch:
        command += ["--steps-per-epoch", str(args.steps_per_epoch)]
    classifier = quality.ensure_classifier(  # timed apart: once, then cached
        "fashion_mnist",
        epochs=args.classifier_epochs,
        steps_per_epoch=args.classifier_steps,
    )
    floor = real_vs_real_fid(classifier, args.quality_samples)
    result = _harness.envelope(
        "gan_quality", __file__, sys.argv[1:] if argv is None else argv
    )
    with _harness.LoadSampler() as load:
        started = time.perf_counter()
        code = generate.main(command)
        wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"training failed with exit code {code}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    classifier_metrics = json.loads((classifier.parent / "metrics.json").read_text())
    epochs = [{key: row.get(key) for key in EPOCH_KEYS} for row in metrics["per_epoch"]]
    for row, seconds in zip(epochs, metrics["seconds_per_epoch"], strict=False):
        row["train_seconds"] = seconds
    result.update(
        {
            "training_command": "python -m apps.generate " + " ".join(command),
            "model": args.model,
            "dataset": "fashion_mnist",
            "budget": {
                "epochs": args.epochs,
                "steps_per_epoch": metrics["steps_per_epoch"],
                "batch_size": args.batch_size,
                "d_steps": args.d_steps,
                "real_images_seen": args.epochs
                * metrics["steps_per_epoch"]
                * metrics["images_per_step"],
                "quality_samples": args.quality_samples,
            },
            "epochs": epochs,
            "seconds_per_epoch": metrics["seconds_per_epoch"],
            "images_per_second": metrics["images_per_second"],
            "wall_seconds": round(wall, 1),
            "best_fid": metrics.get("best_fid"),
            "real_vs_real_fid": floor,
            "parameters": metrics["parameters"],
            "quality_classifier": {
                "model": quality.CLASSIFIER_MODEL,
                "path": str(classifier),
                "test_accuracy": classifier_metrics.get("test_accuracy"),
                "epochs": classifier_metrics.get("epochs"),
            },
            "load_average": load.report(),
        }
    )
    print(f"\n{'epoch':>5} {'FID':>9} {'IS':>6} {'covered':>8} {'train s':>8}")
    for row in epochs:
        print(
            f"{row['epoch']:>5} {row['fid']:>9.3f} {row['inception_score']:>6.3f} "
            f"{row['class_coverage']:>8.0%} {row.get('train_seconds') or 0:>8.1f}"
        )
    print(f"real vs real (the floor): FID {floor:.3f}")
    _harness.write_result(args.output, result)
    if not args.run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


def real_vs_real_fid(classifier, samples):
    """FID between `samples` training and `samples` test images: the floor a
    perfect generator would reach with this classifier and this many samples."""
    import numpy as np
    import tensorflow as tf

    from apps import data
    from apps.generative import quality

    extractor = quality.FeatureExtractor(classifier)
    metric = quality.FrechetDistance(extractor.feature_dim)
    for split, side in (("train", "generated"), ("test", "real")):
        batches = data.pipeline(
            data.load("fashion_mnist", split).take(samples),
            batch_size=250,
            normalization="symmetric",
            cache=False,
        )
        for images, _ in batches:
            features = extractor(tf.constant(images))[0]
            metric.update_state(**{side: features})
    return round(float(np.asarray(metric.result())), 4)


if __name__ == "__main__":
    main()
