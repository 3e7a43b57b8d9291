"""What the command lines share: bad-input errors, builder options from flags, and
the Ctrl-C message."""

from __future__ import annotations

import ast
import contextlib
import inspect


class UsageError(ValueError):
    """Bad command-line input; reported with exit code 2 (nothing was started)."""


@contextlib.contextmanager
def bad_input():
    """Reports a ValueError raised while checking input as a UsageError (exit 2)."""
    try:
        yield
    except ValueError as error:
        if isinstance(error, UsageError):
            raise
        raise UsageError(str(error)) from error


INTERRUPTED = (
    "interrupted. A train command continues from its last saved state when the "
    "same command is run again."
)


def interrupted() -> int:
    """What every command does on Ctrl-C: one line (no traceback), exit 130."""
    import sys

    print(INTERRUPTED, file=sys.stderr)
    return 130


def model_options(items) -> dict:
    """`--model-option KEY=VALUE` flags as builder keyword arguments.

    Values are Python literals where they parse (`True`, `3`, `(64, 64)`), else strings.
    """
    options = {}
    for item in items:
        key, separator, text = item.partition("=")
        if not separator or not key.strip():
            raise UsageError(f"--model-option takes KEY=VALUE. Received: {item!r}")
        options[key.strip().replace("-", "_")] = _literal(text.strip())
    return options


def check_builder_options(info, options: dict, fixed=()) -> dict:
    """Refuses options the registered builder does not take, or that the command sets
    itself (`fixed`), naming the builder's options."""
    parameters = inspect.signature(info.builder).parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    fixed = {*fixed, "name"}
    unknown = sorted(
        key
        for key in options
        if key in fixed or (key not in parameters and not accepts_any)
    )
    if unknown:
        allowed = sorted(set(parameters) - fixed)
        raise UsageError(f"{info.name} does not take {unknown}. Its options: {allowed}")
    return options


def _literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
