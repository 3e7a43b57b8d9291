"""Sample quality against training time: DCGAN on Fashion-MNIST, on this machine.

    python benchmarks/gan_quality.py --epochs 5 --steps-per-epoch 200

Runs what `python -m apps.generate train --model dcgan --dataset fashion_mnist` runs
(in this process: `apps.tasks.generation.train`) with a small budget, and records per
epoch:
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
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

# Per-epoch figures the JSON keeps: the task's quality figures (fid, ...), then these.
LOSS_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "quality_seconds")
# GenerationConfig / TrainOptions fields this script sets itself (the JSON's budget
# records them), so --option may not: why, and what to use instead.
OWN_FIELDS = {
    "model": "use --model",
    "dataset": "this benchmark measures fashion_mnist",
    "epochs": "use --epochs",
    "steps_per_epoch": "use --steps-per-epoch",
    "batch_size": "use --batch-size",
    "d_steps": "use --d-steps",
    "quality_samples": "use --quality-samples",
    "seed": "use --seed",
    "classifier_epochs": "use --classifier-epochs",
}


def build_parser() -> argparse.ArgumentParser:
    parser = _harness.parser(__doc__, "gan_quality")
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
    _harness.add_training_flags(
        parser,
        "more train settings: a GenerationConfig field or a TrainOptions field "
        "that `apps.generate train` has a flag for, as FIELD=VALUE (VALUE a Python "
        "literal, else a string), FIELD alone for True, model_option=KEY=VALUE for "
        "a builder argument; e.g. --option=attention, --option=--latent-dim=8 "
        "(repeatable)",
    )
    return parser


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    from apps import cli

    try:
        settings = extra_settings(args.option)
    except cli.UsageError as error:
        parser.error(str(error))  # exit 2, before anything runs
    with _harness.run_directory(args.run_dir, "gan-quality-") as run_dir:
        return _measure(args, settings, run_dir, argv)


def _measure(args, settings, run_dir: Path, argv) -> dict:
    """Trains in `run_dir` with the `--option` settings (as `extra_settings` reads
    them), measures the quality and writes the result file."""
    config_fields, option_fields, extra = settings
    from apps import cli
    from apps.generative import quality

    command = _training_command(args, run_dir, extra)
    classifier = quality.ensure_classifier(  # timed apart: once, then cached
        "fashion_mnist",
        epochs=args.classifier_epochs,
        steps_per_epoch=args.classifier_steps,
    )
    floor = real_vs_real_fid(classifier, args.quality_samples)
    result = _harness.envelope("gan_quality", __file__, argv)
    with _harness.LoadSampler() as load:
        started = time.perf_counter()
        job = (args, config_fields, option_fields, run_dir)
        code = cli.run_command(_train, job)
        wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"training failed with exit code {code}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    classifier_metrics = json.loads((classifier.parent / "metrics.json").read_text())
    from apps.tasks.generation import QUALITY_FIGURES

    keys = ("epoch", *QUALITY_FIGURES, *LOSS_KEYS)
    epochs = [{key: row.get(key) for key in keys} for row in metrics["per_epoch"]]
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
    _print_epochs(epochs, floor)
    _harness.write_result(args.output, result)
    return result


def _training_command(args, run_dir: Path, extra) -> list[str]:
    """The `apps.generate` words the benchmark's training matches (recorded)."""
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
    return command


def _print_epochs(epochs, floor) -> None:
    print(f"\n{'epoch':>5} {'FID':>9} {'IS':>6} {'covered':>8} {'train s':>8}")
    for row in epochs:
        print(
            f"{row['epoch']:>5} {row['fid']:>9.3f} {row['inception_score']:>6.3f} "
            f"{row['class_coverage']:>8.0%} {row.get('train_seconds') or 0:>8.1f}"
        )
    print(f"real vs real (the floor): FID {floor:.3f}")


def _as_flags(field, value, text) -> list[str]:
    """The `apps.generate train` words for one --option: a switch alone (or left
    out when False), a pair such as image_size=32,32 as two words, else the text."""
    from apps import cli

    flag = cli.flag_name(field)
    if value is True or value is False:
        return [flag] if value else []
    if isinstance(value, tuple):
        return [flag, *map(str, value)]
    return [flag, text]


def extra_settings(items) -> tuple[dict, dict, list]:
    """`--option` items as (GenerationConfig fields, TrainOptions fields, the same
    as `apps.generate train` flags, for the recorded command).

    Read as benchmarks/time_to_accuracy.py reads its --option (leading dashes
    dropped, `-` read as `_`), so the old `--option=--width=8` form still works.

    Raises:
        UsageError: an item that names no field, or one this script sets itself.
    """
    from apps import cli
    from apps.tasks import generation

    config_names = {
        field.name for field in dataclasses.fields(generation.GenerationConfig)
    }
    config, options, flags = {}, {}, []
    for item in items:
        key, separator, text = item.lstrip("-").partition("=")
        if not key.strip():
            raise cli.UsageError(
                f"--option takes FIELD=VALUE or FIELD. Received: {item!r}"
            )
        ((field, value),) = cli.model_options([f"{key}={text or True}"]).items()
        flags += _as_flags(field, value, text)
        if field in OWN_FIELDS:
            raise cli.UsageError(
                f"--option {item}: {field} is set by this script; {OWN_FIELDS[field]}."
            )
        if field == "model_option":
            config.setdefault("model_options", {}).update(cli.model_options([text]))
        elif field in config_names:  # label_smoothing: the GAN's, as the command's
            config[field] = value
        elif field in cli.SHARED_TRAINING_FLAGS:
            options[field] = value
        else:
            raise cli.UsageError(
                f"--option {item}: {field} is not a GenerationConfig field nor one of "
                f"the TrainOptions fields `apps.generate train` takes. The fields: "
                f"{sorted(config_names - set(OWN_FIELDS))}, "
                f"{sorted(set(cli.SHARED_TRAINING_FLAGS) - set(OWN_FIELDS))}"
            )
    return config, options, flags


def _train(job) -> int:
    """What `training_command` runs: the generation task's train, with the GAN's
    training defaults where neither the flags nor --option say otherwise."""
    from apps import cli
    from apps.tasks import generation

    args, config_fields, option_fields, run_dir = job
    with cli.bad_input():
        config = generation.GenerationConfig(
            model=args.model,
            dataset="fashion_mnist",
            d_steps=args.d_steps,
            quality_samples=args.quality_samples,
            **config_fields,
        )
        options = generation.default_options(
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch or None,
            batch_size=args.batch_size,
            seed=args.seed,
            **option_fields,
        )
    generation.train(config, options, run_dir, overwrite=True)
    return 0


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
