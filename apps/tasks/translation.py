"""The date normaliser as a library: what `python -m apps.translate` runs.

Human-written dates to ISO 8601 (``3rd of May 1979`` -> ``1979-05-03``), character
by character, with a registered translator (Transformer, Bahdanau or Luong
attention):

>>> from apps.tasks import translation
>>> config = translation.TranslationConfig(model="transformer")
>>> options = translation.default_options(epochs=5)
>>> metrics = translation.train(config, options, "runs/dates")   # doctest: +SKIP
>>> model = translation.load_translator("runs/dates")            # doctest: +SKIP
>>> translation.translate(model, ["3rd of May 1979"])            # doctest: +SKIP

`train` writes the run directory of every training run (apps/training.py) plus
`metrics.json` (`test_exact_match`: greedy exact match on held-out dates, which no
training example contains in any writing), `learning_curves.png` and
`attention.png`. Every epoch draws fresh pairs, a function of (seed, epoch) only, so
the same run directory resumes exactly. Nothing here imports TensorFlow at import
time (the command line's --help does not).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from apps.errors import UsageError, bad_input, check_builder_options, flag_name
from apps.options import TrainOptions

COMMAND = "apps.translate train"  # the run directory's owner (run.json)
TASK = "translation"
DEFAULT_MODEL = "transformer"
SAMPLE_TEXT = "Thursday, 3rd of May 1979"
ATTENTION_FILE = "attention.png"
MAX_BEAM = 64
SIGNATURE = "serving_default"
# The translator's training defaults, where they differ from TrainOptions'. The
# corpus is drawn afresh every epoch from the seed: an epoch is a number of
# batches, not a pass, and the seed is always set.
TRAIN_DEFAULTS = {"epochs": 15, "steps_per_epoch": 200, "batch_size": 64, "seed": 0}
# What the translator cannot take of the training core's options, and why.
UNSUPPORTED = {
    "jit": "XLA cannot compile the translator's step: it takes strings, which the "
    "model's TextVectorization layers tokenise inside the graph, and XLA has no "
    "string ops",
}


@dataclasses.dataclass
class TranslationConfig:
    """What to train: the translator (`dropout` and further builder
    `model_options`) and the held-out pairs: `validation_examples` from validation
    dates, `test_examples` from test dates for the exact-match accuracy."""

    model: str = DEFAULT_MODEL
    dropout: float | None = None
    model_options: dict = dataclasses.field(default_factory=dict)
    validation_examples: int = 1000
    test_examples: int = 2000

    def __post_init__(self):
        # The messages name the command line's flags: the fields are its flags.
        for field in ("validation_examples", "test_examples"):
            value = getattr(self, field)
            if value < 1:
                raise ValueError(f"{flag_name(field)} must be >= 1. Received: {value}")


def default_options(**overrides) -> TrainOptions:
    """TrainOptions with the translator's defaults (`TRAIN_DEFAULTS`), then
    `overrides`."""
    return TrainOptions(**{**TRAIN_DEFAULTS, **overrides})


# train


def train(
    config: TranslationConfig,
    options: TrainOptions,
    run_dir,
    callbacks=(),
    *,
    overwrite: bool = False,
) -> dict | None:
    """Trains `config`'s translator into `run_dir` (resuming the run it holds),
    then measures it on held-out dates and draws its attention.

    `options.seed` and `options.steps_per_epoch` left None take `TRAIN_DEFAULTS`'.
    `callbacks` are added to the fit (tests use them to interrupt a run). Returns
    metrics.json's contents; None when there was nothing to do (a finished run,
    `overwrite` not given) and on a multi-worker worker other than the chief.

    Raises:
        UsageError: bad input (a ValueError); nothing was started.
        apps.training.TrainingError: the run failed (e.g. a non-finite loss).
    """
    import apps
    from apps import runs, training

    started = time.perf_counter()
    options = _completed(options)
    run_dir = Path(run_dir)
    run = runs.RunDirectory(run_dir, COMMAND, config.model, None)
    with bad_input():  # every check before any training starts
        kind = run.check(overwrite)
        _check_options(options)
        info = apps.registry.get_model_info(config.model)
        if info.task != TASK:
            raise UsageError(
                f"--model {config.model} is not a translator. Choose one of "
                f"{apps.list_models(task=TASK)}."
            )
        builder_options = _builder_options(info, config)
        strategy = training.setup(options)
        with strategy.scope():
            model = apps.build(config.model, **builder_options)
            compile_translator(model, options)
    return run.train(
        kind,
        training.is_chief(strategy),
        lambda: _train(config, options, model, strategy, run_dir, callbacks, started),
    )


def _completed(options: TrainOptions) -> TrainOptions:
    unset = {k: v for k, v in TRAIN_DEFAULTS.items() if getattr(options, k) is None}
    return dataclasses.replace(options, **unset)


def _check_options(options) -> None:
    """Refuses training options the translator cannot honour (a library caller's;
    the command line refuses its flags itself)."""
    for field, reason in UNSUPPORTED.items():
        if getattr(options, field):
            raise UsageError(f"{flag_name(field)} is not supported here: {reason}")


def _builder_options(info, config) -> dict:
    """`dropout` and `model_options`, checked against the builder."""
    options = dict(config.model_options)
    if config.dropout is not None:
        options["dropout"] = config.dropout
    return check_builder_options(info, options)


def _train(config, options, model, strategy, run_dir, callbacks, started):
    from apps import reports, runs, training

    chief = training.is_chief(strategy)
    global_batch = options.batch_size * training.replicas(strategy)
    train_stream, validation = _datasets(config, options, model, global_batch)
    if chief:
        runs.write_record(
            run_dir,
            COMMAND,
            dataclasses.asdict(config),
            options,
            strategy,
            load_average=os.getloadavg(),
        )
    _, throughput = training.fit(
        model,
        train_stream,
        validation,
        run_dir,
        options,
        strategy=strategy,
        extra_callbacks=callbacks,
    )
    if not chief:
        print("worker done; the chief writes the run directory.")
        return None
    trained_seconds = time.perf_counter() - started
    results = test(model, config.test_examples, options.seed)
    history = training.read_history(run_dir)
    reports.plot_learning_curves(history, run_dir / "learning_curves.png")
    plot_attention(model, SAMPLE_TEXT, run_dir / ATTENTION_FILE)
    metrics = {
        **results,
        "epochs": len(history.get("loss", [])),
        "batch_size": options.batch_size,
        "global_batch_size": global_batch,
        "replicas": training.replicas(strategy),
        "examples_per_second": throughput.images_per_second,
        "train_seconds": trained_seconds,
        "wall_seconds": time.perf_counter() - started,
        "load_average": os.getloadavg(),
        "model": config.model,
        "parameters": model.count_params(),
        "final": {key: values[-1] for key, values in history.items()},
        "arguments": dataclasses.asdict(config),
        "options": dataclasses.asdict(options),
        "versions": training.versions(),
    }
    runs.write_json(run_dir / "metrics.json", metrics)
    return metrics


def compile_translator(model, options: TrainOptions):
    """Compiles a translator: cross-entropy on the logits, padding labels ignored,
    the training core's optimiser, steps per call as `options` say.

    With ``options.label_smoothing`` ``eps > 0`` the targets are ``(1 - eps) *
    one_hot + eps / V`` over the ``V`` output ids (:func:`smoothed_cross_entropy`).

    Metrics: ``accuracy`` (characters right, padding left out) and
    ``sequence_accuracy`` (every character of the answer right, under teacher
    forcing; greedy decoding's exact match is measured after training).
    """
    import keras

    from apps import training
    from apps.sequence import text

    label_smoothing = options.label_smoothing
    if label_smoothing:

        def loss(labels, logits):
            return smoothed_cross_entropy(labels, logits, label_smoothing)

    else:
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=text.PADDING_ID
        )
    model.compile(
        optimizer=training.make_optimizer(options),
        loss=loss,
        metrics=[
            keras.metrics.MeanMetricWrapper(_token_accuracy, name="accuracy"),
            keras.metrics.MeanMetricWrapper(
                _sequence_accuracy, name="sequence_accuracy"
            ),
        ],
        jit_compile=options.jit,
        steps_per_execution=options.steps_per_execution,
    )
    return model


def smoothed_cross_entropy(labels, logits, label_smoothing=0.1):
    """Per-token cross-entropy against smoothed targets, padding labels left out.

    The targets are ``(1 - eps) * one_hot(label) + eps / V``, as
    ``keras.losses.CategoricalCrossentropy(label_smoothing=eps)``. Padding
    positions get 0 and the others are scaled by (positions / real positions), so
    that the loss's mean over the batch is the mean over its real tokens, as
    ``SparseCategoricalCrossentropy(ignore_class=0)`` gives (``eps = 0`` is that
    loss).
    """
    from keras import ops

    from apps.sequence import text

    logits = ops.cast(logits, "float32")
    targets = ops.one_hot(ops.cast(labels, "int32"), ops.shape(logits)[-1])
    targets = targets * (1.0 - label_smoothing) + label_smoothing / ops.cast(
        ops.shape(logits)[-1], "float32"
    )
    losses = ops.categorical_crossentropy(targets, logits, from_logits=True)
    real = ops.cast(ops.not_equal(labels, text.PADDING_ID), "float32")
    share = ops.cast(ops.size(real), "float32") / ops.maximum(ops.sum(real), 1.0)
    return losses * real * share


def _token_accuracy(labels, logits):
    from keras import ops

    real = ops.cast(ops.not_equal(labels, 0), "float32")
    right = ops.cast(
        ops.equal(ops.argmax(logits, -1), ops.cast(labels, "int32")), "float32"
    )
    return ops.sum(right * real, axis=-1) / ops.maximum(ops.sum(real, axis=-1), 1.0)


def _sequence_accuracy(labels, logits):
    from keras import ops

    wrong = ops.logical_and(
        ops.not_equal(labels, 0),
        ops.not_equal(ops.argmax(logits, -1), ops.cast(labels, "int32")),
    )
    return 1.0 - ops.cast(ops.any(wrong, axis=-1), "float32")


def _datasets(config, options, model, global_batch):
    """The training stream (from any epoch on) and the validation batches, labelled.

    Every epoch is one data epoch of fresh pairs (``apps.data.dates.training_stream``),
    so a resumed run continues with exactly the data it would have seen.
    """
    import tensorflow as tf

    from apps.data import dates
    from apps.sequence import text

    _, target_vocabulary = text.vocabularies(model)
    _, max_target_length = text.max_lengths(model)
    labeller = text.Labeller(target_vocabulary, max_target_length)

    def labelled(sources, answers):
        return {"source": sources, "target": answers}, labeller(answers)

    def train(start_epoch):
        stream = dates.training_stream(
            seed=options.seed,
            examples_per_epoch=options.steps_per_epoch * global_batch,
            start_epoch=start_epoch,
        )
        batches = stream.batch(global_batch, drop_remainder=True).map(labelled)
        return batches.prefetch(tf.data.AUTOTUNE)

    pairs = dates.examples(
        config.validation_examples, split="validation", seed=options.seed
    )
    sources, answers = (list(column) for column in zip(*pairs, strict=True))
    validation = (
        tf.data.Dataset.from_tensor_slices((sources, answers))
        .batch(global_batch)
        .map(labelled)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    return train, validation


def test(model, count, seed, *, show_errors=10) -> dict:
    """Greedy exact match on ``count`` held-out pairs (test dates), with examples."""
    from apps.data import dates
    from apps.sequence import decoding

    pairs = dates.examples(count, split="test", seed=seed)
    accuracy, outputs = decoding.exact_match(model, pairs)
    errors = [
        {"text": source, "expected": answer, "output": output}
        for (source, answer), output in zip(pairs, outputs, strict=True)
        if output != answer
    ]
    return {
        "test_exact_match": accuracy,
        "test_examples": len(pairs),
        "test_errors": errors[:show_errors],
    }


def plot_attention(model, sample, path):
    """Heat map of the attention while ``model`` translates ``sample``; the PNG path."""
    from apps import reports  # the files-only matplotlib backend, selected
    from apps.sequence import decoding

    plt = reports.plt

    output = decoding.greedy(model, [sample])[0]
    weights, source, target = decoding.attention_map(model, sample, output)
    figure, axis = plt.subplots(figsize=(max(6, 0.28 * len(source) + 2), 4.5))
    image = axis.imshow(weights, cmap="viridis", aspect="auto", vmin=0)
    figure.colorbar(image, ax=axis, label="attention weight")
    axis.set_xticks(
        range(len(source)), [repr(c)[1:-1] if c != " " else "␣" for c in source]
    )
    axis.set_yticks(range(len(target)), [c if c != "$" else "<end>" for c in target])
    axis.set(
        xlabel="input character",
        ylabel="output character",
        title=f"{model.name}: {sample!r} -> {output!r}",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


# translate


def load_translator(model_path):
    """Loads a translator from a run directory (its model.keras) or a .keras file."""
    import apps.sequence  # noqa: F401  (registers our layers for deserialisation)
    from apps import errors

    path = Path(model_path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise UsageError(
            f"--model-path {model_path} holds no model: point it at the run directory "
            "of `python -m apps.translate train` or at a .keras file."
        )
    model = errors.load_model_file(path, compile=False)
    try:
        model.get_layer("source_vectorizer")
        model.get_layer("target_vectorizer")
    except ValueError:
        raise UsageError(
            f"{path} is not a translator (it has no source/target vectorizer)."
        ) from None
    return model


def translate(model, texts, *, beam=1, length_penalty=0.6) -> list:
    """`decoding.Translator`'s results for `texts` (each an ISO date, or refused
    with the reason): greedy decoding, or a beam search of width `beam` ranked with
    GNMT's `length_penalty`."""
    from apps.sequence import decoding

    check_decoding(beam, length_penalty)
    return decoding.Translator(model).translate(
        texts, beam_width=beam, length_penalty=length_penalty
    )


def check_decoding(beam, length_penalty) -> None:
    """Refuses a beam width outside 1..MAX_BEAM and a negative length penalty."""
    if not 1 <= beam <= MAX_BEAM:
        raise UsageError(f"--beam must be in 1..{MAX_BEAM}. Received: {beam}")
    if not 0 <= length_penalty < float("inf"):
        raise UsageError(
            f"--length-penalty must be a number >= 0. Received: {length_penalty}"
        )


# export


def check_export(format, *, name, version, export_dir) -> None:
    """Refuses, before the model loads, what the export cannot do: ONNX and
    LiteRT (string ops), a bad name, version or export directory."""
    from apps import export as exporter
    from apps.export import formats as export_formats

    reason = (
        "the translator cannot be held in {}: its serving graph takes and returns "
        "strings (tokenisation, vocabulary lookups, greedy decoding in a loop), "
        "which {}; export it as --format saved_model (the default) for TF Serving."
    )
    refused = {
        "onnx": reason.format("ONNX", "ONNX has no standard ops for"),
        "litert": reason.format(
            "LiteRT", "LiteRT runs only with TensorFlow's Select (Flex) ops"
        ),
    }
    with bad_input():
        export_formats.check_request(format, refused=refused)
        exporter.check_name(name)
        exporter.parse_version(version)
        exporter.check_export_dir(export_dir)


def export_translator(
    model, *, name, export_dir="saved_models", version=None, force=False
):
    """Greedy decoding in the graph, string -> string, published by apps.export:
    one signature, ``serving_default``, from ``text`` (string, batch) to ``date``
    (string: the ISO date, or ``""``) and ``valid`` (bool); returns its directory.
    The caller holds `apps.export.export_lock` on the name (as for the generator)."""
    import numpy as np

    from apps import export as exporter
    from apps.sequence import decoding, text

    _, max_target_length = text.max_lengths(model)
    samples = [SAMPLE_TEXT, "may 4, 2001", "04/07/1976", "", "31 February 2001"]
    description = {
        "model": model.name,
        "inputs": {"text": "string (batch,)"},
        "outputs": {
            "date": "string (batch,), empty when not valid",
            "valid": "bool (batch,)",
        },
        "max_output_length": max_target_length,
        "decoding": "greedy",
    }
    return exporter.export_signatures(
        {SIGNATURE: decoding.serving_function(model)},
        name=name,
        export_dir=export_dir,
        version=version,
        force=force,
        track=[model],
        warmup={
            SIGNATURE: [
                {"text": np.array([sample.encode() for sample in samples[:1]])},
                {"text": np.array([sample.encode() for sample in samples])},
            ]
        },
        extra_assets={"translator.json": json.dumps(description, indent=2)},
    )
