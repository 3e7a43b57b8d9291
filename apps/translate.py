"""python -m apps.translate: train, use and export the date normaliser.

Human-written dates to ISO 8601 (``3rd of May 1979`` -> ``1979-05-03``), character by
character, with a Transformer (default), Bahdanau (``attention``) or Luong
(``luong``) attention. The main job, on this project's 2-core CPU (see
benchmarks/translate_accuracy.py for the time and accuracy measured):

    python -m apps.translate train --output runs/dates
    python -m apps.translate translate --model-path runs/dates \\
        "3rd of May 1979" "Sept. 21st, 2004" "04/07/1976"
    python -m apps.translate translate --model-path runs/dates --beam 4 "may 3 1979"
    python -m apps.translate export --model-path runs/dates --name dates

``train`` writes the run directory of every training run (apps/training.py) plus
``metrics.json`` (``test_exact_match``: greedy exact match on held-out dates, which no
training example contains in any writing) and ``attention.png`` (where the model
looks while writing each character of a sample date). Every epoch draws fresh pairs,
a function of (--seed, epoch) only, so re-running an interrupted ``train`` with the
same --output resumes it exactly where its last saved state stood (saved every
epoch, and every --checkpoint-every steps).

``translate`` prints one line per TEXT, in order: its ISO date, or an empty line when
the text is refused, with the reason on stderr. Refused: an empty text, a text longer
than the model reads (40 characters for the dates), characters outside its
vocabulary, and outputs that are no calendar date (``31 February 2001``) or do not
match the text. Numeric dates are read day first (``03/05/1979`` is 3 May).

``export`` writes ``EXPORT_DIR/NAME/VERSION/`` through ``apps.export`` (versioned,
atomic, with TF Serving warm-up requests): one signature, ``serving_default``, from
``text`` (string, batch) to ``date`` (string: the ISO date, or ``""``) and ``valid``
(bool), greedy decoding inside the graph for at most 11 steps. It refuses what
``translate`` refuses before decoding and outputs that are no calendar date; the
check that the output's numbers appear in the text is ``translate``'s only.

Exit codes: 0 done, 1 some input refused or training failed (e.g. a NaN loss),
2 bad arguments (nothing was started), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
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

DEFAULT_MODEL = "transformer"
SAMPLE_TEXT = "Thursday, 3rd of May 1979"
ATTENTION_FILE = "attention.png"
MAX_BEAM = 64
SIGNATURE = "serving_default"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m apps.translate",
        description="Train, use and export the date normaliser (text -> ISO 8601).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands.add_parser("train", help="train a translator on dates"))
    _add_translate(
        commands.add_parser("translate", help="normalise dates given as arguments")
    )
    _add_export(commands.add_parser("export", help="SavedModel for TF Serving"))
    return cli.documented(parser)


def _add_train(parser):
    data = parser.add_argument_group("Data")
    data.add_argument(
        "--validation-examples",
        type=int,
        default=1000,
        help="validation pairs, from validation dates (default 1000)",
    )
    data.add_argument(
        "--test-examples",
        type=int,
        default=2000,
        help="held-out pairs for the exact-match accuracy (default 2000)",
    )
    model = parser.add_argument_group("Model")
    model.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="attention (Bahdanau), luong or transformer (default)",
    )
    model.add_argument("--dropout", type=float, help="dropout rate of the model")
    model.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any builder argument, e.g. num_layers=3 (repeatable)",
    )
    optimisation = parser.add_argument_group("Optimisation")
    optimisation.add_argument("--epochs", type=int, default=15, help="training epochs")
    optimisation.add_argument(
        "--steps-per-epoch",
        type=int,
        default=200,
        help="batches per epoch; every epoch draws fresh examples (default 200)",
    )
    optimisation.add_argument(
        "--batch-size", type=int, default=64, help="per replica (default 64)"
    )
    optimisation.add_argument(
        "--learning-rate",
        type=float,
        help="peak rate (default: the optimiser's usual rate, "
        + ", ".join(f"{k} {v:g}" for k, v in cli.DEFAULT_LEARNING_RATES.items())
        + ")",
    )
    optimisation.add_argument(
        "--optimizer", default="adam", choices=cli.OPTIMIZERS, help="the optimiser"
    )
    optimisation.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="as in apps.classify train: L2 for sgd/momentum/adagrad/rmsprop, "
        "decoupled (AdamW) for adam; biases and norms are not decayed",
    )
    optimisation.add_argument(
        "--lr-schedule",
        default="cosine",
        choices=cli.LR_SCHEDULES,
        help="per epoch: cosine (default), constant, plateau; per step: rsqrt, "
        "Vaswani et al.'s linear warm-up over 4%% of the steps to --learning-rate, "
        "then 1/sqrt(step) decay",
    )
    optimisation.add_argument(
        "--label-smoothing",
        type=float,
        default=0.0,
        metavar="EPS",
        help="train against (1 - EPS) one-hot + EPS uniform targets (Szegedy et al. "
        "2016; Vaswani et al. use 0.1); default 0",
    )
    optimisation.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="STEPS",
        help="also save the run state every N steps (it is saved every epoch)",
    )
    distribution = parser.add_argument_group("Distribution")
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
    output = parser.add_argument_group("Output")
    output.add_argument("--output", required=True, help="run directory")
    output.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the corpus, the initialisation and the order (default 0)",
    )
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="train again even if --output holds a finished run",
    )


def _add_translate(parser):
    parser.add_argument(
        "--model-path",
        required=True,
        help="a run directory (its model.keras) or a .keras file",
    )
    parser.add_argument(
        "--beam",
        type=int,
        default=1,
        help="beam width; 1 (default) is greedy decoding",
    )
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=0.6,
        metavar="ALPHA",
        help="beam search ranks log P / ((5 + length) / 6) ** ALPHA (GNMT, "
        "Wu et al. 2016); 0 sums log-probabilities (default 0.6)",
    )
    parser.add_argument("texts", nargs="+", metavar="TEXT", help="dates to normalise")


def _add_export(parser):
    from apps.cli import add_export_format_options

    add_export_format_options(parser, file_formats=False)
    parser.add_argument(
        "--model-path",
        required=True,
        help="a run directory (its model.keras) or a .keras file",
    )
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
    from apps.registry import UnknownModelError
    from apps.training import TrainingError

    command = {"train": train, "translate": translate, "export": export}[args.command]
    try:
        return command(args)
    except (UsageError, UnknownModelError) as error:
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


def train(args, extra_callbacks=()) -> int:
    """Parse -> options -> strategy -> model -> data -> fit -> test -> report.

    ``extra_callbacks`` go to the fit (tests use them to interrupt a run).
    """
    import apps
    import apps.sequence  # noqa: F401  (registers the translators)
    from apps import reports, runs, training

    started = time.perf_counter()
    run_dir = Path(args.output)
    run = runs.RunDirectory(run_dir, "apps.translate train", args.model, None)
    with bad_input():  # every check before any training starts
        kind = run.check(args.overwrite)
        options = training.TrainOptions(
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            optimizer=args.optimizer,
            weight_decay=args.weight_decay,
            lr_schedule=args.lr_schedule,
            strategy=args.strategy,
            devices=args.devices,
            checkpoint_every=args.checkpoint_every,
            seed=args.seed,
        )
        info = apps.registry.get_model_info(args.model)
        if info.task != "translation":
            translators = apps.list_models(task="translation")
            raise UsageError(
                f"--model {args.model} is not a translator. Choose one of "
                f"{translators}."
            )
        builder_options = _builder_options(info, args)
        for flag, value in (
            ("--validation-examples", args.validation_examples),
            ("--test-examples", args.test_examples),
        ):
            if value < 1:
                raise UsageError(f"{flag} must be >= 1. Received: {value}")
        if not 0 <= args.label_smoothing < 1:
            raise UsageError(
                f"--label-smoothing must be in [0, 1). Received: {args.label_smoothing}"
            )
        strategy = training.setup(options)
        with strategy.scope():
            model = apps.build(args.model, **builder_options)
            compile_translator(model, options, label_smoothing=args.label_smoothing)

    if kind == "finished":
        run.say_finished()
        return 0
    chief = training.is_chief(strategy)
    if chief:  # multi-worker: only the chief writes (and locks) the run directory
        run.open(replace=kind == "replace")
    try:
        global_batch = options.batch_size * training.replicas(strategy)
        train_stream, validation_ds = _datasets(args, model, global_batch)
        if chief:
            training.write_json(
                run_dir / "run.json",
                {
                    "command": "apps.translate train",
                    "arguments": vars(args),
                    "versions": training.versions(),
                    "strategy": type(strategy).__name__,
                    "replicas": training.replicas(strategy),
                    "load_average": os.getloadavg(),
                },
            )
        _, throughput = training.fit(
            model,
            train_stream,
            validation_ds,
            run_dir,
            options,
            strategy=strategy,
            extra_callbacks=extra_callbacks,
        )
        if not chief:
            print("worker done; the chief writes the run directory.")
            return 0
        trained_seconds = time.perf_counter() - started

        results = test(model, args.test_examples, args.seed)
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
            "model": args.model,
            "parameters": model.count_params(),
            "final": {key: values[-1] for key, values in history.items()},
            "arguments": vars(args),
            "versions": training.versions(),
        }
        training.write_json(run_dir / "metrics.json", metrics)
        print(
            f"{args.model}: exact match {results['test_exact_match']:.2%} on "
            f"{results['test_examples']} held-out dates, "
            f"{plural(metrics['epochs'], 'epoch')}, "
            f"{metrics['examples_per_second'] or 0:,.0f} examples/s, "
            f"{metrics['wall_seconds']:.0f} s. Run directory: {run_dir}"
        )
        return 0
    finally:
        run.close()


def compile_translator(model, options, label_smoothing=0.0):
    """Compiles a translator: cross-entropy on the logits, padding labels ignored.

    With ``label_smoothing`` ``eps > 0`` the targets are ``(1 - eps) * one_hot +
    eps / V`` over the ``V`` output ids (:func:`smoothed_cross_entropy`).

    Metrics: ``accuracy`` (characters right, padding left out) and
    ``sequence_accuracy`` (every character of the answer right, under teacher
    forcing; greedy decoding's exact match is measured after training).
    """
    import keras

    from apps import training
    from apps.sequence import text

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


def _builder_options(info, args) -> dict:
    """--dropout and --model-option KEY=VALUE, checked against the builder."""
    options = model_options(args.model_option)
    if args.dropout is not None:
        options["dropout"] = args.dropout
    return check_builder_options(info, options)


def _datasets(args, model, global_batch):
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
            seed=args.seed,
            examples_per_epoch=args.steps_per_epoch * global_batch,
            start_epoch=start_epoch,
        )
        batches = stream.batch(global_batch, drop_remainder=True).map(labelled)
        return batches.prefetch(tf.data.AUTOTUNE)

    pairs = dates.examples(args.validation_examples, split="validation", seed=args.seed)
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

    path = Path(model_path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise UsageError(
            f"--model-path {model_path} holds no model: point it at the run directory "
            "of `python -m apps.translate train` or at a .keras file."
        )
    model = cli.load_model_file(path, compile=False)
    try:
        model.get_layer("source_vectorizer")
        model.get_layer("target_vectorizer")
    except ValueError:
        raise UsageError(
            f"{path} is not a translator (it has no source/target vectorizer)."
        ) from None
    return model


def translate(args) -> int:
    from apps.sequence import decoding

    if not 1 <= args.beam <= MAX_BEAM:
        raise UsageError(f"--beam must be in 1..{MAX_BEAM}. Received: {args.beam}")
    if not 0 <= args.length_penalty < float("inf"):
        raise UsageError(
            f"--length-penalty must be a number >= 0. Received: {args.length_penalty}"
        )
    model = load_translator(args.model_path)
    results = decoding.Translator(model).translate(
        args.texts, beam_width=args.beam, length_penalty=args.length_penalty
    )
    refused = 0
    for index, result in enumerate(results, start=1):
        print(result.date or "", flush=True)
        if result.error:
            refused += 1
            print(
                f"error: input {index} ({result.text!r}): {result.error}",
                file=sys.stderr,
                flush=True,
            )
    return 1 if refused else 0


# export


def export(args) -> int:
    """Greedy decoding in the graph, string -> string, published by apps.export."""
    import numpy as np

    from apps import export as exporter
    from apps.sequence import decoding, text

    _check_export_request(args)
    model = load_translator(args.model_path)
    _, max_target_length = text.max_lengths(model)
    samples = [SAMPLE_TEXT, "may 4, 2001", "04/07/1976", "", "31 February 2001"]
    try:
        with exporter.export_lock(args.export_dir, args.name):
            target = exporter.export_signatures(
                {SIGNATURE: decoding.serving_function(model)},
                name=args.name,
                export_dir=args.export_dir,
                version=args.version,
                force=args.force,
                track=[model],
                warmup={
                    SIGNATURE: [
                        {"text": np.array([sample.encode() for sample in samples[:1]])},
                        {"text": np.array([sample.encode() for sample in samples])},
                    ]
                },
                extra_assets={
                    "translator.json": json.dumps(
                        {
                            "model": model.name,
                            "inputs": {"text": "string (batch,)"},
                            "outputs": {
                                "date": "string (batch,), empty when not valid",
                                "valid": "bool (batch,)",
                            },
                            "max_output_length": max_target_length,
                            "decoding": "greedy",
                        },
                        indent=2,
                    )
                },
            )
    except exporter.ExportError as error:
        raise UsageError(str(error)) from error
    print(f"exported {args.model_path} to {target}")
    return 0


def _check_export_request(args) -> None:
    """Refuses, before the model loads, what the export cannot do (exit 2)."""
    from apps import export as exporter
    from apps import export_formats

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
        export_formats.check_request(args.format, refused=refused)
        exporter.check_name(args.name)
        exporter.parse_version(args.version)
        exporter.check_export_dir(args.export_dir)


if __name__ == "__main__":
    sys.exit(main())
