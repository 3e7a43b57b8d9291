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
import time
from pathlib import Path

from tuning import search as search_lib


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tuning",
        description="Hyper-parameter search with Keras Tuner over registered models.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_search(commands.add_parser("search", help="run (or resume) a search"))
    show = commands.add_parser("show", help="print the trials of a search")
    show.add_argument("directory", help="the --output of a search")
    from apps.cli import documented  # imports no TensorFlow (apps/__init__)

    return documented(parser)


def _add_search(parser):
    # Choices of the training core are checked by apps.training.TrainOptions, so that
    # building the parser (and `show`) does not import TensorFlow.
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
        help="a registered model with a hypermodel (tuning/hypermodels.py), or its "
        "family; an unknown name lists them",
    )
    model.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fixed builder argument, e.g. fc_units=512 (repeatable)",
    )
    tuner = parser.add_argument_group("Search")
    tuner.add_argument(
        "--tuner",
        default="random",
        choices=search_lib.TUNERS,
        help="Keras Tuner's random search, Hyperband or Bayesian optimisation",
    )
    tuner.add_argument(
        "--max-trials", type=int, default=10, help="hyper-parameter sets to try"
    )
    tuner.add_argument(
        "--hyperband-factor",
        type=int,
        default=3,
        help="Hyperband: keep 1/F of the trials per round, F x the epochs",
    )
    tuner.add_argument(
        "--max-retries-per-trial",
        type=int,
        default=1,
        help="runs again a trial that raised, up to N times (default 1)",
    )
    tuner.add_argument(
        "--max-consecutive-failed-trials",
        type=int,
        default=3,
        help="stop the search after N failed trials in a row (default 3)",
    )
    optimisation = parser.add_argument_group("Optimisation (every trial)")
    optimisation.add_argument(
        "--epochs", type=int, default=2, help="per trial (Hyperband: at most)"
    )
    optimisation.add_argument(
        "--steps-per-epoch",
        type=int,
        help="training batches per epoch (default: one pass over the training share)",
    )
    optimisation.add_argument(
        "--eval-steps", type=int, help="limit validation to N batches"
    )
    optimisation.add_argument(
        "--batch-size", type=int, default=128, help="per replica (default 128)"
    )
    optimisation.add_argument(
        "--optimizer", default="adam", help="sgd, momentum, adam, adagrad, rmsprop"
    )
    optimisation.add_argument(
        "--lr-schedule", default="cosine", help="cosine, constant or plateau"
    )
    distribution = parser.add_argument_group("Distribution")
    distribution.add_argument(
        "--strategy", default="auto", help="auto, default, mirrored or multi-worker"
    )
    distribution.add_argument(
        "--devices", type=int, help="replicas; on a CPU-only machine, logical CPUs"
    )
    output = parser.add_argument_group("Output")
    output.add_argument("--output", required=True, help="the search directory")
    output.add_argument("--seed", type=int, help="seeds the search and each trial")
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh instead of resuming (single process or chief only)",
    )


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "show":  # reads files only: no TensorFlow
        try:
            return show(args)
        except search_lib.ConfigurationError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    from apps.cli import UsageError, interrupted

    try:
        return search(args)
    except (UsageError, search_lib.ConfigurationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except search_lib.SearchError as error:
        print(f"search stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted()


# show


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


# search


def search(args) -> int:
    """Check everything -> lock --output -> record -> tuner -> trials -> reports.

    --output is opened as a train command opens its run directory (apps.runs):
    refused unless new, empty or a search of the same model and dataset; locked
    (a second search on it fails at once); --overwrite replaces it only after
    every check. In a distributed search only the chief opens and locks it.
    """
    from apps import cli, data, training
    from tuning import hypermodels

    started = time.perf_counter()
    _check_numbers(args)
    role = search_lib.distributed_role()
    owner = role is None or role.chief  # writes (and locks) the search directory
    output = Path(args.output)
    with cli.bad_input():  # every check before anything is written
        model_name = hypermodels.resolve_model(args.model)
        builder_options = cli.model_options(args.model_option)
        augment = data.images.parse_augment(args.augment)
        _check_output(output, args, model_name)
        run = search_lib.search_directory(output, model_name, args.dataset)
        kind = run.check(args.overwrite) if owner else None
        search_lib.check_tuner(args.tuner)
        options = training.TrainOptions(
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
            lr_schedule=args.lr_schedule,
            strategy=args.strategy,
            devices=args.devices,
            seed=args.seed,
        )
        strategy = training.setup(options)
        dataset_info = data.describe(args.dataset)
        spec = _preprocessing_spec(dataset_info, model_name)
        folder, loaded = _load_data(args, spec, options, strategy, augment, role)
        hypermodel = hypermodels.hypermodel_for(
            model_name,
            tuple(spec["input_shape"]),
            dataset_info.num_classes,
            options=options,
            **builder_options,
        )

    if owner:
        run.open(replace=kind == "replace")
    try:
        if owner:  # the marker first: from here on the directory is this search's
            _write_search_record(output, args, model_name, spec, strategy, role)
            if folder is not None:
                training.write_json(output / data.folders.SPLIT_FILE, folder.to_json())
        with cli.bad_input():
            tuner = search_lib.make_tuner(
                args.tuner,
                hypermodel,
                output,
                max_trials=args.max_trials,
                epochs=args.epochs,
                hyperband_factor=args.hyperband_factor,
                seed=args.seed,
                max_retries_per_trial=args.max_retries_per_trial,
                max_consecutive_failed_trials=args.max_consecutive_failed_trials,
                strategy=strategy,
                overwrite=False,  # --overwrite: run.open replaced the directory
            )
        if owner:
            tuner.save()  # from here on a re-run reloads, wherever a kill falls

        failure = None
        if role is not None and role.chief:
            search_lib.serve_oracle(tuner, role)
            failure = _stop_reason(tuner)
        else:
            train, validation, steps = loaded
            options.steps_per_epoch = steps  # the hypermodel's options too: every trial
            failure = _run(tuner, train, validation, strategy, role)
            if role is not None:
                if failure:
                    raise search_lib.SearchError(failure)
                print(f"worker {role.tuner_id} done; the chief writes the reports.")
                return 0

        rows = search_lib.collect_trials(output)
        best = search_lib.write_reports(
            output,
            rows,
            summary={
                "model": model_name,
                "dataset": dataset_info.name,
                "tuner": args.tuner,
                "trial_seconds": sum(row["seconds"] or 0.0 for row in rows),
                "session_seconds": time.perf_counter() - started,
            },
        )
    finally:
        run.close()
    print()
    print(search_lib.summary_text(output, rows))
    print(f"Search directory: {output}")
    if failure:
        raise search_lib.SearchError(failure)
    if best is None:
        raise search_lib.SearchError(
            "no trial completed; see the trials' errors.log in "
            f"{output / search_lib.TRIALS}."
        )
    return 0


def _run(tuner, train, validation, strategy, role) -> str | None:
    """Runs the trials; returns why the search stopped early, or None."""
    try:
        tuner.search(train, validation, strategy=strategy)
    except Exception as error:
        if role is None or type(error).__module__.split(".")[0] != "grpc":
            raise
        details = getattr(error, "details", lambda: "")() or type(error).__name__
        return (
            f"the chief oracle at {role.ip}:{role.port} did not answer ({details}). "
            "Restart the chief if it stopped, then this worker."
        )
    return _stop_reason(tuner)


def _stop_reason(tuner) -> str | None:
    reason = getattr(tuner.oracle, "stop_reason", None)
    if reason is None:
        return None
    return (
        f"{reason} Fix the cause (see the trials' errors.log), then re-run the "
        "same command: finished trials are kept."
    )


def _check_numbers(args):
    from apps.cli import UsageError

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
            raise UsageError(f"{flag} must be >= {minimum}. Received: {value}")
    if not 0 < args.validation_split < 1:
        raise UsageError(
            "--validation-split must be in (0, 1): the objective, val_accuracy, is "
            f"measured on it. Received: {args.validation_split}"
        )


def _check_output(output: Path, args, model_name):
    """A resumed search must be the same search: model, dataset and tuner."""
    from apps.cli import UsageError

    record = search_lib._read_json(output / search_lib.SEARCH_FILE)
    if record is None or args.overwrite:
        return
    previous = record.get("search", {})
    current = {"model": model_name, "dataset": args.dataset, "tuner": args.tuner}
    changed = {k: previous.get(k) for k in current if previous.get(k) != current[k]}
    if changed:
        raise UsageError(
            f"{output} holds another search ({changed}); re-running resumes only "
            "the same search. Pass --overwrite to start afresh, or another --output."
        )


def _preprocessing_spec(dataset_info, model_name) -> dict:
    """As apps.classify's, so that best_model.keras works with its commands."""
    import apps
    from apps.classify import preprocessing_spec

    return preprocessing_spec(dataset_info, apps.get_model_info(model_name))


def _load_data(args, spec, options, strategy, augment, role):
    """`(folder split or None, (train, validation, steps) or None)`: what the trials
    train on (the oracle of a distributed search needs none).

    An image folder is split as `apps.classify train` splits it (stratified, the
    same seed), and the split saved in --output must be the one the folder gives
    now: trials on other data would not be comparable.
    """
    from apps import data, training
    from apps.cli import UsageError

    global_batch = options.batch_size * training.replicas(strategy)
    folder = None
    if data.folders.is_folder(args.dataset):
        # search_lib.datasets asks for "train[:P%]": the same fraction, exactly.
        percent = round(100 * (1 - args.validation_split))
        fraction = (100 - percent) / 100
        try:
            folder = data.folders.split_folder(
                args.dataset, validation_fraction=fraction
            )
            saved_path = Path(args.output) / data.folders.SPLIT_FILE
            if saved_path.is_file() and not args.overwrite:
                saved = data.folders.read_split(saved_path, args.dataset)
                if saved.files != folder.files:
                    raise UsageError(
                        f"{args.dataset} is not split as when this search began "
                        f"({saved_path}): images were added or removed, or "
                        "--validation-split changed, so new trials would not be "
                        "comparable. Pass --overwrite to start afresh, or restore it."
                    )
        except data.UnreadableImagesError as error:  # a bad file: exit code 1
            raise search_lib.SearchError(str(error)) from None
        print(folder.summary())
        for note in folder.notes:
            print(f"note: {note}.", file=sys.stderr)
        count = len(folder.files["train"])
        batch = data.folders.fitting_batch(
            count, global_batch, training.replicas(strategy)
        )
        if batch != global_batch:
            print(
                f"note: the training split has {count} images, fewer than one "
                f"batch of {global_batch}: every trial trains with batches of "
                f"{batch}.",
                file=sys.stderr,
            )
            global_batch = batch
    if role is not None and role.chief:
        return folder, None
    loaded = search_lib.datasets(_data_args(args), spec, global_batch, augment)
    return folder, loaded


def _data_args(args):
    return argparse.Namespace(
        dataset=args.dataset,
        validation_split=args.validation_split,
        steps_per_epoch=args.steps_per_epoch,
        eval_steps=args.eval_steps,
        seed=args.seed,
    )


def _write_search_record(output, args, model_name, spec, strategy, role):
    from apps import training

    # search.json first: it marks the directory as this search's (a kill right
    # after leaves a directory that resumes, not one that is refused).
    output.mkdir(parents=True, exist_ok=True)
    training.write_json(
        output / search_lib.SEARCH_FILE,
        {
            "command": "tuning search",
            "search": {
                "model": model_name,
                "dataset": args.dataset,
                "tuner": args.tuner,
            },
            "arguments": vars(args),
            "distributed": None if role is None else vars(role),
            "strategy": type(strategy).__name__,
            "replicas": training.replicas(strategy),
            "versions": training.versions(),
        },
    )
    training.write_json(output / search_lib.PREPROCESSING_FILE, spec)


if __name__ == "__main__":
    sys.exit(main())
