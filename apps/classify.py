"""python -m apps.classify: train, evaluate, predict and export image classifiers.

The main job (LeNet-5 on the real Fashion-MNIST, 2-core CPU; see README for the time
and accuracy measured):

    python -m apps.classify train --model lenet5 --dataset fashion_mnist \\
        --epochs 10 --seed 0 --output runs/lenet5
    python -m apps.classify evaluate --model-path runs/lenet5/model.keras \\
        --dataset fashion_mnist --tta flip
    python -m apps.classify predict --model-path runs/lenet5/model.keras \\
        shirt.png boot.jpg
    python -m apps.classify export --model-path runs/lenet5/model.keras \\
        --name lenet5

Re-running an interrupted `train` with the same --output resumes it. Exit codes:
0 done, 1 a failure during the work (e.g. a NaN loss, an unreadable image),
2 bad arguments or input (nothing was started), 130 interrupted (Ctrl-C).
The work itself is `apps.tasks.classification`'s; this module parses and prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from apps import cli
from apps.cli import UsageError, plural
from apps.tasks import classification as task
from apps.tasks.classification import PREPROCESSING_FILE, TTA_MODES  # noqa: F401
from apps.tasks.classification import load as load_classifier  # noqa: F401

# PREPROCESSING_FILE and load_classifier: named by tests/apps/test_export*.py.

MODEL_PATH_HELP = "the model.keras of a train run (its preprocessing.json beside it)"


def build_parser() -> argparse.ArgumentParser:
    parser, commands = cli.command_parser(
        "python -m apps.classify",
        "Train, evaluate, predict with and export image classifiers.",
    )
    _add_train(commands.add_parser("train", help="train a registered model"))
    _add_evaluate(commands.add_parser("evaluate", help="test accuracy, top-5, TTA"))
    _add_predict(commands.add_parser("predict", help="top-k classes of image files"))
    export = commands.add_parser("export", help="SavedModel for TF Serving")
    cli.add_export_flags(export, model_path_help=MODEL_PATH_HELP)
    _add_max_pixels(export)  # the limit of the image-bytes signature
    return cli.documented(parser)


def _add_train(parser):
    """The config's flags (from its fields), --recipe, the training core's, and
    --output."""
    from apps import recipes

    groups = {title: parser.add_argument_group(title) for title in ("Data", "Model")}
    rates = ", ".join(f"{k} {v:g}" for k, v in cli.DEFAULT_LEARNING_RATES.items())
    shown = {
        **recipes.DEFAULTS,
        "learning_rate": f"the optimiser's usual rate ({rates})",
    }
    recipe_text = {k: f"the model's recipe, else {v}" for k, v in shown.items()}
    groups |= cli.add_training_flags(
        parser,
        extra=("warmup_epochs", "label_smoothing", "bn_recalibration_steps"),
        default_text=recipe_text,
    )
    for field in dataclasses.fields(task.ClassificationConfig):
        meta = dict(field.metadata)
        if field.default is not dataclasses.MISSING:
            meta.setdefault("default", field.default)
        flag = meta.pop("flag", cli.flag_name(field.name))
        groups[meta.pop("group")].add_argument(flag, **meta)
    groups["Model"].add_argument(
        "--recipe",
        choices=("model", "none"),
        default="model",
        help="model: unset training flags and model options come from the model's "
        "registered recipe (apps.recipes); none: from the command's own defaults "
        "(default: model)",
    )
    groups["Output"].add_argument("--output", required=True, help="run directory")


def _add_evaluate(parser):
    parser.add_argument("--model-path", required=True, help=MODEL_PATH_HELP)
    parser.add_argument(
        "--dataset", required=True, help="tfds name or image folder to evaluate on"
    )
    parser.add_argument(
        "--split",
        default="test",
        help="a tfds split or slice (test, train[:10%%]); for an image folder "
        "train, validation or test, as saved in the run's split.json",
    )
    parser.add_argument(
        "--tta",
        default="none",
        choices=TTA_MODES,
        help="test-time augmentation: flip, or AlexNet's 10 crops",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="images per batch")
    parser.add_argument("--steps", type=int, help="evaluate only N batches")


def _add_max_pixels(parser):
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=cli.MAX_PIXELS,
        metavar="N",
        help="refuse images of more than N pixels (width x height), read from the "
        "file's header before decoding (default: %(default)s)",
    )


def _add_predict(parser):
    parser.add_argument("--model-path", required=True, help=MODEL_PATH_HELP)
    parser.add_argument(
        "--top-k", type=int, default=3, help="classes printed for each image"
    )
    _add_max_pixels(parser)
    parser.add_argument("images", nargs="+", help="PNG/JPEG files")


def main(argv=None) -> int:
    commands = {"train": train, "evaluate": evaluate, "predict": predict}
    return cli.main(build_parser(), {**commands, "export": export}, argv)


def train(args) -> int:
    """Flags -> the model's recipe -> TrainOptions -> the task's train -> one line."""
    fields = [f.name for f in dataclasses.fields(task.ClassificationConfig)]
    given = {name: getattr(args, name) for name in fields if name != "model_options"}
    config = task.ClassificationConfig(
        **given, model_options=cli.model_options(args.model_option)
    )
    config, values, sources = task.resolve_recipe(
        config, cli.given_training_flags(args), use_recipe=args.recipe == "model"
    )
    options = cli.train_options(args, defaults=values)
    metrics = task.train(
        config,
        options,
        args.output,
        overwrite=args.overwrite,
        arguments=_recorded_arguments(args, config, values, sources),
        recipe=sources,
    )
    if metrics:
        print(
            f"{args.model} on {metrics['dataset']}: test accuracy "
            f"{metrics['test_accuracy']:.2%} (top-5 {metrics['test_top5']:.2%}), "
            f"{plural(metrics['epochs'], 'epoch')}, "
            f"{metrics['images_per_second'] or 0:,.0f} images/s "
            f"on {metrics['replicas']} replica(s), {metrics['wall_seconds']:.0f} s. "
            f"Run directory: {args.output}"
        )
    return 0


def _recorded_arguments(args, config, values, sources) -> dict:
    """The flags as run.json and metrics.json record them: with the values the
    recipe gave, and its model options first among --model-option."""
    from apps import recipes

    given = cli.model_options(args.model_option)
    recipe_options = [
        f"{key}={value!r}"
        for key, value in sources.get("model_options", {}).items()
        if key not in given
    ]
    resolved = {
        name: values.get(name, getattr(config, name, None))
        for name in recipes.TRAINING_FIELDS
    }
    return {
        **vars(args),
        **resolved,
        "model_option": [*recipe_options, *args.model_option],
    }


def evaluate(args) -> int:
    from apps import reports

    asked = {name: getattr(args, name) for name in ("split", "tta", "batch_size")}
    results = task.evaluate(args.model_path, args.dataset, steps=args.steps, **asked)
    print(
        f"{args.dataset} {args.split}, {results['test_examples']} images, "
        f"tta={args.tta}: accuracy {results['test_accuracy']:.2%}, "
        f"top-5 {results['test_top5']:.2%}, loss {results['test_loss']:.4f}"
    )
    per_class = results["per_class_accuracy"]
    print("per-class accuracy:")
    print(reports.format_per_class(list(per_class), list(per_class.values())))
    return 0


def predict(args) -> int:
    if args.top_k < 1:
        raise UsageError(f"--top-k must be >= 1. Received: {args.top_k}")
    task.require_positive("--max-pixels", args.max_pixels)
    model, spec = task.load(args.model_path)
    failures = 0
    for path in args.images:
        try:
            pixels = task.read_image(path, spec["channels"], args.max_pixels)
        except UsageError as error:
            print(f"{path}: error: {error}", file=sys.stderr)
            failures += 1
            continue
        probabilities = task.predict(model, spec, pixels)
        best = task.top_classes(probabilities, spec["class_names"], args.top_k)
        print(f"{path}: " + ", ".join(f"{name} {p:.1%}" for name, p in best))
    if failures:
        count = f"{failures} of {len(args.images)}"
        print(f"{count} file(s) could not be read.", file=sys.stderr)
    return 1 if failures else 0


def export(args) -> int:
    """Check -> load -> SavedModel, or an ONNX/LiteRT file verified in its runtime
    (apps.export.formats)."""
    import functools

    request = {name: getattr(args, name) for name in task.EXPORT_REQUEST}
    task.check_export_request(**request)
    model, spec = task.load(args.model_path)
    publish = functools.partial(task.export, model, spec, **request)
    if args.format != "saved_model":
        return cli.file_export(publish, args.model_path)
    print(f"exported {args.model_path} to {publish()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
