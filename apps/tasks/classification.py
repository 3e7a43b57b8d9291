"""Image classification as a library: what `python -m apps.classify` runs, and what
a notebook, the tuner, the GAN's quality metric and the benchmarks call.

    from apps.options import TrainOptions
    from apps.tasks import classification as task

    config = task.ClassificationConfig("lenet5", "fashion_mnist")
    config, values, sources = task.resolve_recipe(config, {"epochs": 2, "seed": 0})
    metrics = task.train(config, TrainOptions(**values), "runs/lenet5")
    task.evaluate("runs/lenet5/model.keras", "fashion_mnist", tta="flip")
    model, spec = task.load("runs/lenet5/model.keras")
    task.predict(model, spec, task.read_image("shirt.png", spec["channels"]))

A run directory (`apps.runs`) holds model.keras with its preprocessing.json (what
the model expects of an image), metrics.json, history.csv, the plots, tensorboard/
and run.json; training into it again resumes an unfinished run.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from apps.errors import (
    LIST_MODELS,
    BadFileError,
    UsageError,
    bad_input,
    check_builder_options,
    load_model_file,
    one_line,
)
from apps.tasks.images import read_image  # noqa: F401  (part of the task's API)

COMMAND = "apps.classify train"  # run.json's command: a run's identity (apps.runs)
PREPROCESSING_FILE = "preprocessing.json"
TTA_MODES = ("none", "flip", "10crop")
# What `train` sets itself: a headless model or one emitting logits would train
# against the probability loss, crash mid-run or be silently wrong.
FIXED_BUILDER_OPTIONS = (
    "input_shape",
    "classes",
    "include_top",
    "classifier_activation",
)
# Registry tasks `train` trains on images: the recurrent sequence classifiers read
# an image row by row.
CLASSIFIER_TASKS = ("image_classification", "sequence_classification")


def _flag(value=dataclasses.MISSING, help="", *, group="Data", **argparse_options):
    """A ClassificationConfig field (its default `value`, or a factory of it) whose
    metadata describes its command-line flag, as `apps.options` does for
    TrainOptions."""
    metadata = {"help": help, "group": group, **argparse_options}
    if callable(value):
        return dataclasses.field(default_factory=value, metadata=metadata)
    return dataclasses.field(default=value, metadata=metadata)


@dataclasses.dataclass
class ClassificationConfig:
    """What to train: a registered classifier on a dataset (how to train it is the
    training core's `TrainOptions`). Each field's metadata is its flag of
    `python -m apps.classify train`.

    Attributes:
        model: a registered image (or sequence) classifier.
        dataset: a tfds name or an image folder (one sub-folder per class).
        validation_split: share of the training split held out, in [0, 1).
        image_size: (H, W) the pipeline resizes images to; None: the dataset's size
            (a folder's, at most the model's default input).
        augment: comma-separated (flip,translate,zoom,rotate,crop); None: none.
        dropout: the builder's dropout rate; None: the builder's default.
        model_options: more builder keyword arguments ({"activation": "relu"}).
        eval_steps: limit validation and test to N batches (smoke runs).
    """

    model: str = _flag(
        help=f"a registered model (to list them: {LIST_MODELS})",
        group="Model",
        required=True,
    )
    dataset: str = _flag(
        help="tfds name (fashion_mnist, cifar10, ...) or an image folder",
        required=True,
    )
    validation_split: float = _flag(
        0.1, "share of the training split held out (default 0.1)", type=float
    )
    image_size: tuple[int, int] | None = _flag(
        None,
        "resize images in the pipeline (default: the model's recipe, else the "
        "dataset's size)",
        type=int,
        nargs=2,
        metavar=("H", "W"),
    )
    augment: str | None = _flag(
        None,
        "comma-separated: flip,translate,zoom,rotate,crop, or none (default: the "
        "model's recipe, else none)",
    )
    dropout: float | None = _flag(
        None, "dropout rate, if the model has one", group="Model", type=float
    )
    model_options: dict = _flag(
        dict,
        "any builder argument, e.g. activation=relu (repeatable)",
        group="Model",
        flag="--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
    )
    eval_steps: int | None = _flag(
        None,
        "limit validation and test to N batches (smoke runs)",
        group="Optimisation",
        type=int,
    )


def resolve_recipe(config, training: Mapping = (), *, use_recipe: bool = True):
    """What a run uses: a value that was given wins over the model's registered
    recipe (`apps.recipes`), the recipe over the defaults.

    Args:
        config: its `augment` and `image_size` None mean "not given"; its
            `model_options` win over the recipe's.
        training: the TrainOptions values given, by field name (None: not given).
        use_recipe: False leaves the recipe out (the command's `--recipe none`).

    Returns:
        `(config, values, sources)`: the config with the recipe's augmentation,
        image size and model options filled in; the TrainOptions values (those
        given and the recipe's: `TrainOptions(**values)`); and where each recipe
        field came from ("flag", "recipe" or "default") with the recipe's model
        options, for run.json.

    Raises:
        UnknownModelError: `config.model` is not registered.
    """
    import apps
    from apps import recipes
    from apps.options import TrainOptions

    recipe = apps.get_model_info(config.model).recipe if use_recipe else None
    given = {name: value for name, value in dict(training).items() if value is not None}
    flags = {**given, "augment": config.augment, "image_size": config.image_size}
    resolved, sources = recipes.resolve(recipe, flags)
    option_names = {field.name for field in dataclasses.fields(TrainOptions)}
    values = {**given, **{k: v for k, v in resolved.items() if k in option_names}}
    model_options = dict(recipe.model_options) if recipe is not None else {}
    if recipe is not None:
        sources["model_options"] = dict(model_options)
    config = dataclasses.replace(
        config,
        augment=resolved["augment"],
        image_size=resolved["image_size"],
        model_options={**model_options, **config.model_options},
    )
    return config, values, sources


def configure(*, use_recipe: bool = True, **values):
    """`(config, options, sources)` from ClassificationConfig and TrainOptions
    fields by name, the model's recipe filling in the rest (`resolve_recipe`):
    what a notebook or a benchmark calls where the command line parses flags.

    >>> config, options, sources = configure(  # doctest: +SKIP
    ...     model="lenet5", dataset="fashion_mnist", epochs=2, seed=0)

    Raises:
        UsageError: a name that is neither's field, or a bad value.
    """
    from apps.options import TrainOptions

    names = {field.name for field in dataclasses.fields(ClassificationConfig)}
    option_names = {field.name for field in dataclasses.fields(TrainOptions)}
    unknown = sorted(set(values) - names - option_names)
    if unknown:
        raise UsageError(
            f"{unknown}: not a ClassificationConfig or TrainOptions field. The "
            f"fields: {sorted(names)}, {sorted(option_names)}"
        )
    config = ClassificationConfig(**{k: v for k, v in values.items() if k in names})
    training = {k: v for k, v in values.items() if k in option_names}
    config, training, sources = resolve_recipe(config, training, use_recipe=use_recipe)
    with bad_input():
        return config, TrainOptions(**training), sources


# train


def train(
    config: ClassificationConfig,
    options,
    run_dir,
    callbacks=(),
    *,
    overwrite: bool = False,
    arguments: Mapping | None = None,
    recipe: Mapping | None = None,
) -> dict | None:
    """Trains `config.model` on `config.dataset` into `run_dir`, then tests it.

    Every argument is checked before anything is trained or written. An
    unfinished run in `run_dir` is resumed; a finished one is left alone.

    Args:
        config: what to train.
        options: how (`apps.options.TrainOptions`); left as it is: the run's copy
            gets the steps per epoch and the batch the data allows.
        run_dir: the run directory (refused unless it is new or this run's).
        callbacks: more Keras callbacks, first among the training core's (they
            see each epoch before its clock starts).
        overwrite: replace the run `run_dir` holds.
        arguments: what was asked for (a command line's flags), for run.json and
            metrics.json; default: the config's and the options' fields.
        recipe: where each value came from (`resolve_recipe`), for run.json.

    Returns:
        The metrics written to metrics.json (test accuracy, top-5, loss,
        throughput, ...); None if `run_dir` held a finished run, or on a worker
        that is not the chief (the chief writes the run directory).

    Raises:
        UsageError: bad input; nothing was trained.
        TrainingError: training failed (a non-finite loss, an unreadable image).
    """
    from apps import runs, training

    started = time.perf_counter()
    run_dir = Path(run_dir)
    options = dataclasses.replace(options)
    if arguments is None:
        arguments = {**dataclasses.asdict(config), **dataclasses.asdict(options)}
    run = runs.RunDirectory(run_dir, COMMAND, config.model, config.dataset)
    with bad_input():  # every check before any training starts
        kind = run.check(overwrite)
        model, spec, augment, strategy = _prepare(config, options)
    chief = training.is_chief(strategy)

    def train_and_test():
        replicas = training.replicas(strategy)
        train_ds, val_ds, test_ds, steps, global_batch = _datasets(
            config, options, spec, augment, model, run_dir, overwrite
        )
        # A folder smaller than one batch trains with a smaller one.
        options.batch_size = global_batch // replicas
        options.steps_per_epoch = steps
        if chief:
            runs.write_json(run_dir / PREPROCESSING_FILE, spec)
            runs.write_record(
                run_dir, COMMAND, arguments, options, strategy, recipe=recipe
            )
        _, throughput = training.fit(
            model,
            train_ds,
            val_ds,
            run_dir,
            options,
            strategy=strategy,
            extra_callbacks=callbacks,
        )
        if not chief:
            print("worker done; the chief writes the run directory.")
            return None
        metrics = {
            **_test(model, test_ds, spec["class_names"], run_dir),
            **_run_figures(run_dir, options, global_batch, replicas, throughput),
            "wall_seconds": time.perf_counter() - started,
            "model": config.model,
            "dataset": spec["dataset"],
            "parameters": model.count_params(),
            "arguments": dict(arguments),
            "versions": training.versions(),
        }
        runs.write_json(run_dir / "metrics.json", metrics)
        return metrics

    return run.train(kind, chief, train_and_test)


def _prepare(config, options):
    """The checks, the strategy and the compiled model: `(model, preprocessing
    spec, augmentations, strategy)`."""
    import apps
    from apps import data, training

    info = apps.get_model_info(config.model)
    builder_options = check_model_options(info, config)
    augment = data.images.parse_augment(config.augment)
    if not 0 <= config.validation_split < 1:
        raise UsageError(
            f"--validation-split must be in [0, 1). Received: {config.validation_split}"
        )
    if config.eval_steps is not None and config.eval_steps < 1:
        raise UsageError(f"--eval-steps must be >= 1. Received: {config.eval_steps}")
    strategy = training.setup(options)
    dataset_info = data.describe(config.dataset)
    spec = preprocessing_spec(dataset_info, info, config.image_size)
    with strategy.scope():
        model = apps.build(
            config.model,
            input_shape=tuple(spec["input_shape"]),
            classes=dataset_info.num_classes,
            **builder_options,
        )
        training.compile_classifier(model, options, info.loss_weights)
    options.bn_recalibration_steps = _batch_norm_pass(config, options, model)
    return model, spec, augment, strategy


def _run_figures(run_dir, options, global_batch, replicas, throughput) -> dict:
    """The learning curves (plotted) and the run's size and speed, for metrics.json."""
    from apps import reports, training

    history = training.read_history(run_dir)
    reports.plot_learning_curves(history, run_dir / "learning_curves.png")
    return {
        "epochs": len(history.get("loss", [])),
        "batch_size": options.batch_size,
        "global_batch_size": global_batch,
        "replicas": replicas,
        "images_per_second": throughput.images_per_second,
        "final": {key: values[-1] for key, values in history.items()},
    }


def _batch_norm_pass(config, options, model) -> int:
    """The batches of the BN-statistics pass this model gets (run.json records it):
    the asked or default number, or 0 for a model without BatchNorm, which says
    that a given `--bn-recalibration-steps` has no effect."""
    from apps import batch_norm

    if batch_norm.batch_norm_layers(model):
        return options.resolved_bn_recalibration_steps
    if options.bn_recalibration_steps:
        print(
            f"note: --bn-recalibration-steps has no effect: {config.model} has no "
            "BatchNormalization layer.",
            file=sys.stderr,
        )
    return 0


def check_model_options(info, config) -> dict:
    """The builder's keyword arguments (`config.dropout` and `model_options`),
    checked against the builder, which must be an image classifier's."""
    _require_image_classifier(info)
    options = dict(config.model_options)
    if config.dropout is not None:
        options["dropout"] = config.dropout
    return check_builder_options(info, options, fixed=FIXED_BUILDER_OPTIONS)


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


def _datasets(config, options, spec, augment, model, run_dir, overwrite):
    """The training stream, validation and test batches, steps per epoch and the
    global batch (a small image folder's may be smaller than asked)."""
    from apps import data, training

    common = {
        "image_size": tuple(spec["input_shape"][:2]),
        "channels": spec["channels"],
        "seed": options.seed,
    }
    global_batch = options.batch_size * training.replicas(model.distribute_strategy)
    folder, saved = None, False
    if data.folders.is_folder(config.dataset):
        folder, saved = _folder_split(config, spec, run_dir, overwrite)
        train_examples = folder.dataset("train")
        held_out = folder.dataset("validation") if folder.files["validation"] else None
        test_examples = folder.dataset("test")
        global_batch = _folder_batch(folder, global_batch, model)
    else:
        percent = round(100 * (1 - config.validation_split))
        train_split = f"train[:{percent}%]" if config.validation_split else "train"
        train_examples = data.load(config.dataset, train_split)
        held_out = None
        if config.validation_split:
            held_out = data.load(config.dataset, f"train[{percent}%:]")
        test_examples = data.load(config.dataset, "test")
    limit = config.eval_steps * global_batch if config.eval_steps else -1
    with bad_input():  # fewer examples than one batch
        natural_steps = data.images.epoch_steps(
            data.images.count_examples(train_examples), global_batch
        )
    steps = options.steps_per_epoch or natural_steps

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
        _save_folder_split(folder, saved, run_dir, model)
    # Resuming at an epoch means resuming at a data epoch only when the two agree;
    # otherwise the loop skips ahead in the one stream.
    stream = train if steps == natural_steps else train(0)
    return stream, validation, test, steps, global_batch


def _folder_split(config, spec, run_dir, overwrite):
    """The run's split of an image folder: its split.json when resuming, else a new
    stratified one (seed `folders.SPLIT_SEED`, the same for every run on the
    folder); printed with its sizes."""
    from apps import data, training

    try:
        folder, saved = data.folders.saved_or_new_split(
            config.dataset,
            run_dir,
            validation_fraction=config.validation_split,
            reuse=not overwrite,
        )
    except data.UnreadableImagesError as error:  # a bad file: exit code 1
        raise training.TrainingError(str(error)) from None
    print(folder.summary())
    height, width, _ = folder.image_shape
    if [height, width] != list(spec["input_shape"][:2]):
        print(
            f"note: images are brought to {spec['input_shape'][0]}x"
            f"{spec['input_shape'][1]}, {config.model}'s input (--image-size H W "
            "sets it).",
            file=sys.stderr,
        )
    for note in folder.notes:
        print(f"note: {note}.", file=sys.stderr)
    return folder, saved


def _save_folder_split(folder, saved, run_dir, model):
    """Writes split.json (chief only), last, once every check has passed."""
    from apps import data, runs, training

    path = run_dir / data.folders.SPLIT_FILE
    if saved:
        print(f"split read from {path}")
        return
    if training.is_chief(model.distribute_strategy):
        run_dir.mkdir(parents=True, exist_ok=True)
        runs.write_json(path, folder.to_json())
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


def evaluate(
    model_path,
    dataset,
    *,
    split: str = "test",
    tta: str = "none",
    batch_size: int = 256,
    steps: int | None = None,
) -> dict:
    """The metrics (`classification_metrics`) of a trained model on the `split` of
    a tfds dataset or an image folder, its predictions averaged over the `tta`
    views (`tta_views`); `steps` limits it to that many batches.

    Raises:
        UsageError: bad input (another number of classes than the model's, ...).
        BadFileError: the model files are damaged, or an image is unreadable.
    """
    from apps import data

    if tta not in TTA_MODES:
        raise UsageError(f"--tta must be one of {TTA_MODES}. Received: {tta!r}")
    require_positive("--batch-size", batch_size)
    if steps is not None:
        require_positive("--steps", steps)
    model, spec = load(model_path)
    with bad_input():
        if data.folders.is_folder(dataset):
            try:
                examples = _evaluation_folder(model_path, dataset, split, spec)
            except data.UnreadableImagesError as error:  # a bad file: exit code 1
                raise BadFileError(str(error)) from None
        else:
            classes = data.describe(dataset).num_classes
            _check_classes(model_path, dataset, spec, classes)
            examples = data.load(dataset, split)
    batches = data.pipeline(
        examples,
        batch_size=batch_size,
        cache=False,
        **data.images.spec_options(spec),
    )
    if steps:
        batches = batches.take(steps)
    probabilities, labels = predict_dataset(model, batches, tta)
    return classification_metrics(probabilities, labels, spec["class_names"])


def require_positive(flag: str, value) -> None:
    """UsageError naming `flag` unless `value` >= 1."""
    if value < 1:
        raise UsageError(f"{flag} must be a positive integer. Received: {value}")


def _check_classes(model_path, dataset, spec, dataset_classes: int) -> None:
    """Refuses a dataset with another number of classes than the model: its labels
    would index the wrong outputs (or none)."""
    model_classes = len(spec["class_names"])
    if dataset_classes != model_classes:
        raise UsageError(
            f"the model has {model_classes} classes, the dataset {dataset_classes} "
            f"({model_path} on {dataset}): the labels would not match. "
            "Evaluate on a dataset with the model's classes."
        )


def _evaluation_folder(model_path, root, split, spec):
    """The `split` examples of an image folder: the split the model was trained
    with (split.json beside it) when the folder is that run's, else the folder's
    default split, which every train run on a folder starts from."""
    from apps import data

    folders = data.folders
    if split not in folders.SPLITS:
        raise UsageError(
            f"--split must be one of {list(folders.SPLITS)} for an image folder. "
            f"Received: {split!r}"
        )
    path = Path(model_path).parent / folders.SPLIT_FILE
    saved_root = folders.split_root(path) if path.is_file() else None
    # A damaged split.json is read, to say so, rather than silently replaced.
    same_folder = path.is_file() and saved_root in (None, Path(root).resolve())
    if path.is_file() and not same_folder:
        why = f"{path} is of another folder ({saved_root})"
    else:
        why = f"there is no {path}"
    folder = (
        folders.read_split(path, root) if same_folder else folders.split_folder(root)
    )
    if list(folder.class_names) != list(spec["class_names"]):
        raise UsageError(
            f"{model_path} was trained on the classes {spec['class_names']}, "
            f"but {root} has {list(folder.class_names)}: the labels would "
            "not match. Evaluate on a folder with the model's classes."
        )
    if not folder.files[split]:
        raise UsageError(
            f"the {split} split of {root} is empty: "
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
    return folder.dataset(split)


# load and predict


def load(model_path):
    """A trained model and the preprocessing spec saved beside it: `(model, spec)`.

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
    model = load_model_file(path)
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
        why = one_line(error)
    except export.ExportError as error:
        why = str(error)
    raise BadFileError(
        f"the model dir's {PREPROCESSING_FILE} is unreadable ({path}: {why}); "
        "re-train the model, or restore the file its run wrote."
    )


def predict(model, spec, pixels):
    """The class probabilities (of the main output) for one uint8 image (H, W, C)
    of any size (`read_image`), preprocessed as `spec` says."""
    from apps.data.images import preprocess, spec_options

    batch = preprocess(pixels[None], **spec_options(spec))
    return _main_output(model(batch, training=False))[0]


def top_classes(probabilities, class_names, k: int) -> list[tuple[str, float]]:
    """The `k` likeliest classes, likeliest first: `[(name, probability), ...]`."""
    import numpy as np

    best = np.argsort(-probabilities)[: min(k, len(class_names))]
    return [(class_names[i], float(probabilities[i])) for i in best]


# export

# The arguments of `export` (and `check_export_request`) after the model and spec.
EXPORT_REQUEST = (
    "format",
    "name",
    "export_dir",
    "version",
    "force",
    "max_pixels",
    "quantize",
    "verify_examples",
    "tolerance",
    "max_accuracy_drop",
)


def check_export_request(
    *,
    format,
    name,
    export_dir,
    version,
    max_pixels,
    quantize=None,
    verify_examples=None,
    tolerance=None,
    max_accuracy_drop=None,
    **_,
) -> None:
    """Everything about an export that can be refused before the model loads
    (UsageError, ExportError: bad input)."""
    from apps import export as exporter
    from apps.export import formats as export_formats

    require_positive("--max-pixels", max_pixels)
    export_formats.check_request(
        format,
        quantize,
        examples=verify_examples,
        tolerance=tolerance,
        max_accuracy_drop=max_accuracy_drop,
    )
    exporter.check_name(name)
    exporter.parse_version(version)
    exporter.check_export_dir(export_dir)


def export(
    model,
    spec,
    *,
    name,
    format="saved_model",
    export_dir="saved_models",
    version=None,
    force=False,
    max_pixels=None,
    quantize=None,
    verify_examples=None,
    tolerance=None,
    max_accuracy_drop=None,
):
    """Publishes a trained classifier under `export_dir/name/`, holding the name
    while it writes: a versioned SavedModel for TF Serving (its image-bytes
    signature refuses images of more than `max_pixels`), returning its directory;
    or an ONNX/LiteRT file verified in its runtime, returning `(directory,
    check)` (`apps.export.formats`: ConversionError or VerificationError, nothing
    published, when it fails)."""
    from apps import export as exporter
    from apps.export import formats as export_formats

    where = {"name": name, "export_dir": export_dir, "version": version}
    with exporter.export_lock(export_dir, name):
        if format == "saved_model":
            return exporter.export_classifier(
                model, spec, **where, force=force, max_pixels=max_pixels
            )
        return export_formats.export_classifier_file(
            model,
            spec,
            format,
            **where,
            force=force,
            quantize=quantize,
            examples=verify_examples or export_formats.VERIFY_EXAMPLES,
            tolerance=tolerance,
            max_accuracy_drop=max_accuracy_drop,
        )
