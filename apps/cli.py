"""What the command lines share: the training and export flags, builder options
from flags, exit codes and the Ctrl-C message (the errors themselves live in
:mod:`apps.errors`, which the library raises)."""

from __future__ import annotations

import argparse
import ast
import re

from apps.errors import (  # noqa: F401  (re-exported for the command lines)
    LIST_MODELS,
    BadFileError,
    UsageError,
    bad_input,
    check_builder_options,
    flag_name,
    load_model_file,
    one_line,
    plural,
)
from apps.options import (  # noqa: F401  (re-exported for the command lines)
    DEFAULT_BN_RECALIBRATION_STEPS,
    DEFAULT_LEARNING_RATES,
    LR_SCHEDULES,
    OPTIMIZERS,
    STRATEGIES,
    TrainOptions,
)

INTERRUPTED = (
    "interrupted. A train (or tuning search) command continues from its last "
    "saved state when the same command is run again."
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


def _literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# --help: every option described, its default shown and the exit codes listed, from
# a parser built without TensorFlow (then --help answers in a fraction of a second:
# see apps/__init__). The training core's choices come from apps.options (no
# TensorFlow); the GAN's and apps.data's are spelt out here, kept equal by a test.
STEPS_PER_EXECUTION = TrainOptions.steps_per_execution
GAN_LOSSES = ("bce", "lsgan")  # apps.generative.gan.LOSSES
MAX_PIXELS = 40_000_000  # apps.data.images.MAX_PIXELS
STRATEGY_HELP = (
    "tf.distribute strategy; auto: multi-worker when TF_CONFIG is set, mirrored "
    "with several GPUs (or --devices), else default (one device)"
)
EXPORT_NAME_HELP = "the model's name in TF Serving: EXPORT_DIR/NAME/VERSION/"
EXPORT_DIR_HELP = "TF Serving's model base directory"

EXIT_CODES = """\
exit codes:
  0    done (or nothing left to do)
  1    the work failed: an unreadable or damaged file, a non-finite loss, a lost
       worker
  2    bad arguments or input; nothing was started
  130  interrupted (Ctrl-C); the same train command resumes from its last saved
       state

environment:
  APPS_VERBOSE=1        show TensorFlow's own log lines (held back by default)
  TF_CPP_MIN_LOG_LEVEL  TensorFlow's log level, obeyed when set (0: every line)"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" to every option whose help does not say its default;
    keeps the epilog's layout."""

    def _get_help_string(self, action):
        text = action.help or ""
        if _has_default(action) and not _STATES_DEFAULT.search(text):
            text += " (default: %(default)s)"
        return text


# "(default 0.1)", "default: the recipe's", "cosine (default)", "; default 0"; not the
# strategy named default
_STATES_DEFAULT = re.compile(r"\(default|default[:)]|default \d", re.IGNORECASE)


def _has_default(action) -> bool:
    default = action.default
    return bool(action.option_strings) and not (
        default is None
        or default is False
        or default is argparse.SUPPRESS
        or (isinstance(default, list) and not default)
    )


def command_parser(prog: str, description: str):
    """`(parser, sub-commands)` of a command line `prog` whose sub-command is in
    `args.command`; pass the parser through :func:`documented` when it is complete."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    return parser, parser.add_subparsers(dest="command", required=True)


def main(parser: argparse.ArgumentParser, commands: dict, argv=None) -> int:
    """Parses `argv`, runs `commands[args.command](args)` under :func:`run_command`."""
    args = parse_args(parser, argv)
    return run_command(commands[args.command], args)


def documented(parser: argparse.ArgumentParser, epilog: str = EXIT_CODES):
    """`parser` and its sub-command parsers with :class:`HelpFormatter` and `epilog`
    (the exit codes) where they have none; returns `parser`."""
    for each in all_parsers(parser):
        each.formatter_class = HelpFormatter
        if each.epilog is None:
            each.epilog = epilog
    return parser


def all_parsers(parser: argparse.ArgumentParser):
    """`parser`, then every sub-command parser under it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from all_parsers(sub)


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """`parser.parse_args(argv)`, then the model families are imported (they register,
    with TensorFlow): a command run as `python -m apps.<command>` answers --help and
    bad flags before it loads TensorFlow (see apps/__init__)."""
    args = parser.parse_args(argv)
    import apps

    apps.register_models()
    return args


# The training flags: generated once from apps.options.TrainOptions, so that every
# training command has the same ones, with the same meaning and help.
SHARED_TRAINING_FLAGS = (
    "epochs",
    "steps_per_epoch",
    "batch_size",
    "learning_rate",
    "optimizer",
    "weight_decay",
    "lr_schedule",
    "early_stopping",
    "checkpoint_every",
    "strategy",
    "devices",
    "mixed_precision",
    "jit",
    "steps_per_execution",
    "seed",
)
OVERWRITE_HELP = "train again from scratch, replacing what --output holds"


def as_flags(**values) -> list[str]:
    """Command-line words for ``values``, the inverse of parsing them:
    ``as_flags(steps_per_epoch=2, model_option=["a=1", "b=2"], overwrite=True)`` ->
    ``["--steps-per-epoch", "2", "--model-option", "a=1", "--model-option", "b=2",
    "--overwrite"]``. ``None`` leaves a flag out, ``True`` gives it alone (a switch),
    a list or tuple repeats it (an ``append`` flag); ``False`` is the word ``False``
    (for a flag that parses a boolean: leave a switch out with ``None``)."""
    words = []
    for field, value in values.items():
        if value is None:
            continue
        if value is True:
            words.append(flag_name(field))
            continue
        for item in value if isinstance(value, (list, tuple)) else (value,):
            words += [flag_name(field), str(item)]
    return words


def add_training_flags(
    parser,
    *,
    defaults=None,
    extra=(),
    unsupported=None,
    default_text=None,
) -> dict:
    """Adds the training core's flags to `parser`; returns its argument groups by
    title ("Optimisation", "Distribution and speed", "Output"), for the command's
    own flags.

    Every command gets `SHARED_TRAINING_FLAGS` and `--overwrite`; `extra` names
    further TrainOptions fields it honours (warmup_epochs, label_smoothing,
    bn_recalibration_steps). The argparse default is None (False for switches), so
    that a command tells a given flag from an unset one; `train_options` fills the
    rest from `defaults` (the command's own, by field name), else TrainOptions'.
    `default_text` replaces the "(default: X)" a flag's help ends with;
    `unsupported` maps fields the command cannot honour to the reason, which the help
    states and `train_options` gives when the flag is used.
    """
    from apps import options

    defaults, unsupported = defaults or {}, unsupported or {}
    default_text = default_text or {}
    wanted = (*SHARED_TRAINING_FLAGS, *extra)
    groups = {}
    for field in options.flag_fields():
        if field.name not in wanted:
            continue
        meta = dict(field.metadata)
        title = meta.pop("group")
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        help_text = meta.pop("help")
        meta.pop("flag")
        text = _default_text(field, defaults, default_text, meta.pop("default_text"))
        if field.name in unsupported:
            help_text += f" (not supported here: {unsupported[field.name]})"
        elif text is not None:
            help_text += f" (default: {text})"
        if field.type == "bool":
            groups[title].add_argument(
                flag_name(field.name), action="store_true", help=help_text
            )
            continue
        kind = {"int": int, "float": float}.get(field.type.split(" ")[0], str)
        groups[title].add_argument(
            flag_name(field.name), type=kind, help=help_text, **meta
        )
    output = groups.setdefault(
        options.OUTPUT, parser.add_argument_group(options.OUTPUT)
    )
    output.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    return groups


def _default_text(field, defaults, default_text, field_text):
    """What a flag's help gives as its default: the command's description, else the
    command's default value, else what the field's None means, else its default."""
    if field.name in default_text:
        return default_text[field.name]
    default = defaults.get(field.name, field.default)
    if default is None or default is False:
        return field_text
    return default


def given_training_flags(args) -> dict:
    """The training flags set on the command line: {field: value}."""
    from apps import options

    return {
        field.name: getattr(args, field.name)
        for field in options.flag_fields()
        if _given(getattr(args, field.name, None))
    }


def _given(value) -> bool:
    # by identity: `--seed 0` and `--weight-decay 0` are given (0 == False)
    return value is not None and value is not False


def train_options(args, *, defaults=None, unsupported=None, **fixed):
    """TrainOptions from parsed training flags: a given flag wins, else
    `defaults[field]`, else TrainOptions' default; `fixed` values are set by the
    command itself. A flag in `unsupported` is refused with its reason; invalid
    values raise UsageError (exit 2) naming the field."""
    from apps import options

    defaults, unsupported = defaults or {}, unsupported or {}
    given = given_training_flags(args)
    for name, reason in unsupported.items():
        if name in given:
            raise UsageError(f"{flag_name(name)} is not supported here: {reason}")
    values = {
        field.name: given.get(field.name, defaults.get(field.name, field.default))
        for field in options.flag_fields()
        if hasattr(args, field.name) or field.name in defaults
    }
    with bad_input():
        return options.TrainOptions(**{**values, **fixed})


# export sub-commands: the formats (choices kept equal to apps.export.formats'
# FORMATS and QUANTIZATIONS by a test; spelt out here so that --help imports no
# TensorFlow)
EXPORT_FORMATS = ("saved_model", "onnx", "litert")
QUANTIZATIONS = ("int8", "float16")


def add_export_format_options(parser, *, file_formats=True, examples="test images"):
    """--format, and for commands that export ONNX/LiteRT files, --quantize and the
    verification options (their defaults are apps.export.formats')."""
    files = (
        "onnx, litert: EXPORT_DIR/NAME/FORMAT/VERSION/model.onnx or model.tflite, "
        "verified in ONNX Runtime or LiteRT against Keras before it is published "
        "(needs the export extra: pip install -e '.[export]')"
        if file_formats
        else "onnx and litert are refused: the graph is string ops"
    )
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="saved_model",
        help=f"saved_model: a versioned SavedModel for TF Serving (default); {files}",
    )
    if not file_formats:
        return
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        help="litert only: post-training quantisation, float16 weights or int8 "
        "(calibrated on 256 training examples; test accuracy printed next to the "
        "float model's); default: none (float32)",
    )
    parser.add_argument(
        "--verify-examples",
        type=int,
        metavar="N",
        help=f"{examples} the ONNX/LiteRT file is checked on (default: 512 for "
        "classifiers, 64 for generators)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        help="largest max abs difference from Keras an ONNX/LiteRT file may show "
        "(default: 1e-4; 1e-2 with --quantize float16; int8 is bounded by "
        "--max-accuracy-drop instead)",
    )
    parser.add_argument(
        "--max-accuracy-drop",
        type=float,
        metavar="POINTS",
        help="--quantize int8 of a classifier: largest loss of test accuracy, in "
        "points, against the float Keras model (default: 1.0)",
    )


def add_export_flags(
    parser,
    *,
    model_path_help: str,
    file_formats=True,
    examples="test images",
) -> None:
    """The export sub-command's flags, the same in every command: --format (and the
    ONNX/LiteRT verification flags), --model-path, --name, --export-dir, --version,
    --force."""
    add_export_format_options(parser, file_formats=file_formats, examples=examples)
    parser.add_argument("--model-path", required=True, help=model_path_help)
    parser.add_argument("--name", required=True, help=EXPORT_NAME_HELP)
    parser.add_argument("--export-dir", default="saved_models", help=EXPORT_DIR_HELP)
    parser.add_argument("--version", help="integer; default: next after the highest")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing version"
    )


# Exit codes (EXIT_CODES): what every command does with what its work raises.
def run_command(command, args, *, usage_errors=(), failures=()) -> int:
    """`command(args)`, with exceptions turned into one line on stderr and an exit
    code: bad input (UsageError, the data, registry and export errors, and
    `usage_errors`) 2; a failed run (TrainingError, BadFileError, `failures`) 1;
    Ctrl-C 130. Anything else is a bug and keeps its traceback."""
    import sys

    from apps.data.datasets import DatasetError
    from apps.export import ExportError
    from apps.registry import UnknownModelError
    from apps.training import TrainingError

    bad = (UsageError, DatasetError, UnknownModelError, ExportError, *usage_errors)
    try:
        return command(args)
    except bad as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"training stopped: {error}", file=sys.stderr)
        return 1
    except (BadFileError, *failures) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted()


def file_export(export, source) -> int:
    """Runs an ONNX/LiteRT export for a command line and prints what came of it.

    `export`: a no-argument callable returning `(version directory, check)` (an
    `apps.export.formats` export). Prints the verification figures and where the
    file went (exit 0), or, when the conversion or the verification failed, the
    figures it has and a one-line error (exit 1; nothing was published).
    """
    import sys

    from apps.export import formats as export_formats

    print(f"converting {source}, then verifying the file in its runtime", flush=True)
    try:
        target, check = export()
    except (export_formats.ConversionError, export_formats.VerificationError) as error:
        check = getattr(error, "check", None)
        for line in check.lines() if check is not None else []:
            print(line)
        print(f"error: cannot export {source}: {error}", file=sys.stderr)
        return 1
    for line in check.lines():
        print(line)
    print(f"exported {source} to {target}")
    return 0
