"""python -m apps.generate: train GANs, sample from them, export the generator.

The main job (DCGAN on the real Fashion-MNIST, 2-core CPU):

    python -m apps.generate train --model dcgan --dataset fashion_mnist \\
        --epochs 5 --steps-per-epoch 200 --seed 0 --output runs/dcgan

takes about 7 minutes on 2 shared CPU cores (50-100 s per epoch of 200 steps at
batch 64 under a load average of 6-10, plus about 45 s once to train and cache the
quality classifier) and ends near FID 3.4 (real against real: 0.25),
Inception-Score-style score 4.5 (of 10) and all 10 classes covered; see
benchmarks/results/gan_quality.json. Then:

    python -m apps.generate sample --model-path runs/dcgan/model.keras \\
        --n 64 --output grid.png
    python -m apps.generate export --model-path runs/dcgan/model.keras --name dcgan

`train` writes into --output: `samples/epoch_NNN.png` (a grid from a fixed latent
batch, every epoch), `quality.json` (FID, Inception-Score-style score and class
coverage per epoch, measured with a LeNet-5 classifier trained by
`python -m apps.classify` on first use and cached, see `apps.generative.quality`),
`history.csv` (d_loss, g_loss, d_real, d_fake and the quality figures per epoch,
NaN for epochs --quality-every skips), `model.keras`,
`best.keras` (lowest FID), `run.json` and at the end `metrics.json`. One epoch
is one pass over the training split at ``d_steps x batch`` images per generator
step. Re-running an interrupted `train` with the same --output resumes it exactly
(same seed, same data position, both optimisers' state).

Models: `dcgan` (Radford et al. 2016; `--attention` adds SAGAN self-attention),
`cdcgan` (class-conditional; `sample --class C`), `mlp_gan` (Goodfellow et al.
2014). Exit codes: 0 done, 1 a failure during the work (e.g. a NaN loss), 2 bad
arguments or input (nothing was started), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import random
import sys
import time
from pathlib import Path

from apps import cli
from apps.cli import (
    UsageError,
    bad_input,
    check_builder_options,
    interrupted,
    model_options,
    plural,
)

TASK = "generation"
DEFAULT_BATCH_SIZE = 64
DEFAULT_LEARNING_RATE = 2e-4  # DCGAN (Radford et al., section 4)
DEFAULT_BETA_1 = 0.5
QUALITY_FILE = "quality.json"
BEST_MONITOR = "fid"  # best.keras: the lowest FID (the lowest g_loss without quality)
SAMPLES_DIR = "samples"
MODEL_PATH_HELP = "the model.keras of a `python -m apps.generate train` run"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m apps.generate",
        description="Train GANs, sample images from them, export the generator.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands.add_parser("train", help="train a registered GAN"))
    _add_sample(commands.add_parser("sample", help="a PNG grid of generated images"))
    _add_export(commands.add_parser("export", help="the generator for TF Serving"))
    return cli.documented(parser)


def _add_train(parser):
    data = parser.add_argument_group("Data")
    data.add_argument(
        "--dataset",
        required=True,
        help="tfds name (fashion_mnist, cifar10, ...) or an image folder",
    )
    data.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="generate images of this size (default: the dataset's)",
    )
    model = parser.add_argument_group("Model")
    model.add_argument("--model", required=True, help="dcgan, cdcgan or mlp_gan")
    model.add_argument("--latent-dim", type=int, help="size of z (default 100)")
    model.add_argument("--width", type=int, help="DCGAN filters (default 64)")
    model.add_argument(
        "--attention",
        action="store_true",
        help="DCGAN: SAGAN self-attention in generator and discriminator",
    )
    model.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any builder argument, e.g. use_maxout=False (repeatable)",
    )
    optimisation = parser.add_argument_group("Optimisation")
    optimisation.add_argument("--epochs", type=int, default=10, help="training epochs")
    optimisation.add_argument(
        "--steps-per-epoch",
        type=int,
        help="generator steps per epoch (default: one pass over the data)",
    )
    optimisation.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"per replica and step (default {DEFAULT_BATCH_SIZE})",
    )
    optimisation.add_argument(
        "--d-steps",
        type=int,
        default=1,
        help="discriminator updates per generator update, k (default 1)",
    )
    optimisation.add_argument(
        "--loss",
        default="bce",
        choices=cli.GAN_LOSSES,
        help="bce: the original GAN's (non-saturating for G); lsgan: least squares",
    )
    optimisation.add_argument(
        "--learning-rate",
        type=float,
        default=DEFAULT_LEARNING_RATE,
        help=f"Adam, both networks (default {DEFAULT_LEARNING_RATE})",
    )
    optimisation.add_argument(
        "--beta-1", type=float, default=DEFAULT_BETA_1, help="Adam's beta_1"
    )
    optimisation.add_argument(
        "--label-smoothing",
        type=float,
        default=0.0,
        help="one-sided: real target 1 - s (default 0)",
    )
    optimisation.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="STEPS",
        help="also save the run state every N steps (it is saved every epoch)",
    )
    distribution = parser.add_argument_group("Distribution and speed")
    distribution.add_argument(
        "--strategy",
        default="auto",
        choices=cli.STRATEGIES,
        help=cli.STRATEGY_HELP,
    )
    distribution.add_argument(
        "--devices",
        type=int,
        help="replicas; on a CPU-only machine, logical CPU devices",
    )
    distribution.add_argument(
        "--mixed-precision",
        action="store_true",
        help="bfloat16 compute on CPUs, float16 on GPUs",
    )
    distribution.add_argument("--jit", action="store_true", help="XLA-compile the step")
    quality = parser.add_argument_group("Quality")
    quality.add_argument(
        "--quality-samples",
        type=int,
        default=1000,
        help="images for FID/IS/coverage each epoch (0: no measurement)",
    )
    quality.add_argument(
        "--quality-every",
        type=int,
        default=1,
        help="measure every N epochs (and after the first and the last; default 1)",
    )
    quality.add_argument(
        "--quality-classifier",
        help="model.keras of an apps.classify run (default: trained once, cached)",
    )
    quality.add_argument(
        "--classifier-epochs",
        type=int,
        default=3,
        help="epochs of the cached classifier when one is trained (default 3)",
    )
    output = parser.add_argument_group("Output")
    output.add_argument("--output", required=True, help="run directory")
    output.add_argument("--seed", type=int, help="seeded, deterministic run")
    output.add_argument(
        "--samples", type=int, default=64, help="images in each epoch's grid"
    )
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="train again from scratch even if --output holds a run",
    )


def _add_sample(parser):
    parser.add_argument("--model-path", required=True, help=MODEL_PATH_HELP)
    parser.add_argument("--n", type=int, default=64, help="number of images")
    parser.add_argument(
        "--class",
        dest="class_id",
        type=int,
        help="conditional models: the class (default: each class in turn)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the noise")
    parser.add_argument("--columns", type=int, help="grid columns")
    parser.add_argument("--output", required=True, help="the PNG file to write")


def _add_export(parser):
    from apps.cli import add_export_format_options

    add_export_format_options(parser, examples="fixed latent vectors")
    parser.add_argument("--model-path", required=True, help=MODEL_PATH_HELP)
    parser.add_argument("--name", required=True, help=cli.EXPORT_NAME_HELP)
    parser.add_argument(
        "--export-dir", default="saved_models", help=cli.EXPORT_DIR_HELP
    )
    parser.add_argument("--version", help="integer; default: next after the highest")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing version"
    )


def main(argv=None) -> int:
    args = cli.parse_args(build_parser(), argv)
    from apps.data.datasets import DatasetError
    from apps.registry import UnknownModelError
    from apps.training import TrainingError

    command = {"train": train, "sample": sample, "export": export}[args.command]
    try:
        return command(args)
    except (UsageError, DatasetError, UnknownModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"training stopped: {error}", file=sys.stderr)
        return 1
    except cli.BadFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted()


# train


def train(args) -> int:
    """Check -> options -> strategy -> GAN -> classifier -> data -> fit -> report."""

    import apps
    import apps.generative  # noqa: F401  (registers the GANs)
    from apps import data, runs, training
    from apps.generative import callbacks, quality

    started = time.perf_counter()
    run_dir = Path(args.output)
    run = runs.RunDirectory(run_dir, "apps.generate train", args.model, args.dataset)
    with bad_input():  # every check before any training starts
        kind = run.check(args.overwrite)
        _check_train_args(args)
        info = apps.get_model_info(args.model)
        if info.task != TASK:
            raise UsageError(
                f"{args.model} is not a generative model. Choose one of "
                f"{apps.list_models(task=TASK)}."
            )
        options = _train_options(args)
        dataset_info = data.describe(args.dataset)
        builder_options = _builder_options(info, args, dataset_info)
        image_shape = _image_shape(args, dataset_info, info)
        classifier_path = _check_classifier_path(args)
        seed = resolve_seed(args.seed, run_dir if kind == "resume" else None)
        strategy = training.setup(options)
        with strategy.scope():
            gan = apps.build(
                args.model, input_shape=image_shape, seed=seed, **builder_options
            )
            gan.compile(**_compile_options(args))

    if kind == "finished":
        run.say_finished()
        return 0
    chief = training.is_chief(strategy)
    if chief:  # multi-worker: only the chief writes (and locks) the run directory
        run.open(replace=kind == "replace")
    try:
        global_batch = options.batch_size * training.replicas(strategy)
        with bad_input():  # e.g. a batch larger than the dataset
            stream, steps = training_stream(
                args.dataset,
                image_shape,
                global_batch=global_batch,
                d_steps=args.d_steps,
                seed=seed,
                steps_per_epoch=args.steps_per_epoch,
            )
        options.steps_per_epoch = steps
        monitors = []
        if chief:
            monitors.append(
                callbacks.SampleGrid(
                    run_dir / SAMPLES_DIR,
                    n=args.samples,
                    seed=seed,
                    class_names=dataset_info.class_names,
                )
            )
        if args.quality_samples:
            if classifier_path is None:
                classifier_path = quality.ensure_classifier(
                    dataset_info.name if _is_tfds(args.dataset) else args.dataset,
                    epochs=args.classifier_epochs,
                )
            with bad_input():  # e.g. a classifier whose output is not a Dense layer's
                evaluator = quality.QualityEvaluator(
                    classifier_path,
                    quality.real_reference(
                        args.dataset, image_shape, args.quality_samples
                    ),
                    samples=args.quality_samples,
                    seed=seed,
                    strategy=strategy,
                )
            monitors.append(  # every worker measures (collective ops); the chief writes
                callbacks.QualityMonitor(
                    evaluator,
                    run_dir / QUALITY_FILE if chief else None,
                    every=args.quality_every,
                )
            )
        if chief:
            training.write_json(
                run_dir / "run.json",
                {
                    "command": "apps.generate train",
                    "arguments": vars(args),
                    "seed": seed,
                    "image_shape": list(image_shape),
                    "class_names": list(dataset_info.class_names),
                    "quality_classifier": None
                    if not args.quality_samples
                    else str(classifier_path),
                    "versions": training.versions(),
                    "strategy": type(strategy).__name__,
                    "replicas": training.replicas(strategy),
                },
            )
        _, throughput = training.fit(
            gan,
            stream,
            None,
            run_dir,
            options,
            strategy=strategy,
            extra_callbacks=monitors,  # first: the best checkpoint sees `fid`
            monitor=BEST_MONITOR if args.quality_samples else "g_loss",
        )
        if not chief:
            print("worker done; the chief writes the run directory.")
            return 0

        metrics = summarise_run(run_dir, gan, args, throughput)
        metrics.update(
            {
                "steps_per_epoch": steps,
                "batch_size": options.batch_size,
                "global_batch_size": global_batch,
                "images_per_step": global_batch * args.d_steps,
                "replicas": training.replicas(strategy),
                "wall_seconds": time.perf_counter() - started,
                "model": args.model,
                "dataset": dataset_info.name,
                "image_shape": list(image_shape),
                "seed": seed,
                "arguments": vars(args),
                "versions": training.versions(),
            }
        )
        training.write_json(run_dir / "metrics.json", metrics)
        fid = metrics.get("fid")
        print(
            f"{args.model} on {dataset_info.name}: "
            f"{plural(metrics['epochs'], 'epoch')}, d_loss "
            f"{metrics['d_loss']:.4f}, g_loss {metrics['g_loss']:.4f}"
            + (f", FID {fid:.3f}" if fid is not None else "")
            + f", {metrics['images_per_second'] or 0:,.0f} images/s on "
            f"{metrics['replicas']} replica(s), {metrics['wall_seconds']:.0f} s. "
            f"Run directory: {run_dir}"
        )
        return 0
    finally:
        run.close()


def _check_train_args(args):
    for flag, value, minimum in (
        ("--d-steps", args.d_steps, 1),
        ("--epochs", args.epochs, 1),
        ("--batch-size", args.batch_size, 1),
        ("--samples", args.samples, 1),
        ("--quality-every", args.quality_every, 1),
        ("--classifier-epochs", args.classifier_epochs, 1),
        ("--quality-samples", args.quality_samples, 0),
    ):
        if value < minimum:
            raise UsageError(f"{flag} must be >= {minimum}. Received: {value}")
    if args.quality_samples == 1:
        raise UsageError("--quality-samples must be 0 (off) or >= 2. Received: 1")
    if args.latent_dim is not None and args.latent_dim < 1:
        raise UsageError(
            f"--latent-dim must be a positive integer. Received: {args.latent_dim}"
        )
    if not 0 <= args.label_smoothing < 1:
        raise UsageError(
            f"--label-smoothing must be in [0, 1). Received: {args.label_smoothing}"
        )
    if not args.learning_rate > 0:
        raise UsageError(f"--learning-rate must be > 0. Received: {args.learning_rate}")
    if not 0 <= args.beta_1 < 1:
        raise UsageError(f"--beta-1 must be in [0, 1). Received: {args.beta_1}")


def _train_options(args):
    from apps import training

    return training.TrainOptions(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        optimizer="adam",
        lr_schedule="constant",
        strategy=args.strategy,
        devices=args.devices,
        mixed_precision=args.mixed_precision,
        jit=args.jit,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
    )


def _compile_options(args) -> dict:
    import keras

    def adam(name):
        return keras.optimizers.Adam(
            learning_rate=args.learning_rate, beta_1=args.beta_1, name=name
        )

    return {
        "d_optimizer": adam("d_optimizer"),
        "g_optimizer": adam("g_optimizer"),
        "loss": args.loss,
        "d_steps": args.d_steps,
        "label_smoothing": args.label_smoothing,
        "jit_compile": args.jit,
    }


def _builder_options(info, args, dataset_info) -> dict:
    """--latent-dim, --width, --attention, --model-option, checked against the
    builder; conditional builders get the dataset's classes."""
    options = model_options(args.model_option)
    for key in ("latent_dim", "width"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.attention:
        options["attention"] = True
    check_builder_options(info, options, fixed=("input_shape", "seed"))
    parameters = inspect.signature(info.builder).parameters
    classes = parameters.get("classes")
    if classes is not None and (
        classes.default is not None or options.get("classes") is not None
    ):
        wanted = options.get("classes", dataset_info.num_classes)
        if wanted != dataset_info.num_classes:
            raise UsageError(
                f"classes={wanted!r} but {dataset_info.name} has "
                f"{dataset_info.num_classes} classes."
            )
        options["classes"] = dataset_info.num_classes
    return options


def _image_shape(args, dataset_info, info) -> tuple[int, int, int]:
    height, width, channels = dataset_info.image_shape
    if args.image_size:
        height, width = args.image_size
    if height is None or width is None:
        default = info.default_input_shape or (64, 64, channels)
        height, width = default[:2]
    return int(height), int(width), int(channels)


def _check_classifier_path(args):
    if not args.quality_classifier or not args.quality_samples:
        return None
    path = Path(args.quality_classifier)
    if not path.is_file() or not (path.parent / "preprocessing.json").is_file():
        raise UsageError(
            f"--quality-classifier {path} must be the model.keras of a "
            "`python -m apps.classify train` run (with preprocessing.json beside it)."
        )
    return path


def _is_tfds(dataset: str) -> bool:
    return not Path(dataset).is_dir()


def resolve_seed(seed, run_dir) -> int:
    """--seed, else the seed of the run being resumed, else a new random one.

    The GAN's noise and the data order derive from it, so a resumed run must use
    the seed the interrupted one used.
    """
    if seed is not None:
        return int(seed)
    recorded = Path(run_dir or "") / "run.json"
    if run_dir is not None and recorded.is_file():
        try:
            previous = json.loads(recorded.read_text()).get("seed")
        except (OSError, ValueError):
            previous = None
        if isinstance(previous, int):
            return previous
    return random.randrange(2**31 - 1)


def training_stream(
    dataset, image_shape, *, global_batch, d_steps, seed, steps_per_epoch=None
):
    """The training stream factory for `training.fit`, and the steps per epoch.

    Each step takes ``d_steps * global_batch`` real images (k minibatches for the
    k discriminator updates, cut apart by `GAN.train_step`). One epoch is one pass
    over the training split unless `steps_per_epoch` says otherwise; the factory
    maps a fit epoch to its place in the data (data epoch and offset), so a resumed
    run reads exactly the batches the uninterrupted run would have read.

    Returns:
        ``(start_epoch -> dataset, steps_per_epoch)``.
    """
    from apps import data
    from apps.data import images as image_ops

    examples = data.load(dataset, "train")
    batch = d_steps * global_batch
    data_steps = image_ops.epoch_steps(image_ops.count_examples(examples), batch)
    steps = steps_per_epoch or data_steps

    def stream(start_epoch=0):
        data_epoch, offset = divmod(start_epoch * steps, data_steps)
        batches = data.pipeline(
            examples,
            batch_size=batch,
            training=True,
            image_size=tuple(image_shape[:2]),
            channels=image_shape[-1],
            normalization="symmetric",
            seed=seed,
            start_epoch=data_epoch,
        )
        return batches.skip(offset)

    return stream, steps


def summarise_run(run_dir, gan, args, throughput) -> dict:
    """metrics.json's figures: last and per-epoch losses and quality."""
    from apps import training
    from apps.generative import callbacks

    history = training.read_history(run_dir)
    records = callbacks.read_quality(Path(run_dir) / QUALITY_FILE)
    epochs = len(history.get("g_loss", []))
    per_epoch = []
    for index in range(epochs):
        row = {"epoch": index + 1}
        row.update(
            {
                key: values[index]
                for key, values in history.items()
                # history.csv holds NaN for the quality of unmeasured epochs.
                if not (key in callbacks.LOGGED_FIGURES and math.isnan(values[index]))
            }
        )
        row.update(records.get(str(index + 1), {}))
        per_epoch.append(row)
    last = per_epoch[-1] if per_epoch else {}
    measured = [row for row in per_epoch if str(row["epoch"]) in records]
    summary = {
        "epochs": epochs,
        "d_loss": last.get("d_loss"),
        "g_loss": last.get("g_loss"),
        "d_real": last.get("d_real"),
        "d_fake": last.get("d_fake"),
        "per_epoch": per_epoch,
        "images_per_second": throughput.images_per_second,
        "seconds_per_epoch": [
            round(seconds, 3) for seconds, _ in throughput.epoch_times
        ],
        "parameters": {
            "generator": gan.generator.count_params(),
            "discriminator": gan.discriminator.count_params(),
        },
        "d_steps": args.d_steps,
        "loss": args.loss,
        "latent_dim": gan.latent_dim,
        "conditional": gan.conditional,
    }
    if measured:
        final = measured[-1]
        best = min(measured, key=lambda row: row["fid"])
        summary.update(
            {
                key: final[key]
                for key in (
                    "fid",
                    "inception_score",
                    "class_coverage",
                    "class_entropy",
                    "max_class_share",
                    "class_shares",
                )
            }
        )
        summary["best_fid"] = {"epoch": best["epoch"], "fid": best["fid"]}
    else:
        summary["fid"] = None
    return summary


# sample


def load_gan(model_path):
    """Loads a GAN saved by `train` (model.keras or best.keras)."""

    import apps  # noqa: F401  (custom layers)
    import apps.generative  # noqa: F401  (the GAN class)
    from apps.generative.gan import GAN

    path = Path(model_path)
    if not path.is_file():
        raise UsageError(
            f"--model-path {path} does not exist; point it at the model.keras of "
            "a `python -m apps.generate train` run."
        )
    model = cli.load_model_file(path)
    if not isinstance(model, GAN):
        raise UsageError(
            f"{path} holds a {type(model).__name__}, not a GAN from "
            "`python -m apps.generate train`."
        )
    return model


def sample(args) -> int:
    from apps.generative import callbacks

    if args.n < 1:
        raise UsageError(f"--n must be >= 1. Received: {args.n}")
    if args.columns is not None and args.columns < 1:
        raise UsageError(f"--columns must be >= 1. Received: {args.columns}")
    with bad_input():
        callbacks.grid_format(args.output)  # before the model loads
    gan = load_gan(args.model_path)
    with bad_input():
        images = gan.generate(args.n, labels=args.class_id, seed=args.seed)
        labels = callbacks.class_labels(
            gan,
            gan.sample_labels(args.n, args.class_id),
            _class_names(args.model_path),
        )
    columns = args.columns
    if columns is None and gan.conditional and args.class_id is None:
        columns = gan.num_classes
    try:
        path = callbacks.save_grid(images, args.output, columns, labels)
    except OSError as error:
        raise UsageError(
            f"cannot write --output {args.output}: {error.strerror or error}. "
            "Choose a file in a directory you can write to."
        ) from None
    print(f"wrote {args.n} images from {args.model_path} to {path}")
    return 0


def _class_names(model_path):
    """The dataset's class names from the run.json beside a trained model, if any."""
    try:
        record = json.loads((Path(model_path).parent / "run.json").read_text())
    except (OSError, ValueError):
        return None
    names = record.get("class_names") if isinstance(record, dict) else None
    return names if isinstance(names, list) else None


# export


def export(args) -> int:
    """Check -> load -> hold the name -> SavedModel, or an ONNX/LiteRT file of the
    generator verified in its runtime (apps.export_formats)."""
    from apps import export as exporter
    from apps import export_formats
    from apps.cli import file_export

    with bad_input():  # everything refusable before the model loads
        export_formats.check_request(
            args.format,
            args.quantize,
            examples=args.verify_examples,
            tolerance=args.tolerance,
            max_accuracy_drop=args.max_accuracy_drop,
        )
        if args.max_accuracy_drop is not None:
            raise UsageError(
                "--max-accuracy-drop bounds a classifier's int8 accuracy; a "
                "generator has none (its int8 difference from Keras is reported)."
            )
        exporter.check_name(args.name)
        exporter.parse_version(args.version)
        exporter.check_export_dir(args.export_dir)
    gan = load_gan(args.model_path)
    with bad_input(), exporter.export_lock(args.export_dir, args.name):
        if args.format != "saved_model":
            return file_export(
                lambda: export_formats.export_generator_file(
                    gan,
                    args.format,
                    name=args.name,
                    export_dir=args.export_dir,
                    version=args.version,
                    force=args.force,
                    quantize=args.quantize,
                    examples=args.verify_examples
                    or export_formats.GENERATOR_VERIFY_EXAMPLES,
                    tolerance=args.tolerance,
                ),
                f"the generator of {args.model_path}",
            )
        target = export_generator(
            gan,
            name=args.name,
            export_dir=args.export_dir,
            version=args.version,
            force=args.force,
        )
    print(f"exported the generator of {args.model_path} to {target}")
    return 0


def export_generator(
    gan, *, name, export_dir="saved_models", version=None, force=False
):
    """Exports `gan`'s generator for TF Serving (latent -> uint8 images).

    Signatures (uint8 ``images`` ``(batch, H, W, C)`` out of both):

    - ``serving_default``: ``latent`` float32 ``(batch, latent_dim)`` (and, for a
      conditional GAN, ``class_ids`` int32 ``(batch,)``);
    - ``sample``: ``num_images`` int32 and ``seed`` int64 scalars (conditional:
      ``class_ids`` int32 ``(batch,)`` and ``seed``): the noise is drawn in the
      graph, so a client needs no random numbers of its own.
    """
    import numpy as np
    import tensorflow as tf

    from apps import export as exporter

    generator, latent_dim = gan.generator, gan.latent_dim

    def to_uint8(images):
        pixels = tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5)
        return tf.cast(tf.clip_by_value(pixels, 0.0, 255.0), tf.uint8)

    def noise(count, seed):
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
        return tf.random.stateless_normal((count, latent_dim), seed=seed)

    latent_spec = tf.TensorSpec((None, latent_dim), tf.float32, name="latent")
    seed_spec = tf.TensorSpec((), tf.int64, name="seed")
    if gan.conditional:
        classes_spec = tf.TensorSpec((None,), tf.int32, name="class_ids")

        @tf.function(input_signature=[latent_spec, classes_spec])
        def serving_default(latent, class_ids):
            return {"images": to_uint8(generator([latent, class_ids], training=False))}

        @tf.function(input_signature=[classes_spec, seed_spec])
        def sample(class_ids, seed):
            latent = noise(tf.shape(class_ids)[0], seed)
            return {"images": to_uint8(generator([latent, class_ids], training=False))}

        warmup = {
            "serving_default": [
                {
                    "latent": np.zeros((1, latent_dim), np.float32),
                    "class_ids": np.zeros((1,), np.int32),
                }
            ],
            "sample": [
                {"class_ids": np.arange(2, dtype=np.int32), "seed": np.int64(0)}
            ],
        }
    else:

        @tf.function(input_signature=[latent_spec])
        def serving_default(latent):
            return {"images": to_uint8(generator(latent, training=False))}

        @tf.function(
            input_signature=[tf.TensorSpec((), tf.int32, name="num_images"), seed_spec]
        )
        def sample(num_images, seed):
            latent = noise(num_images, seed)
            return {"images": to_uint8(generator(latent, training=False))}

        warmup = {
            "serving_default": [{"latent": np.zeros((1, latent_dim), np.float32)}],
            "sample": [{"num_images": np.int32(2), "seed": np.int64(0)}],
        }
    description = {
        "latent_dim": latent_dim,
        "image_shape": list(gan.image_shape),
        "num_classes": gan.num_classes,
        "output": "uint8 images, (pixel + 1) * 127.5 of the tanh output",
    }
    return exporter.export_signatures(
        {"serving_default": serving_default, "sample": sample},
        name=name,
        export_dir=export_dir,
        version=version,
        force=force,
        track=[generator],
        warmup=warmup,
        extra_assets={"generator.json": json.dumps(description, indent=2)},
    )


if __name__ == "__main__":
    sys.exit(main())
