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

`train` writes into --output what `apps.tasks.generation` (which does the work)
describes; re-running an interrupted `train` with the same --output resumes it
exactly.

Models: `dcgan` (Radford et al. 2016; `--attention` adds SAGAN self-attention),
`cdcgan` (class-conditional; `sample --class C`), `mlp_gan` (Goodfellow et al.
2014). Exit codes: 0 done, 1 a failure during the work (e.g. a NaN loss), 2 bad
arguments or input (nothing was started), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from apps import cli
from apps.cli import bad_input, plural
from apps.options import OPTIMISATION, OUTPUT
from apps.tasks import generation
from apps.tasks.generation import load_gan

MODEL_PATH_HELP = "the model.keras of a `python -m apps.generate train` run"
LEARNING_RATE_DEFAULT = "2e-4 with adam (DCGAN), else the optimiser's usual rate"


def build_parser() -> argparse.ArgumentParser:
    parser, commands = cli.command_parser(
        "python -m apps.generate",
        "Train GANs, sample images from them, export the generator.",
    )
    _add_train(commands.add_parser("train", help="train a registered GAN"))
    _add_sample(commands.add_parser("sample", help="a PNG grid of generated images"))
    cli.add_export_flags(
        commands.add_parser("export", help="the generator for TF Serving"),
        model_path_help=MODEL_PATH_HELP,
        examples="fixed latent vectors",
    )
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
    groups = cli.add_training_flags(
        parser,
        defaults=generation.train_defaults(),
        unsupported=generation.UNSUPPORTED,
        default_text={"learning_rate": LEARNING_RATE_DEFAULT},
    )
    _add_flags(groups[OPTIMISATION], OBJECTIVE_FLAGS)
    groups[OPTIMISATION].add_argument(
        "--loss",
        default="bce",
        choices=cli.GAN_LOSSES,
        help="bce: the original GAN's (non-saturating for G); lsgan: least squares",
    )
    _add_flags(parser.add_argument_group("Quality"), QUALITY_FLAGS)
    output = groups[OUTPUT]
    output.add_argument("--output", required=True, help="run directory")
    _add_flags(output, [("--samples", int, 64, "images in each epoch's grid")])


# The GAN's own flags: (flag, type, default, help). Its --label-smoothing is
# one-sided, not the classifiers' (TrainOptions.label_smoothing).
OBJECTIVE_FLAGS = (
    ("--d-steps", int, 1, "discriminator updates per generator update, k (default 1)"),
    ("--beta-1", float, None, f"Adam's beta_1 (default: {generation.DEFAULT_BETA_1})"),
    ("--label-smoothing", float, 0.0, "one-sided: real target 1 - s (default 0)"),
)
QUALITY_FLAGS = (
    (
        "--quality-samples",
        int,
        1000,
        "images for FID/IS/coverage each epoch (0: no measurement)",
    ),
    (
        "--quality-every",
        int,
        1,
        "measure every N epochs (and after the first and the last; default 1)",
    ),
    (
        "--quality-classifier",
        str,
        None,
        "model.keras of an apps.classify run (default: trained once, cached)",
    ),
    (
        "--classifier-epochs",
        int,
        3,
        "epochs of the cached classifier when one is trained (default 3)",
    ),
)


def _add_flags(group, flags):
    for flag, kind, default, help_text in flags:
        group.add_argument(flag, type=kind, default=default, help=help_text)


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


def main(argv=None) -> int:
    commands = {"train": train, "sample": sample, "export": export}
    return cli.main(build_parser(), commands, argv)


def train(args) -> int:
    """Flags -> GenerationConfig and TrainOptions -> generation.train -> one line."""
    with bad_input():
        config = _config(args)
    options = cli.train_options(
        args,
        defaults=generation.train_defaults(args.optimizer),
        unsupported=generation.UNSUPPORTED,
    )
    metrics = generation.train(config, options, args.output, overwrite=args.overwrite)
    if metrics is None:  # a finished run, or a worker: said already
        return 0
    fid = metrics["fid"]
    print(
        f"{config.model} on {metrics['dataset']}: "
        f"{plural(metrics['epochs'], 'epoch')}, d_loss "
        f"{metrics['d_loss']:.4f}, g_loss {metrics['g_loss']:.4f}"
        + (f", FID {fid:.3f}" if fid is not None else "")
        + f", {metrics['images_per_second'] or 0:,.0f} images/s on "
        f"{metrics['replicas']} replica(s), {metrics['wall_seconds']:.0f} s. "
        f"Run directory: {Path(args.output)}"
    )
    return 0


def _config(args) -> generation.GenerationConfig:
    """The config from the flags of the same names (--model-option: KEY=VALUE)."""
    fields = dataclasses.fields(generation.GenerationConfig)
    values = {field.name: getattr(args, field.name, None) for field in fields}
    values["model_options"] = cli.model_options(args.model_option)
    if args.image_size:
        values["image_size"] = tuple(args.image_size)
    return generation.GenerationConfig(**values)


def sample(args) -> int:
    choices = {key: getattr(args, key) for key in ("n", "class_id", "seed", "columns")}
    path = generation.sample(args.model_path, args.output, **choices)
    print(f"wrote {args.n} images from {args.model_path} to {path}")
    return 0


def export(args) -> int:
    """Check -> load -> hold the name -> SavedModel, or an ONNX/LiteRT file of the
    generator verified in its runtime (apps.export.formats)."""
    from apps import export as exporter
    from apps.export import formats as export_formats

    publish = {key: getattr(args, key) for key in ("name", "export_dir", "version")}
    generation.check_export(
        args.format,
        **publish,
        quantize=args.quantize,
        examples=args.verify_examples,
        tolerance=args.tolerance,
        max_accuracy_drop=args.max_accuracy_drop,
    )
    gan = load_gan(args.model_path)
    publish["force"] = args.force
    with bad_input(), exporter.export_lock(args.export_dir, args.name):
        if args.format != "saved_model":
            return cli.file_export(
                lambda: export_formats.export_generator_file(
                    gan,
                    args.format,
                    **publish,
                    quantize=args.quantize,
                    examples=args.verify_examples
                    or export_formats.GENERATOR_VERIFY_EXAMPLES,
                    tolerance=args.tolerance,
                ),
                f"the generator of {args.model_path}",
            )
        target = generation.export_generator(gan, **publish)
    print(f"exported the generator of {args.model_path} to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
