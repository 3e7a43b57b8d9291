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
epoch, and every --checkpoint-every steps). The work is done by
``apps.tasks.translation``.

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
import sys

from apps import cli
from apps.cli import bad_input, plural
from apps.options import OUTPUT
from apps.tasks import translation

MODEL_PATH_HELP = "a run directory (its model.keras) or a .keras file"
# The learning-rate schedules, beyond their flag's one line.
TRAIN_DESCRIPTION = """\
Train a translator on dates. --lr-schedule: per epoch: cosine (default), constant,
plateau; per step: rsqrt, Vaswani et al.'s linear warm-up over 4% of the steps to
--learning-rate, then 1/sqrt(step) decay (they also use --label-smoothing 0.1)."""


def build_parser() -> argparse.ArgumentParser:
    parser, commands = cli.command_parser(
        "python -m apps.translate",
        "Train, use and export the date normaliser (text -> ISO 8601).",
    )
    _add_train(
        commands.add_parser(
            "train",
            help="train a translator on dates",
            description=TRAIN_DESCRIPTION,
        )
    )
    _add_translate(
        commands.add_parser("translate", help="normalise dates given as arguments")
    )
    cli.add_export_flags(
        commands.add_parser("export", help="SavedModel for TF Serving"),
        model_path_help=MODEL_PATH_HELP,
        file_formats=False,
    )
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
        default=translation.DEFAULT_MODEL,
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
    groups = cli.add_training_flags(
        parser,
        defaults=translation.TRAIN_DEFAULTS,
        extra=("label_smoothing",),
        unsupported=translation.UNSUPPORTED,
        default_text={
            "steps_per_epoch": "200; every epoch draws fresh examples",
            "seed": "0; it seeds the corpus, the initialisation and the order",
        },
    )
    groups[OUTPUT].add_argument("--output", required=True, help="run directory")


def _add_translate(parser):
    parser.add_argument("--model-path", required=True, help=MODEL_PATH_HELP)
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


def main(argv=None) -> int:
    commands = {"train": train, "translate": translate, "export": export}
    return cli.main(build_parser(), commands, argv)


def train(args) -> int:
    """Flags -> TranslationConfig and TrainOptions -> translation.train -> one line."""
    with bad_input():
        config = translation.TranslationConfig(
            model=args.model,
            dropout=args.dropout,
            model_options=cli.model_options(args.model_option),
            validation_examples=args.validation_examples,
            test_examples=args.test_examples,
        )
    options = cli.train_options(
        args, defaults=translation.TRAIN_DEFAULTS, unsupported=translation.UNSUPPORTED
    )
    metrics = translation.train(config, options, args.output, overwrite=args.overwrite)
    if metrics is None:  # a finished run, or a worker: said already
        return 0
    print(
        f"{config.model}: exact match {metrics['test_exact_match']:.2%} on "
        f"{metrics['test_examples']} held-out dates, "
        f"{plural(metrics['epochs'], 'epoch')}, "
        f"{metrics['examples_per_second'] or 0:,.0f} examples/s, "
        f"{metrics['wall_seconds']:.0f} s. Run directory: {args.output}"
    )
    return 0


def translate(args) -> int:
    """One line per text on stdout (its date, or empty), the refusals on stderr;
    exit 1 when any text was refused."""
    translation.check_decoding(args.beam, args.length_penalty)  # before the load
    model = translation.load_translator(args.model_path)
    results = translation.translate(
        model, args.texts, beam=args.beam, length_penalty=args.length_penalty
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


def export(args) -> int:
    """Check -> load -> hold the name -> greedy decoding in the graph, string ->
    string, published by apps.export."""
    from apps import export as exporter

    translation.check_export(
        args.format, name=args.name, version=args.version, export_dir=args.export_dir
    )
    model = translation.load_translator(args.model_path)
    with exporter.export_lock(args.export_dir, args.name):
        target = translation.export_translator(
            model,
            name=args.name,
            export_dir=args.export_dir,
            version=args.version,
            force=args.force,
        )
    print(f"exported {args.model_path} to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
