"""python -m tuning: hyper-parameter search over the registry's families.

A small search on Fashion-MNIST (2-core CPU: about 70 s; the best of its 6 trials
reached 0.806 validation accuracy, the default LeNet-5 with the same budget 0.770;
benchmarks/tuning_search.py):

    python -m tuning search --model lenet5 --dataset fashion_mnist \\
        --tuner random --max-trials 6 --epochs 2 --steps-per-epoch 100 \\
        --batch-size 64 --seed 0 --output runs/tune-lenet5
    python -m tuning show runs/tune-lenet5

Every trial trains through apps.training (the same data pipeline, strategy and run
directory as `python -m apps.classify train`); the objective is val_accuracy on the
held-out share of the training split. Re-running the same `search` resumes it:
finished trials are kept, an interrupted one runs again. Distributed search: set
KERASTUNER_TUNER_ID (chief, tuner0, tuner1, ...), KERASTUNER_ORACLE_IP and
KERASTUNER_ORACLE_PORT and run the same command on every machine, sharing --output.

Exit codes: 0 done, 1 a failure during the search (too many failed trials in a row,
the chief lost), 2 bad arguments or input (nothing was started).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apps import cli
from tuning import search as search_lib

DEFAULTS = {"epochs": 2}
# Training flags a search cannot honour, and why (refused, exit 2).
UNSUPPORTED = {
    "learning_rate": "the search tunes it (a tenth to ten times the optimiser's "
    "default)",
    "early_stopping": "a trial stopped early is not scored on its whole budget "
    "(Hyperband sets each trial's epochs)",
}


def build_parser() -> argparse.ArgumentParser:
    parser, commands = cli.command_parser(
        "python -m tuning",
        "Hyper-parameter search with Keras Tuner over registered models.",
    )
    _add_search(commands.add_parser("search", help="run (or resume) a search"))
    show = commands.add_parser("show", help="print the trials of a search")
    show.add_argument("directory", help="the --output of a search")
    return cli.documented(parser)


def _add_search(parser):
    # Built from apps.cli and apps.options only: --help imports no TensorFlow.
    data = parser.add_argument_group("Data")
    data.add_argument(
        "--dataset", required=True, help="a tfds image dataset (fashion_mnist, ...)"
    )
    data.add_argument(
        "--validation-split",
        type=float,
        default=0.1,
        help="share of the training split the objective is measured on",
    )
    data.add_argument("--augment", default="none", help="as apps.classify's")
    model = parser.add_argument_group("Model")
    model.add_argument(
        "--model",
        required=True,
        help="a registered model with a search space in the registry, or its "
        "family; an unknown name lists them",
    )
    model.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fixed builder argument, e.g. fc_units=512 (repeatable)",
    )
    _add_search_flags(parser.add_argument_group("Search"))
    groups = cli.add_training_flags(
        parser,
        defaults=DEFAULTS,
        unsupported=UNSUPPORTED,
    )
    groups["Optimisation"].add_argument(
        "--eval-steps", type=int, help="limit validation to N batches"
    )
    groups["Output"].add_argument(
        "--output",
        required=True,
        help="the search directory (--overwrite: single process or chief only)",
    )


def _add_search_flags(search):
    search.add_argument(
        "--tuner",
        default="random",
        choices=search_lib.TUNERS,
        help="Keras Tuner's random search, Hyperband or Bayesian optimisation",
    )
    search.add_argument(
        "--max-trials", type=int, default=10, help="hyper-parameter sets to try"
    )
    search.add_argument(
        "--hyperband-factor",
        type=int,
        default=3,
        help="Hyperband: keep 1/F of the trials per round, F x the epochs (up to "
        "--epochs)",
    )
    search.add_argument(
        "--max-retries-per-trial",
        type=int,
        default=1,
        help="runs again a trial that raised, up to N times (default 1)",
    )
    search.add_argument(
        "--max-consecutive-failed-trials",
        type=int,
        default=3,
        help="stop the search after N failed trials in a row (default 3)",
    )


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "show":  # reads files only (run_command imports TensorFlow)
        try:
            return show(args)
        except search_lib.ConfigurationError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return cli.run_command(
        _stopped_with_reason, args, usage_errors=(search_lib.ConfigurationError,)
    )


def _stopped_with_reason(args) -> int:
    """`search`, with a stopped search said as "search stopped: ..." (exit 1),
    as this command always has (run_command would say "error: ...")."""
    try:
        return search(args)
    except search_lib.SearchError as error:
        print(f"search stopped: {error}", file=sys.stderr)
        return 1


def show(args) -> int:
    directory = Path(args.directory)
    if not search_lib.has_search(directory):
        raise search_lib.ConfigurationError(
            f"{directory} holds no search (no {search_lib.PROJECT}/oracle.json). "
            "Give the --output of `python -m tuning search`."
        )
    rows = search_lib.collect_trials(directory)
    print(search_lib.summary_text(directory, rows))
    return 0


def search(args) -> int:
    """Check everything -> lock --output -> record -> tuner -> trials -> reports
    (`tuning.search.prepare` and `run`)."""
    _check_numbers(args)
    with cli.bad_input():  # every check before anything is written
        config = search_lib.SearchConfig(
            model=args.model,
            dataset=args.dataset,
            output=Path(args.output),
            # seed=: train_options drops a --seed of 0 (given_training_flags
            # takes 0 for False)
            options=cli.train_options(
                args, defaults=DEFAULTS, unsupported=UNSUPPORTED, seed=args.seed
            ),
            tuner=args.tuner,
            max_trials=args.max_trials,
            hyperband_factor=args.hyperband_factor,
            max_retries_per_trial=args.max_retries_per_trial,
            max_consecutive_failed_trials=args.max_consecutive_failed_trials,
            validation_split=args.validation_split,
            eval_steps=args.eval_steps,
            augment=args.augment,
            model_options=cli.model_options(args.model_option),
            overwrite=args.overwrite,
            arguments=vars(args),
        )
        prepared = search_lib.prepare(config)
    outcome = search_lib.run(prepared)
    if outcome is None:
        print(f"worker {prepared.role.tuner_id} done; the chief writes the reports.")
        return 0
    search_lib.report(config.output, outcome)
    return 0


def _check_numbers(args):
    for flag, value, minimum in (
        ("--max-trials", args.max_trials, 1),
        ("--hyperband-factor", args.hyperband_factor, 2),
        ("--epochs", args.epochs, 1),
        ("--steps-per-epoch", args.steps_per_epoch, 1),
        ("--eval-steps", args.eval_steps, 1),
        ("--batch-size", args.batch_size, 1),
        ("--devices", args.devices, 1),
        ("--max-retries-per-trial", args.max_retries_per_trial, 0),
        ("--max-consecutive-failed-trials", args.max_consecutive_failed_trials, 1),
    ):
        if value is not None and value < minimum:
            raise cli.UsageError(f"{flag} must be >= {minimum}. Received: {value}")
    if not 0 < args.validation_split < 1:
        raise cli.UsageError(
            "--validation-split must be in (0, 1): the objective, val_accuracy, is "
            f"measured on it. Received: {args.validation_split}"
        )


if __name__ == "__main__":
    sys.exit(main())
