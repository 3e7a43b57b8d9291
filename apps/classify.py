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

from apps.cli import (
    UsageError,
    bad_input,
    check_builder_options,
    interrupted,
    model_options,
)

PREPROCESSING_FILE = "preprocessing.json"
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
    return parser


def _add_train(parser):
    from apps import training

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
        help="resize images in the pipeline (default: the dataset's)",
    )
    data.add_argument(
        "--augment",
        default="none",
        help="comma-separated: flip,translate,zoom,rotate,crop",
    )
    model = parser.add_argument_group("Model")
    model.add_argument("--model", required=True, help="a name from apps.list_models()")
    model.add_argument(
        "--dropout", type=float, help="dropout rate, if the model has one"
    )
    model.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any builder argument, e.g. activation=relu (repeatable)",
    )
    optimisation = parser.add_argument_group("Optimisation")
    optimisation.add_argument("--epochs", type=int, default=10)
    optimisation.add_argument("--steps-per-epoch", type=int)
    optimisation.add_argument(
        "--eval-steps",
        type=int,
        help="limit validation and test to N batches (smoke runs)",
    )
    optimisation.add_argument(
        "--batch-size", type=int, default=128, help="per replica (default 128)"
    )
    optimisation.add_argument("--learning-rate", type=float)
    optimisation.add_argument(
        "--optimizer", default="adam", choices=training.OPTIMIZERS
    )
    optimisation.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="as the optimiser's paper meant it: an L2 penalty's gradient (carried "
        "by the momentum) for sgd/momentum/adagrad/rmsprop, decoupled (AdamW) for "
        "adam; biases and BatchNorm/LayerNorm parameters are not decayed "
        "(default 0)",
    )
    optimisation.add_argument(
        "--lr-schedule", default="cosine", choices=training.LR_SCHEDULES
    )
    optimisation.add_argument("--early-stopping", type=int, metavar="PATIENCE")
    optimisation.add_argument(
        "--bn-recalibration-steps",
        type=int,
        metavar="N",
        help="after training, recompute the BatchNorm statistics over N training "
        "batches with the final weights (precise BN; 0 = off; default "
        f"{training.TrainOptions.bn_recalibration_steps}; models without "
        "BatchNormalization ignore it)",
    )
    optimisation.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="STEPS",
        help="also save the run state every N steps (it is saved every epoch)",
    )
    distribution = parser.add_argument_group("Distribution and speed")
    distribution.add_argument("--strategy", default="auto", choices=training.STRATEGIES)
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
        default=training.TrainOptions.steps_per_execution,
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


def _add_evaluate(parser):
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--tta",
        default="none",
        choices=TTA_MODES,
        help="test-time augmentation: flip, or AlexNet's 10 crops",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, help="evaluate only N batches")


def _add_predict(parser):
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("images", nargs="+", help="PNG/JPEG files")


def _add_export(parser):
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--export-dir", default="saved_models")
    parser.add_argument("--version", help="integer; default: next after the highest")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing version"
    )


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
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
        options = _train_options(args)
        info = apps.registry.get_model_info(args.model)
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
            f"{metrics['epochs']} epochs, "
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


def _note_unused_recalibration(args, model):
    from apps import batch_norm

    if args.bn_recalibration_steps and not batch_norm.batch_norm_layers(model):
        print(
            f"note: --bn-recalibration-steps has no effect: {args.model} has no "
            "BatchNormalization layer.",
            file=sys.stderr,
        )


def _builder_options(info, args) -> dict:
    """--dropout and --model-option KEY=VALUE, checked against the builder."""
    options = model_options(args.model_option)
    if args.dropout is not None:
        options["dropout"] = args.dropout
    return check_builder_options(info, options, fixed=("input_shape", "classes"))


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
    model, spec = load_classifier(args.model_path)
    with bad_input():
        if data.folders.is_folder(args.dataset):
            try:
                dataset = _evaluation_folder(args, spec)
            except data.UnreadableImagesError as error:  # a bad file: exit code 1
                print(f"error: {error}", file=sys.stderr)
                return 1
        else:
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
    """Loads a trained model and the preprocessing spec saved beside it."""
    import json

    import keras

    import apps  # noqa: F401  (registers our custom layers for deserialisation)

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
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # keras raises many types for a bad file
        raise UsageError(f"cannot load {path}: {error}") from error
    return model, json.loads(spec_path.read_text())


# predict


def predict(args) -> int:
    import numpy as np

    from apps.data.images import preprocess

    if args.top_k < 1:
        raise UsageError(f"--top-k must be >= 1. Received: {args.top_k}")
    model, spec = load_classifier(args.model_path)
    class_names = spec["class_names"]
    top_k = min(args.top_k, len(class_names))
    failures = 0
    for path in args.images:
        try:
            pixels = read_image(path, spec["channels"])
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


def read_image(path, channels: int):
    """Decodes a PNG/JPEG file into uint8 (H, W, channels); UsageError if it can't."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            converted = image.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise UsageError("no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise UsageError(f"not a readable PNG/JPEG image ({error})") from None
    pixels = np.asarray(converted, dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


# export


def export(args) -> int:
    from apps import export as exporter

    model, spec = load_classifier(args.model_path)
    target = exporter.export_classifier(
        model,
        spec,
        name=args.name,
        export_dir=args.export_dir,
        version=args.version,
        force=args.force,
    )
    print(f"exported {args.model_path} to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
