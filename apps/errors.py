"""What the library tells a user who gave it bad input: the two exceptions the
command lines turn into exit codes (:class:`UsageError` 2, :class:`BadFileError` 1)
and the helpers that phrase them. No TensorFlow at import; the task modules, run
directories and exports raise these, :mod:`apps.cli` reports them."""

from __future__ import annotations

import contextlib
import inspect
import numbers

LIST_MODELS = "python -c 'import apps; print(apps.list_models())'"


class UsageError(ValueError):
    """Bad command-line input; reported with exit code 2 (nothing was started)."""


class BadFileError(RuntimeError):
    """A file the command was pointed at is unreadable or damaged (a truncated model,
    a corrupt preprocessing.json); reported with exit code 1. Not a ValueError, so
    `bad_input` leaves it alone."""


def require_positive_int(name: str, value, minimum: int = 1) -> None:
    """Raises a ValueError naming `name` unless `value` is an integer >= `minimum`
    (a bool is not; a NumPy integer is). The suite's one integer check: the
    training core, the data, decoding and every builder use it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {allowed}. Received: {name}={value!r}")


@contextlib.contextmanager
def bad_input():
    """Reports a ValueError raised while checking input as a UsageError (exit 2)."""
    try:
        yield
    except ValueError as error:
        if isinstance(error, UsageError):
            raise
        raise UsageError(str(error)) from error


def check_builder_options(info, options: dict, fixed=()) -> dict:
    """Refuses options the registered builder does not take, or that the command sets
    itself (`fixed`), naming the builder's options."""
    parameters = inspect.signature(info.builder).parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    fixed = {*fixed, "name"}
    allowed = sorted(set(parameters) - fixed)
    set_here = sorted(key for key in options if key in fixed and key in parameters)
    if set_here:
        raise UsageError(
            f"{set_here} cannot be set with --model-option: the command sets "
            f"{'it' if len(set_here) == 1 else 'them'} itself. {info.name}'s other "
            f"options: {allowed}"
        )
    unknown = sorted(
        key
        for key in options
        if key in fixed or (key not in parameters and not accepts_any)
    )
    if unknown:
        raise UsageError(f"{info.name} does not take {unknown}. Its options: {allowed}")
    return options


def load_model_file(path, compile: bool = True):
    """A `.keras` file loaded (safe mode: no Lambda layers); BadFileError (exit 1)
    if the file is truncated or corrupt, UsageError (exit 2) if Keras refuses what
    it holds. `compile=False` for models whose losses are not registered."""
    import zipfile
    import zlib

    import keras

    import apps  # noqa: F401  (registers our custom layers for deserialisation)

    def damaged(why):
        return BadFileError(
            f"{path} is not a readable .keras file (truncated or corrupt: {why}); "
            "train again, or copy the file again."
        )

    if not zipfile.is_zipfile(path):
        raise damaged("not a complete zip archive")
    try:
        return keras.saving.load_model(path, compile=compile)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise damaged(one_line(error)) from None
    except Exception as error:  # keras raises many types for what it refuses
        raise UsageError(f"cannot load {path}: {one_line(error)}") from error


def one_line(error, limit: int = 200) -> str:
    """An exception's message on one line, cut to `limit` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def flag_name(field: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + field.replace("_", "-")


def plural(count, noun: str) -> str:
    """``"1 epoch"``, ``"2 epochs"``: a count and its noun for printed messages."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"
