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
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

from apps import cli
from apps.cli import (
    BadFileError,
    UsageError,
    bad_input,
    check_builder_options,
    interrupted,
    model_options,
    plural,
)

PREPROCESSING_FILE = "preprocessing.json"
MODEL_PATH_HELP = "the model.keras of a train run (its preprocessing.json beside it)"
TTA_MODES = ("none", "flip", "10crop")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m apps.classify",
        description="Train, evaluate, predict with and export image classifiers.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands.add_parser("train", help="train a registered model"))
    _add_evaluate(commands.add_parser("evaluate", help="test accuracy, top-5, TTA"))
    _add_predict(commands.add_parser("predict", help="top-k classes of image files"))
    _add_export(commands.add_parser("export", help="SavedModel for TF Serving"))
    return cli.documented(parser)


def _add_train(parser):
    data = parser.add_argument_group("Data")
    data.add_argument(
        "--dataset",
        required=True,
        help="tfds name (fashion_mnist, cifar10, ...) or an image folder",
    )
    data.add_argument(
        "--validation-split",
        type=float,
        default=0.1,
        help="share of the training split held out (default 0.1)",
    )
    data.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="resize images in the pipeline (default: the model's recipe, else the "
        "dataset's size)",
    )
    data.add_argument(
        "--augment",
        help="comma-separated: flip,translate,zoom,rotate,crop, or none (default: "
        "the model's recipe, else none)",
    )
    model = parser.add_argument_group("Model")
    model.add_argument(
        "--model",
        required=True,
        help=f"a registered model (to list them: {cli.LIST_MODELS})",
    )
    model.add_argument(
        "--dropout", type=float, help="dropout rate, if the model has one"
    )
    model.add_argument(
        "--recipe",
        choices=("model", "none"),
        default="model",
        help="model: unset training flags and model options come from the model's "
        "registered recipe (apps.recipes); none: from the command's own defaults "
        "(default: model)",
    )
    model.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any builder argument, e.g. activation=relu (repeatable)",
    )
    optimisation = parser.add_argument_group("Optimisation")
    optimisation.add_argument("--epochs", type=int, help=_recipe_default("epochs"))
    optimisation.add_argument(
        "--steps-per-epoch",
        type=int,
        help="training batches per epoch (default: one pass over the training split)",
    )
    optimisation.add_argument(
        "--eval-steps",
        type=int,
        help="limit validation and test to N batches (smoke runs)",
    )
    optimisation.add_argument(
        "--batch-size", type=int, help="per replica; " + _recipe_default("batch_size")
    )
    optimisation.add_argument(
        "--learning-rate",
        type=float,
        help="default: the model's recipe, else the optimiser's usual rate ("
        + ", ".join(f"{k} {v:g}" for k, v in cli.DEFAULT_LEARNING_RATES.items())
        + ")",
    )
    optimisation.add_argument(
        "--optimizer",
        choices=cli.OPTIMIZERS,
        help=_recipe_default("optimizer"),
    )
    optimisation.add_argument(
        "--weight-decay",
        type=float,
        help="as the optimiser's paper meant it: an L2 penalty's gradient (carried "
        "by the momentum) for sgd/momentum/adagrad/rmsprop, decoupled (AdamW) for "
        "adam; biases and BatchNorm/LayerNorm parameters are not decayed; "
        + _recipe_default("weight_decay"),
    )
    optimisation.add_argument(
        "--lr-schedule",
        choices=cli.LR_SCHEDULES,
        help=_recipe_default("lr_schedule"),
    )
    optimisation.add_argument(
        "--warmup-epochs",
        type=int,
        metavar="N",
        help="linear learning-rate warm-up over the first N epochs (constant and "
        "cosine schedules); " + _recipe_default("warmup_epochs"),
    )
    optimisation.add_argument(
        "--label-smoothing",
        type=float,
        metavar="EPS",
        help="train on (1 - EPS) * one_hot + EPS / classes; "
        + _recipe_default("label_smoothing"),
    )
    optimisation.add_argument(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation loss, with the "
        "best weights (default: off)",
    )
    optimisation.add_argument(
        "--bn-recalibration-steps",
        type=int,
        metavar="N",
        help="after training, recompute the BatchNorm statistics over N training "
        "batches with the final weights (precise BN; 0 = off; default "
        f"{cli.BN_RECALIBRATION_STEPS}; models without "
        "BatchNormalization ignore it)",
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
        help="bfloat16 compute on CPUs, float16 on GPUs (ResNet-18 1.4x faster on an "
        "AVX-512 BF16 CPU; accuracy may differ slightly)",
    )
    distribution.add_argument(
        "--jit",
        action="store_true",
        help="XLA-compile the step (on CPUs 2-3x slower than TensorFlow's oneDNN "
        "kernels; for GPUs)",
    )
    distribution.add_argument(
        "--steps-per-execution",
        type=int,
        default=cli.STEPS_PER_EXECUTION,
        help="training steps per tf.function call; callbacks and the progress bar "
        "update once per group (default: %(default)s)",
    )
    output = parser.add_argument_group("Output")
    output.add_argument("--output", required=True, help="run directory")
    output.add_argument("--seed", type=int, help="seeded, deterministic run")
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="train again even if --output holds a finished run",
    )


def _recipe_default(field: str) -> str:
    from apps import recipes

    return f"default: the model's recipe, else {recipes.DEFAULTS[field]}"


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


def _add_export(parser):
    from apps.cli import add_export_format_options

    add_export_format_options(parser)
    parser.add_argument("--model-path", required=True, help=MODEL_PATH_HELP)
    parser.add_argument("--name", required=True, help=cli.EXPORT_NAME_HELP)
    parser.add_argument(
        "--export-dir", default="saved_models", help=cli.EXPORT_DIR_HELP
    )
    parser.add_argument("--version", help="integer; default: next after the highest")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing version"
    )
    _add_max_pixels(parser)  # the limit of the image-bytes signature


def main(argv=None) -> int:
    args = cli.parse_args(build_parser(), argv)
    from apps.data.datasets import DatasetError
    from apps.export import ExportError
    from apps.registry import UnknownModelError
    from apps.training import TrainingError

    command = {
        "train": train,
        "evaluate": evaluate,
        "predict": predict,
        "export": export,
    }[args.command]
    try:
        return command(args)
    except (UsageError, DatasetError, UnknownModelError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"training stopped: {error}", file=sys.stderr)
        return 1
    except BadFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted()


# train


def train(args) -> int:
    """Check -> options -> strategy -> model -> lock -> data -> fit -> report."""
    import apps
    from apps import data, reports, runs, training

    started = time.perf_counter()
    run_dir = Path(args.output)
    run = runs.RunDirectory(run_dir, "apps.classify train", args.model, args.dataset)
    with bad_input():  # every check before any training starts
        kind = run.check(args.overwrite)
        info = apps.registry.get_model_info(args.model)
        recipe = info.recipe if args.recipe == "model" else None
        recipe_sources = _apply_recipe(args, recipe)
        options = _train_options(args)
        builder_options = _builder_options(info, args)
        augment = data.images.parse_augment(args.augment)
        if not 0 <= args.validation_split < 1:
            raise UsageError(
                "--validation-split must be in [0, 1). "
                f"Received: {args.validation_split}"
            )
        if args.eval_steps is not None and args.eval_steps < 1:
            raise UsageError(f"--eval-steps must be >= 1. Received: {args.eval_steps}")
        strategy = training.setup(options)
        dataset_info = data.describe(args.dataset)
        spec = preprocessing_spec(dataset_info, info, args.image_size)
        with strategy.scope():
            model = apps.build(
                args.model,
                input_shape=tuple(spec["input_shape"]),
                classes=dataset_info.num_classes,
                **builder_options,
            )
            training.compile_classifier(model, options, info.loss_weights)
        _note_unused_recalibration(args, model)

    if kind == "finished":
        run.say_finished()
        return 0
    chief = training.is_chief(strategy)
    if chief:  # multi-worker: only the chief writes (and locks) the run directory
        run.open(replace=kind == "replace")
    try:
        global_batch = options.batch_size * training.replicas(strategy)
        train_ds, val_ds, test_ds, steps, global_batch = _datasets(
            args, spec, global_batch, augment, model
        )
        # A folder smaller than one batch trains with a smaller one.
        options.batch_size = global_batch // training.replicas(strategy)
        options.steps_per_epoch = steps
        if chief:
            training.write_json(run_dir / PREPROCESSING_FILE, spec)
            training.write_json(
                run_dir / "run.json",
                {
                    "command": "apps.classify train",
                    "arguments": vars(args),
                    "options": dataclasses.asdict(options),
                    "recipe": recipe_sources,
                    "versions": training.versions(),
                    "strategy": type(strategy).__name__,
                    "replicas": training.replicas(strategy),
                },
            )
        _, throughput = training.fit(
            model, train_ds, val_ds, run_dir, options, strategy=strategy
        )
        if not chief:
            print("worker done; the chief writes the run directory.")
            return 0

        results = _test(model, test_ds, spec["class_names"], run_dir)
        history = training.read_history(run_dir)
        reports.plot_learning_curves(history, run_dir / "learning_curves.png")
        metrics = {
            **results,
            "epochs": len(history.get("loss", [])),
            "batch_size": options.batch_size,
            "global_batch_size": global_batch,
            "replicas": training.replicas(strategy),
            "images_per_second": throughput.images_per_second,
            "wall_seconds": time.perf_counter() - started,
            "model": args.model,
            "dataset": dataset_info.name,
            "parameters": model.count_params(),
            "final": {key: values[-1] for key, values in history.items()},
            "arguments": vars(args),
            "versions": training.versions(),
        }
        training.write_json(run_dir / "metrics.json", metrics)
        print(
            f"{args.model} on {dataset_info.name}: test accuracy "
            f"{results['test_accuracy']:.2%} (top-5 {results['test_top5']:.2%}), "
            f"{plural(metrics['epochs'], 'epoch')}, "
            f"{metrics['images_per_second'] or 0:,.0f} images/s "
            f"on {metrics['replicas']} replica(s), {metrics['wall_seconds']:.0f} s. "
            f"Run directory: {run_dir}"
        )
        return 0
    finally:
        run.close()


def _train_options(args):
    from apps import training

    return training.TrainOptions(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing,
        early_stopping=args.early_stopping,
        strategy=args.strategy,
        devices=args.devices,
        mixed_precision=args.mixed_precision,
        jit=args.jit,
        steps_per_execution=args.steps_per_execution,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        **(
            {}
            if args.bn_recalibration_steps is None
            else {"bn_recalibration_steps": args.bn_recalibration_steps}
        ),
    )


def _apply_recipe(args, recipe) -> dict:
    """Fills the training flags left unset from the model's recipe (else the
    defaults) and puts the recipe's model options under --model-option; returns
    where each value came from ("flag", "recipe", "default"), for run.json."""
    from apps import recipes

    flags = {name: getattr(args, name) for name in recipes.TRAINING_FIELDS}
    values, sources = recipes.resolve(recipe, flags)
    for name, value in values.items():
        setattr(args, name, value)
    if recipe is not None:
        given = {
            item.partition("=")[0].strip().replace("-", "_")
            for item in args.model_option
        }
        recipe_options = [
            f"{key}={value!r}"
            for key, value in recipe.model_options.items()
            if key not in given
        ]
        args.model_option = [*recipe_options, *args.model_option]
        sources["model_options"] = dict(recipe.model_options)
    return sources


def _note_unused_recalibration(args, model):
    from apps import batch_norm

    if args.bn_recalibration_steps and not batch_norm.batch_norm_layers(model):
        print(
            f"note: --bn-recalibration-steps has no effect: {args.model} has no "
            "BatchNormalization layer.",
            file=sys.stderr,
        )


# What `train` sets itself: a headless model or one emitting logits would train
# against the probability loss, crash mid-run or be silently wrong.
FIXED_BUILDER_OPTIONS = (
    "input_shape",
    "classes",
    "include_top",
    "classifier_activation",
)


def _builder_options(info, args) -> dict:
    """--dropout and --model-option KEY=VALUE, checked against the builder (which
    must be an image classifier's)."""
    _require_image_classifier(info)
    options = model_options(args.model_option)
    if args.dropout is not None:
        options["dropout"] = args.dropout
    return check_builder_options(info, options, fixed=FIXED_BUILDER_OPTIONS)


# Registry tasks `train` trains on images: the recurrent sequence classifiers read
# an image row by row.
CLASSIFIER_TASKS = ("image_classification", "sequence_classification")


def _require_image_classifier(info) -> None:
    import apps

    if info.task not in CLASSIFIER_TASKS:
        names = [
            name for task in CLASSIFIER_TASKS for name in apps.list_models(task=task)
        ]
        raise UsageError(
            f"{info.name} is a {info.task.replace('_', ' ')} model ({info.family} "
            "family), not an image classifier. The image classifiers: "
            f"{', '.join(names)}."
        )


def preprocessing_spec(dataset_info, model_info, image_size=None) -> dict:
    """What a model expects of an image (preprocessing.json, beside the model, for
    `predict` and `export`): the dataset's image size unless `image_size` (H, W) is
    given, the model's default input for datasets of mixed sizes.

    An image folder's size is its most common image size and its channels 1 when
    every image is grey (`apps.data.folders`); images larger than the model's
    default input (or than its minimum, if that is larger: LeNet-5's 32x32) are
    brought down to that size: photos of 4000x3000 pixels would make any network
    crawl.
    """
    height, width, channels = dataset_info.image_shape
    default = model_info.default_input_shape or (224, 224, 3)
    if image_size:
        height, width = image_size
    elif dataset_info.source == "folder" and height is not None and width is not None:
        smallest = model_info.min_input_size or 0
        largest = (max(default[0], smallest), max(default[1], smallest))
        if height > largest[0] or width > largest[1]:
            height, width = largest
    if height is None or width is None:
        height, width = default[:2]
    return {
        "input_shape": [int(height), int(width), int(channels)],
        "channels": int(channels),
        "resize_mode": "resize",
        "normalization": "unit",
        "class_names": list(dataset_info.class_names),
        "dataset": dataset_info.name,
        "model": model_info.name,
    }


def _datasets(args, spec, global_batch, augment, model):
    from apps import data, training

    common = {
        "image_size": tuple(spec["input_shape"][:2]),
        "channels": spec["channels"],
        "seed": args.seed,
    }
    folder, saved = None, False
    if data.folders.is_folder(args.dataset):
        folder, saved = _folder_split(args, spec)
        train_examples = folder.dataset("train")
        held_out = folder.dataset("validation") if folder.files["validation"] else None
        test_examples = folder.dataset("test")
        global_batch = _folder_batch(folder, global_batch, model)
    else:
        percent = round(100 * (1 - args.validation_split))
        train_split = f"train[:{percent}%]" if args.validation_split else "train"
        train_examples = data.load(args.dataset, train_split)
        held_out = None
        if args.validation_split:
            held_out = data.load(args.dataset, f"train[{percent}%:]")
        test_examples = data.load(args.dataset, "test")
    limit = args.eval_steps * global_batch if args.eval_steps else -1
    with bad_input():  # fewer examples than one batch
        natural_steps = data.images.epoch_steps(
            data.images.count_examples(train_examples), global_batch
        )
    steps = args.steps_per_epoch or natural_steps

    def train(start_epoch):  # the stream from any epoch on, for exact resumption
        stream = data.pipeline(
            train_examples,
            batch_size=global_batch,
            training=True,
            augment=augment,
            start_epoch=start_epoch,
            **common,
        )
        return training.labels_for_outputs(stream, model)

    validation = None
    if held_out is not None:
        validation = data.pipeline(
            held_out.take(limit), batch_size=global_batch, **common
        )
    test = data.pipeline(
        test_examples.take(limit),
        batch_size=global_batch,
        cache=False,
        **common,
    )
    validation = training.labels_for_outputs(validation, model) if validation else None
    if folder is not None:
        _save_folder_split(folder, saved, Path(args.output), model)
    # Resuming at an epoch means resuming at a data epoch only when the two agree;
    # otherwise the loop skips ahead in the one stream.
    stream = train if steps == natural_steps else train(0)
    return stream, validation, test, steps, global_batch


def _folder_split(args, spec):
    """The run's split of an image folder: its split.json when resuming, else a new
    stratified one (seed `folders.SPLIT_SEED`, the same for every run on the
    folder); printed with its sizes."""
    from apps import data, training

    run_dir = Path(args.output)
    try:
        folder, saved = data.folders.saved_or_new_split(
            args.dataset,
            run_dir,
            validation_fraction=args.validation_split,
            reuse=not args.overwrite,
        )
    except data.UnreadableImagesError as error:  # a bad file: exit code 1
        raise training.TrainingError(str(error)) from None
    print(folder.summary())
    height, width, _ = folder.image_shape
    if [height, width] != list(spec["input_shape"][:2]):
        print(
            f"note: images are brought to {spec['input_shape'][0]}x"
            f"{spec['input_shape'][1]}, {args.model}'s input (--image-size H W "
            "sets it).",
            file=sys.stderr,
        )
    for note in folder.notes:
        print(f"note: {note}.", file=sys.stderr)
    return folder, saved


def _save_folder_split(folder, saved, run_dir, model):
    """Writes split.json (chief only), last, once every check has passed."""
    from apps import data, training

    path = run_dir / data.folders.SPLIT_FILE
    if saved:
        print(f"split read from {path}")
        return
    if training.is_chief(model.distribute_strategy):
        run_dir.mkdir(parents=True, exist_ok=True)
        training.write_json(path, folder.to_json())
        print(f"split saved in {path}")


def _folder_batch(folder, global_batch, model) -> int:
    """A global batch the training split fills: a folder may hold fewer images."""
    from apps import data, training

    count = len(folder.files["train"])
    replicas = training.replicas(model.distribute_strategy)
    batch = data.folders.fitting_batch(count, global_batch, replicas)
    if batch != global_batch:
        print(
            f"note: the training split has {count} images, fewer than one batch of "
            f"{global_batch}: training with batches of {batch}.",
            file=sys.stderr,
        )
    return batch


def _test(model, test_ds, class_names, run_dir) -> dict:
    """Test metrics from one pass of predictions; writes the confusion-matrix PNG."""
    import numpy as np

    from apps import reports

    probabilities, labels = predict_dataset(model, test_ds)
    results = classification_metrics(probabilities, labels, class_names)
    matrix = np.asarray(results.pop("confusion_matrix"))
    reports.plot_confusion_matrix(
        matrix, class_names, Path(run_dir) / "confusion_matrix.png"
    )
    return results


def classification_metrics(probabilities, labels, class_names) -> dict:
    """Accuracy, top-5, cross-entropy and per-class accuracy from probabilities."""
    import numpy as np

    from apps import reports

    predictions = probabilities.argmax(axis=1)
    top5 = np.argsort(-probabilities, axis=1)[:, :5]
    picked = probabilities[np.arange(len(labels)), labels]
    matrix = reports.confusion_matrix(labels, predictions, len(class_names))
    return {
        "test_accuracy": float(np.mean(predictions == labels)),
        "test_top5": float(np.mean((top5 == labels[:, None]).any(axis=1))),
        "test_loss": float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0)))),
        "test_examples": int(len(labels)),
        "per_class_accuracy": dict(
            zip(
                class_names, map(float, reports.per_class_accuracy(matrix)), strict=True
            )
        ),
        "confusion_matrix": matrix.tolist(),
    }


def predict_dataset(model, dataset, tta: str = "none"):
    """Class probabilities (of the main output, averaged over the `tta` views) and
    labels of every batch of `dataset`, as two NumPy arrays."""
    import numpy as np

    all_probabilities, all_labels = [], []
    for images, labels in dataset:
        views = tta_views(images, tta)
        probabilities = np.mean(
            [_main_output(model(view, training=False)) for view in views], axis=0
        )
        all_probabilities.append(probabilities)
        all_labels.append(labels.numpy())
    return np.concatenate(all_probabilities), np.concatenate(all_labels)


def _main_output(outputs):
    outputs = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    return outputs.numpy().astype("float64")


def tta_views(images, mode: str):
    """The views of a batch that test-time augmentation averages over.

    `flip`: the batch and its mirror image. `10crop` (Krizhevsky et al. 2012): the
    batch is enlarged by 8/7 (AlexNet cut 224 crops from 256 images), then the four
    corner crops and the centre crop at the model's size, each also mirrored.
    """
    import tensorflow as tf

    if mode == "none":
        return [images]
    if mode == "flip":
        return [images, tf.image.flip_left_right(images)]
    height, width = int(images.shape[1]), int(images.shape[2])
    big_h, big_w = math.ceil(height * 8 / 7), math.ceil(width * 8 / 7)
    enlarged = tf.image.resize(images, (big_h, big_w))
    offsets = [
        (0, 0),
        (0, big_w - width),
        (big_h - height, 0),
        (big_h - height, big_w - width),
        ((big_h - height) // 2, (big_w - width) // 2),
    ]
    crops = [
        enlarged[:, top : top + height, left : left + width] for top, left in offsets
    ]
    return crops + [tf.image.flip_left_right(crop) for crop in crops]


# evaluate


def evaluate(args) -> int:
    from apps import data, reports

    if args.tta not in TTA_MODES:
        raise UsageError(f"--tta must be one of {TTA_MODES}. Received: {args.tta!r}")
    _require_positive("--batch-size", args.batch_size)
    if args.steps is not None:
        _require_positive("--steps", args.steps)
    model, spec = load_classifier(args.model_path)
    with bad_input():
        if data.folders.is_folder(args.dataset):
            try:
                dataset = _evaluation_folder(args, spec)
            except data.UnreadableImagesError as error:  # a bad file: exit code 1
                print(f"error: {error}", file=sys.stderr)
                return 1
        else:
            classes = data.describe(args.dataset).num_classes
            _check_classes(args, spec, classes)
            dataset = data.load(args.dataset, args.split)
    batches = data.pipeline(
        dataset,
        batch_size=args.batch_size,
        cache=False,
        image_size=tuple(spec["input_shape"][:2]),
        channels=spec["channels"],
        normalization=spec["normalization"],
    )
    if args.steps:
        batches = batches.take(args.steps)
    probabilities, labels = predict_dataset(model, batches, args.tta)
    class_names = spec["class_names"]
    results = classification_metrics(probabilities, labels, class_names)
    print(
        f"{args.dataset} {args.split}, {results['test_examples']} images, "
        f"tta={args.tta}: accuracy {results['test_accuracy']:.2%}, "
        f"top-5 {results['test_top5']:.2%}, loss {results['test_loss']:.4f}"
    )
    print("per-class accuracy:")
    print(
        reports.format_per_class(
            class_names, list(results["per_class_accuracy"].values())
        )
    )
    return 0


def _require_positive(flag: str, value) -> None:
    if value < 1:
        raise UsageError(f"{flag} must be a positive integer. Received: {value}")


def _check_classes(args, spec, dataset_classes: int) -> None:
    """Refuses a dataset with another number of classes than the model: its labels
    would index the wrong outputs (or none)."""
    model_classes = len(spec["class_names"])
    if dataset_classes != model_classes:
        raise UsageError(
            f"the model has {model_classes} classes, the dataset {dataset_classes} "
            f"({args.model_path} on {args.dataset}): the labels would not match. "
            "Evaluate on a dataset with the model's classes."
        )


def _evaluation_folder(args, spec):
    """The `--split` examples of an image folder: the split the model was trained
    with (split.json beside it) when the folder is that run's, else the folder's
    default split, which every train run on a folder starts from."""
    from apps import data

    folders = data.folders
    if args.split not in folders.SPLITS:
        raise UsageError(
            f"--split must be one of {list(folders.SPLITS)} for an image folder. "
            f"Received: {args.split!r}"
        )
    path = Path(args.model_path).parent / folders.SPLIT_FILE
    saved_root = folders.split_root(path) if path.is_file() else None
    # A damaged split.json is read, to say so, rather than silently replaced.
    same_folder = path.is_file() and saved_root in (None, Path(args.dataset).resolve())
    if path.is_file() and not same_folder:
        why = f"{path} is of another folder ({saved_root})"
    else:
        why = f"there is no {path}"
    folder = (
        folders.read_split(path, args.dataset)
        if same_folder
        else folders.split_folder(args.dataset)
    )
    if list(folder.class_names) != list(spec["class_names"]):
        raise UsageError(
            f"{args.model_path} was trained on the classes {spec['class_names']}, "
            f"but {args.dataset} has {list(folder.class_names)}: the labels would "
            "not match. Evaluate on a folder with the model's classes."
        )
    if not folder.files[args.split]:
        raise UsageError(
            f"the {args.split} split of {args.dataset} is empty: "
            f"{folder.summary()}. Choose another --split."
        )
    print(folder.summary())
    if same_folder:
        print(f"split read from {path}")
    else:
        print(
            f"note: {why}: evaluating the folder's own split (the one a train run "
            "with the default --validation-split makes).",
            file=sys.stderr,
        )
    return folder.dataset(args.split)


def load_classifier(model_path):
    """Loads a trained model and the preprocessing spec saved beside it.

    Raises:
        UsageError: there is no such model file, or no preprocessing.json beside it.
        BadFileError: the model file or its preprocessing.json is unreadable or
            damaged, or the two do not fit each other.
    """
    from apps import export

    path = Path(model_path)
    if not path.is_file():
        raise UsageError(
            f"--model-path {path} does not exist; point it at the "
            "model.keras of a training run."
        )
    spec_path = path.parent / PREPROCESSING_FILE
    if not spec_path.is_file():
        raise UsageError(
            f"{spec_path} is missing: {path} was not written by "
            "`python -m apps.classify train` (it needs the preprocessing "
            "spec saved beside the model)."
        )
    spec = read_preprocessing(spec_path)
    model = cli.load_model_file(path)
    try:
        export.check_classifier_model(model, spec)
    except export.ExportError as error:
        raise BadFileError(
            f"{spec_path} does not fit {path}: {error} Re-train the model (or "
            "restore the preprocessing.json its run wrote)."
        ) from None
    return model, spec


def read_preprocessing(path) -> dict:
    """A model's preprocessing.json, checked field by field; BadFileError if it is
    unreadable, not JSON or wrong in any field."""
    import json

    from apps import export

    try:
        return export.check_classifier_spec(json.loads(Path(path).read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        why = cli.one_line(error)
    except export.ExportError as error:
        why = str(error)
    raise BadFileError(
        f"the model dir's {PREPROCESSING_FILE} is unreadable ({path}: {why}); "
        "re-train the model, or restore the file its run wrote."
    )


# predict


def predict(args) -> int:
    import numpy as np

    from apps.data.images import preprocess

    if args.top_k < 1:
        raise UsageError(f"--top-k must be >= 1. Received: {args.top_k}")
    _require_positive("--max-pixels", args.max_pixels)
    model, spec = load_classifier(args.model_path)
    class_names = spec["class_names"]
    top_k = min(args.top_k, len(class_names))
    failures = 0
    for path in args.images:
        try:
            pixels = read_image(path, spec["channels"], args.max_pixels)
        except UsageError as error:
            print(f"{path}: error: {error}", file=sys.stderr)
            failures += 1
            continue
        batch = preprocess(
            pixels[None],
            image_size=tuple(spec["input_shape"][:2]),
            channels=spec["channels"],
            normalization=spec["normalization"],
        )
        probabilities = _main_output(model(batch, training=False))[0]
        best = np.argsort(-probabilities)[:top_k]
        ranked = ", ".join(f"{class_names[i]} {probabilities[i]:.1%}" for i in best)
        print(f"{path}: {ranked}")
    if failures:
        print(
            f"{failures} of {len(args.images)} file(s) could not be read.",
            file=sys.stderr,
        )
    return 1 if failures else 0


def read_image(path, channels: int, max_pixels: int | None = None):
    """Decodes an image file into uint8 (H, W, channels); UsageError if it can't,
    or if it has more than `max_pixels` (width x height, read from the header
    before anything is decoded; default `apps.data.images.MAX_PIXELS`).

    16-bit grey PNGs keep their full range, scaled to 8 bits (value / 257), as
    TensorFlow's decoder reads them for training; PIL's own conversion clips them.
    """
    from apps.data.images import MAX_PIXELS

    limit = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with _open_image(path) as image:
            width, height = image.size
            if width * height > limit:
                raise UsageError(
                    f"{width}x{height} is {width * height:,} pixels, more than "
                    f"--max-pixels {limit:,}; shrink the image or raise --max-pixels"
                )
            image.load()
            return _eight_bit(image, channels)
    except UsageError:
        raise
    except FileNotFoundError:
        raise UsageError("no such file") from None
    except Exception as error:  # PIL raises many types for a bad file
        why = cli.one_line(error)
        raise UsageError(f"not a readable PNG/JPEG image ({why})") from None


SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def _open_image(path):
    """PIL's `Image.open` without PIL's decompression-bomb limit (an error above
    179 megapixels whatever --max-pixels says): `read_image` checks the size."""
    from PIL import Image

    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _eight_bit(image, channels: int):
    import numpy as np
    from PIL import Image

    if image.mode in SIXTEEN_BIT_MODES:
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.round(wide / 257), 0, 255).astype(np.uint8))
    pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


# export


def export(args) -> int:
    """Check -> load -> hold the name -> SavedModel, or an ONNX/LiteRT file verified
    in its runtime (apps.export_formats)."""
    from apps import export as exporter
    from apps import export_formats
    from apps.cli import file_export

    _require_positive("--max-pixels", args.max_pixels)
    _check_export_request(args)
    model, spec = load_classifier(args.model_path)
    with exporter.export_lock(args.export_dir, args.name):
        if args.format != "saved_model":
            return file_export(
                lambda: export_formats.export_classifier_file(
                    model,
                    spec,
                    args.format,
                    name=args.name,
                    export_dir=args.export_dir,
                    version=args.version,
                    force=args.force,
                    quantize=args.quantize,
                    examples=args.verify_examples or export_formats.VERIFY_EXAMPLES,
                    tolerance=args.tolerance,
                    max_accuracy_drop=args.max_accuracy_drop,
                ),
                args.model_path,
            )
        target = exporter.export_classifier(
            model,
            spec,
            name=args.name,
            export_dir=args.export_dir,
            version=args.version,
            force=args.force,
            max_pixels=args.max_pixels,
        )
    print(f"exported {args.model_path} to {target}")
    return 0


def _check_export_request(args) -> None:
    """Everything about an export that can be refused before the model loads
    (ExportError: exit 2)."""
    from apps import export as exporter
    from apps import export_formats

    export_formats.check_request(
        args.format,
        args.quantize,
        examples=args.verify_examples,
        tolerance=args.tolerance,
        max_accuracy_drop=args.max_accuracy_drop,
    )
    exporter.check_name(args.name)
    exporter.parse_version(args.version)
    exporter.check_export_dir(args.export_dir)


if __name__ == "__main__":
    sys.exit(main())
