"""GANs as a library: what `python -m apps.generate` runs.

>>> from apps.tasks import generation
>>> config = generation.GenerationConfig(model="dcgan", dataset="fashion_mnist")
>>> options = generation.default_options(epochs=5, steps_per_epoch=200, seed=0)
>>> metrics = generation.train(config, options, "runs/dcgan")   # doctest: +SKIP
>>> gan = generation.load_gan("runs/dcgan/model.keras")         # doctest: +SKIP
>>> generation.sample("runs/dcgan/model.keras", "grid.png", n=16)  # doctest: +SKIP

`train` writes into its run directory `samples/epoch_NNN.png` (a grid from a fixed
latent batch, every epoch), `quality.json` (FID, Inception-Score-style score and
class coverage per epoch, measured with a cached LeNet-5 classifier, see
`apps.generative.quality`), `history.csv`, `model.keras`, `best.keras` (lowest FID),
`run.json` and at the end `metrics.json`; the same run directory resumes exactly.
Nothing here imports TensorFlow at import time (the command line's --help does not).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import random
import time
from pathlib import Path

from apps.errors import UsageError, bad_input, check_builder_options
from apps.options import TrainOptions

COMMAND = "apps.generate train"  # the run directory's owner (run.json)
TASK = "generation"
DEFAULT_BATCH_SIZE = 64
DEFAULT_LEARNING_RATE = 2e-4  # DCGAN (Radford et al., section 4), with Adam
DEFAULT_BETA_1 = 0.5
QUALITY_FILE = "quality.json"
BEST_MONITOR = "fid"  # best.keras: the lowest FID (the lowest g_loss without quality)
SAMPLES_DIR = "samples"
# What the GAN cannot take of the training core's options, and why.
UNSUPPORTED = {
    "early_stopping": "a GAN has no validation loss, and its g_loss does not say "
    "whether the images improve (the two networks' losses balance each other); "
    "best.keras keeps the model of the lowest FID instead",
}


@dataclasses.dataclass
class GenerationConfig:
    """What to train: the GAN, its data, its objective and its quality measurement.

    `image_size` (H, W) defaults to the dataset's; `latent_dim`, `width` and
    `attention` (DCGAN's SAGAN self-attention) to the builder's; `model_options`
    are further builder arguments. `d_steps` is k, discriminator updates per
    generator update; `loss` "bce" or "lsgan"; `beta_1` Adam's (default 0.5, DCGAN's;
    only for the adam optimiser); `label_smoothing` s is one-sided (the real target
    is 1 - s), not `TrainOptions.label_smoothing`. `quality_samples` images measure
    FID/IS/coverage every `quality_every` epochs (0: none) with the classifier at
    `quality_classifier` (default: one trained for `classifier_epochs` and cached);
    `samples` images make each epoch's grid.
    """

    model: str
    dataset: str
    image_size: tuple[int, int] | None = None
    latent_dim: int | None = None
    width: int | None = None
    attention: bool = False
    model_options: dict = dataclasses.field(default_factory=dict)
    d_steps: int = 1
    loss: str = "bce"
    beta_1: float | None = None
    label_smoothing: float = 0.0
    quality_samples: int = 1000
    quality_every: int = 1
    quality_classifier: str | None = None
    classifier_epochs: int = 3
    samples: int = 64

    def __post_init__(self):
        # The messages name the command line's flags: the fields are its flags.
        for flag, value, minimum in (
            ("--d-steps", self.d_steps, 1),
            ("--samples", self.samples, 1),
            ("--quality-every", self.quality_every, 1),
            ("--classifier-epochs", self.classifier_epochs, 1),
            ("--quality-samples", self.quality_samples, 0),
        ):
            if value < minimum:
                raise ValueError(f"{flag} must be >= {minimum}. Received: {value}")
        if self.quality_samples == 1:
            raise ValueError("--quality-samples must be 0 (off) or >= 2. Received: 1")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ValueError(
                f"--latent-dim must be a positive integer. Received: {self.latent_dim}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(
                f"--label-smoothing must be in [0, 1). Received: {self.label_smoothing}"
            )
        if self.beta_1 is not None and not 0 <= self.beta_1 < 1:
            raise ValueError(f"--beta-1 must be in [0, 1). Received: {self.beta_1}")


def train_defaults(optimizer: str | None = None) -> dict:
    """The GAN's training defaults, where they differ from TrainOptions': DCGAN's
    batch 64 and constant rate, and its learning rate 2e-4 with Adam (another
    optimiser gets its usual rate)."""
    defaults = {
        "epochs": 10,
        "batch_size": DEFAULT_BATCH_SIZE,
        "lr_schedule": "constant",
    }
    if optimizer in (None, "adam"):
        defaults["learning_rate"] = DEFAULT_LEARNING_RATE
    return defaults


def default_options(**overrides) -> TrainOptions:
    """TrainOptions with the GAN's defaults (`train_defaults`), then `overrides`."""
    return TrainOptions(**{**train_defaults(overrides.get("optimizer")), **overrides})


# train


def train(
    config: GenerationConfig,
    options: TrainOptions,
    run_dir,
    callbacks=(),
    *,
    overwrite: bool = False,
) -> dict | None:
    """Trains `config`'s GAN into `run_dir` (resuming the run it holds).

    Every check runs before anything is written. `callbacks` are added to the fit,
    after the GAN's own (sample grids, quality). Returns metrics.json's contents;
    None when there was nothing to do (a finished run, `overwrite` not given) and on
    a multi-worker worker other than the chief (it writes nothing).

    Raises:
        UsageError: bad input (a ValueError); nothing was started.
        apps.training.TrainingError: the run failed (e.g. a non-finite loss).
    """
    from apps import runs

    started = time.perf_counter()
    run_dir = Path(run_dir)
    run = runs.RunDirectory(run_dir, COMMAND, config.model, config.dataset)
    with bad_input():  # every check before any training starts
        kind = run.check(overwrite)
        plan = _plan(config, options, run_dir if kind == "resume" else None)
    return run.train(
        kind, plan.chief, lambda: _train(config, plan, run_dir, callbacks, started)
    )


@dataclasses.dataclass
class _Plan:
    """What the checks resolved: the data, the shapes, the GAN and how to train."""

    options: TrainOptions
    dataset_info: object
    image_shape: tuple[int, int, int]
    classifier_path: Path | None
    seed: int
    strategy: object
    gan: object

    @property
    def chief(self) -> bool:
        from apps import training

        return training.is_chief(self.strategy)


def _plan(config, options, resumed_dir) -> _Plan:
    import apps
    from apps import data, training

    _check_options(config, options)
    info = apps.get_model_info(config.model)
    if info.task != TASK:
        raise UsageError(
            f"{config.model} is not a generative model. Choose one of "
            f"{apps.list_models(task=TASK)}."
        )
    dataset_info = data.describe(config.dataset)
    options_for_builder = builder_options(info, config, dataset_info)
    image_shape = _image_shape(config, dataset_info, info)
    classifier_path = _check_classifier_path(config)
    seed = resolve_seed(options.seed, resumed_dir)
    strategy = training.setup(options)
    with strategy.scope():
        gan = apps.build(
            config.model, input_shape=image_shape, seed=seed, **options_for_builder
        )
        compile_gan(gan, config, options)
    return _Plan(
        options, dataset_info, image_shape, classifier_path, seed, strategy, gan
    )


def _check_options(config, options) -> None:
    """Refuses training options the GAN cannot honour (a library caller's; the
    command line refuses its flags itself)."""
    from apps.errors import flag_name

    for field, reason in UNSUPPORTED.items():
        if getattr(options, field):
            raise UsageError(f"{flag_name(field)} is not supported here: {reason}")
    if config.beta_1 is not None and options.optimizer != "adam":
        raise UsageError(
            f"--beta-1 is Adam's; --optimizer {options.optimizer} has none. Leave "
            "it out, or use --optimizer adam."
        )


def _train(config, plan, run_dir, extra_callbacks, started) -> dict | None:
    from apps import runs, training

    strategy, chief = plan.strategy, plan.chief
    global_batch = plan.options.batch_size * training.replicas(strategy)
    with bad_input():  # e.g. a batch larger than the dataset
        stream, steps = training_stream(
            config.dataset,
            plan.image_shape,
            global_batch=global_batch,
            d_steps=config.d_steps,
            seed=plan.seed,
            steps_per_epoch=plan.options.steps_per_epoch,
        )
    options = dataclasses.replace(plan.options, steps_per_epoch=steps)
    monitors = _monitors(config, plan, run_dir)
    if chief:
        runs.write_record(
            run_dir,
            COMMAND,
            dataclasses.asdict(config),
            options,
            strategy,
            seed=plan.seed,
            image_shape=list(plan.image_shape),
            class_names=list(plan.dataset_info.class_names),
            quality_classifier=None
            if not config.quality_samples
            else str(plan.classifier_path),
        )
    _, throughput = training.fit(
        plan.gan,
        stream,
        None,
        run_dir,
        options,
        strategy=strategy,
        extra_callbacks=[*monitors, *extra_callbacks],  # first: the best sees `fid`
        monitor=BEST_MONITOR if config.quality_samples else "g_loss",
    )
    if not chief:
        print("worker done; the chief writes the run directory.")
        return None
    metrics = summarise_run(run_dir, plan.gan, config, throughput)
    metrics.update(
        {
            "steps_per_epoch": steps,
            "batch_size": options.batch_size,
            "global_batch_size": global_batch,
            "images_per_step": global_batch * config.d_steps,
            "replicas": training.replicas(strategy),
            "wall_seconds": time.perf_counter() - started,
            "model": config.model,
            "dataset": plan.dataset_info.name,
            "image_shape": list(plan.image_shape),
            "seed": plan.seed,
            "arguments": dataclasses.asdict(config),
            "options": dataclasses.asdict(options),
            "versions": training.versions(),
        }
    )
    runs.write_json(run_dir / "metrics.json", metrics)
    return metrics


def _monitors(config, plan, run_dir) -> list:
    """The GAN's callbacks: the sample grids (chief only) and the quality monitor
    (every worker measures, collective ops; the chief writes)."""
    from apps.generative import callbacks, quality

    monitors = []
    if plan.chief:
        monitors.append(
            callbacks.SampleGrid(
                run_dir / SAMPLES_DIR,
                n=config.samples,
                seed=plan.seed,
                class_names=plan.dataset_info.class_names,
            )
        )
    if not config.quality_samples:
        return monitors
    if plan.classifier_path is None:
        plan.classifier_path = quality.ensure_classifier(
            plan.dataset_info.name if _is_tfds(config.dataset) else config.dataset,
            epochs=config.classifier_epochs,
        )
    with bad_input():  # e.g. a classifier whose output is not a Dense layer's
        evaluator = quality.QualityEvaluator(
            plan.classifier_path,
            quality.real_reference(
                config.dataset, plan.image_shape, config.quality_samples
            ),
            samples=config.quality_samples,
            seed=plan.seed,
            strategy=plan.strategy,
        )
    monitors.append(
        callbacks.QualityMonitor(
            evaluator,
            run_dir / QUALITY_FILE if plan.chief else None,
            every=config.quality_every,
        )
    )
    return monitors


def compile_gan(gan, config: GenerationConfig, options: TrainOptions):
    """Compiles `gan` with `config`'s objective and the training core's optimisers
    (`make_optimizers`), XLA and steps per call as `options` say."""
    d_optimizer, g_optimizer = make_optimizers(options, config.beta_1)
    gan.compile(
        d_optimizer=d_optimizer,
        g_optimizer=g_optimizer,
        loss=config.loss,
        d_steps=config.d_steps,
        label_smoothing=config.label_smoothing,
        jit_compile=options.jit,
        steps_per_execution=options.steps_per_execution,
    )
    return gan


def make_optimizers(options: TrainOptions, beta_1: float | None = None):
    """The discriminator's and the generator's optimisers: two of the training
    core's (`apps.training.make_optimizer`: the optimiser, its weight decay and
    schedule), named `d_optimizer` and `g_optimizer` (readable variable paths), with
    `beta_1` (default DCGAN's 0.5) where the optimiser is Adam."""
    from apps import training

    adam = {"beta_1": DEFAULT_BETA_1 if beta_1 is None else beta_1}
    return tuple(
        training.make_optimizer(
            options, name=name, **(adam if options.optimizer == "adam" else {})
        )
        for name in ("d_optimizer", "g_optimizer")
    )


def builder_options(info, config: GenerationConfig, dataset_info) -> dict:
    """`latent_dim`, `width`, `attention` and `model_options`, checked against the
    builder; conditional builders get the dataset's classes."""
    options = dict(config.model_options)
    for key in ("latent_dim", "width"):
        if getattr(config, key) is not None:
            options[key] = getattr(config, key)
    if config.attention:
        options["attention"] = True
    check_builder_options(info, options, fixed=("input_shape", "seed"))
    classes = inspect.signature(info.builder).parameters.get("classes")
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


def _image_shape(config, dataset_info, info) -> tuple[int, int, int]:
    height, width, channels = dataset_info.image_shape
    if config.image_size:
        height, width = config.image_size
    if height is None or width is None:
        default = info.default_input_shape or (64, 64, channels)
        height, width = default[:2]
    return int(height), int(width), int(channels)


def _check_classifier_path(config):
    if not config.quality_classifier or not config.quality_samples:
        return None
    path = Path(config.quality_classifier)
    if not path.is_file() or not (path.parent / "preprocessing.json").is_file():
        raise UsageError(
            f"--quality-classifier {path} must be the model.keras of a "
            "`python -m apps.classify train` run (with preprocessing.json beside it)."
        )
    return path


def _is_tfds(dataset: str) -> bool:
    return not Path(dataset).is_dir()


def resolve_seed(seed, run_dir) -> int:
    """`seed`, else the seed of the run being resumed in `run_dir`, else a new one.

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


# metrics.json's quality figures, from the last measured epoch
QUALITY_FIGURES = (
    "fid",
    "inception_score",
    "class_coverage",
    "class_entropy",
    "max_class_share",
    "class_shares",
)


def summarise_run(run_dir, gan, config: GenerationConfig, throughput) -> dict:
    """metrics.json's figures: last and per-epoch losses and quality."""
    from apps import training
    from apps.generative import callbacks

    history = training.read_history(run_dir)
    records = callbacks.read_quality(Path(run_dir) / QUALITY_FILE)
    per_epoch = _per_epoch(history, records)
    last = per_epoch[-1] if per_epoch else {}
    measured = [row for row in per_epoch if str(row["epoch"]) in records]
    summary = {
        "epochs": len(per_epoch),
        **{key: last.get(key) for key in ("d_loss", "g_loss", "d_real", "d_fake")},
        "per_epoch": per_epoch,
        "images_per_second": throughput.images_per_second,
        "seconds_per_epoch": [
            round(seconds, 3) for seconds, _ in throughput.epoch_times
        ],
        "parameters": {
            "generator": gan.generator.count_params(),
            "discriminator": gan.discriminator.count_params(),
        },
        "d_steps": config.d_steps,
        "loss": config.loss,
        "latent_dim": gan.latent_dim,
        "conditional": gan.conditional,
        "fid": None,
    }
    if measured:
        best = min(measured, key=lambda row: row["fid"])
        summary.update({key: measured[-1][key] for key in QUALITY_FIGURES})
        summary["best_fid"] = {"epoch": best["epoch"], "fid": best["fid"]}
    return summary


def _per_epoch(history, records) -> list[dict]:
    """One row per epoch: history.csv's losses and figures, then quality.json's."""
    from apps.generative import callbacks

    rows = []
    for index in range(len(history.get("g_loss", []))):
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
        rows.append(row)
    return rows


# load and sample


def load_gan(model_path):
    """Loads a GAN saved by `train` (model.keras or best.keras)."""
    from apps import errors
    from apps.generative.gan import GAN

    path = Path(model_path)
    if not path.is_file():
        raise UsageError(
            f"--model-path {path} does not exist; point it at the model.keras of "
            "a `python -m apps.generate train` run."
        )
    model = errors.load_model_file(path)
    if not isinstance(model, GAN):
        raise UsageError(
            f"{path} holds a {type(model).__name__}, not a GAN from "
            "`python -m apps.generate train`."
        )
    return model


def sample(model_path, output, *, n=64, class_id=None, seed=0, columns=None) -> Path:
    """Writes a grid of `n` images of the GAN at `model_path` to `output` (PNG or
    JPEG, by its suffix); returns its path. A conditional GAN draws `class_id`, or
    each class in turn (one column per class), labelled with the dataset's class
    names when the run's run.json is beside the model."""
    from apps.generative import callbacks

    if n < 1:
        raise UsageError(f"--n must be >= 1. Received: {n}")
    if columns is not None and columns < 1:
        raise UsageError(f"--columns must be >= 1. Received: {columns}")
    with bad_input():
        callbacks.grid_format(output)  # before the model loads
    gan = load_gan(model_path)
    with bad_input():
        images = gan.generate(n, labels=class_id, seed=seed)
        labels = callbacks.class_labels(
            gan, gan.sample_labels(n, class_id), _class_names(model_path)
        )
    if columns is None and gan.conditional and class_id is None:
        columns = gan.num_classes
    try:
        return callbacks.save_grid(images, output, columns, labels)
    except OSError as error:
        raise UsageError(
            f"cannot write --output {output}: {error.strerror or error}. "
            "Choose a file in a directory you can write to."
        ) from None


def _class_names(model_path):
    """The dataset's class names from the run.json beside a trained model, if any."""
    try:
        record = json.loads((Path(model_path).parent / "run.json").read_text())
    except (OSError, ValueError):
        return None
    names = record.get("class_names") if isinstance(record, dict) else None
    return names if isinstance(names, list) else None


# export


def check_export(format, *, name, version, export_dir, **file_options) -> None:
    """Refuses, before the model loads, what a generator's export cannot do: a bad
    format request (`file_options`: quantize, examples, tolerance,
    max_accuracy_drop, as `apps.export.formats.check_request` takes them), an
    accuracy bound (a generator has no accuracy), a bad name, version or export
    directory."""
    from apps import export as exporter
    from apps.export import formats as export_formats

    with bad_input():
        export_formats.check_request(format, **file_options)
        if file_options.get("max_accuracy_drop") is not None:
            raise UsageError(
                "--max-accuracy-drop bounds a classifier's int8 accuracy; a "
                "generator has none (its int8 difference from Keras is reported)."
            )
        exporter.check_name(name)
        exporter.parse_version(version)
        exporter.check_export_dir(export_dir)


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
    from apps import export as exporter

    signatures, warmup = _serving_functions(gan)
    description = {
        "latent_dim": gan.latent_dim,
        "image_shape": list(gan.image_shape),
        "num_classes": gan.num_classes,
        "output": "uint8 images, (pixel + 1) * 127.5 of the tanh output",
    }
    return exporter.export_signatures(
        signatures,
        name=name,
        export_dir=export_dir,
        version=version,
        force=force,
        track=[gan.generator],
        warmup=warmup,
        extra_assets={"generator.json": json.dumps(description, indent=2)},
    )


def _serving_functions(gan):
    """The generator's two signatures and their warm-up requests."""
    import numpy as np
    import tensorflow as tf

    generator, latent_dim = gan.generator, gan.latent_dim

    def to_uint8(images):
        pixels = tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5)
        return tf.cast(tf.clip_by_value(pixels, 0.0, 255.0), tf.uint8)

    def noise(count, seed):
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
        return tf.random.stateless_normal((count, latent_dim), seed=seed)

    latent_spec = tf.TensorSpec((None, latent_dim), tf.float32, name="latent")
    seed_spec = tf.TensorSpec((), tf.int64, name="seed")
    zeros = np.zeros((1, latent_dim), np.float32)
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
                {"latent": zeros, "class_ids": np.zeros((1,), np.int32)}
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
            return {
                "images": to_uint8(generator(noise(num_images, seed), training=False))
            }

        warmup = {
            "serving_default": [{"latent": zeros}],
            "sample": [{"num_images": np.int32(2), "seed": np.int64(0)}],
        }
    return {"serving_default": serving_default, "sample": sample}, warmup
