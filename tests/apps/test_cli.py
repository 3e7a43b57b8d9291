"""The command lines' --help: every option described with its default, the exit
codes listed, and answered without importing TensorFlow."""

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from apps import classify, cli

COMMANDS = {
    "apps.classify": "apps.classify",
    "apps.generate": "apps.generate",
    "apps.translate": "apps.translate",
    "tuning": "tuning.__main__",
}


def _parsers(command):
    return list(
        cli.all_parsers(importlib.import_module(COMMANDS[command]).build_parser())
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_its_default(command):
    undescribed, default_unshown = [], []
    for parser in _parsers(command):
        assert parser.epilog == cli.EXIT_CODES, parser.prog
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                undescribed.append(name)
            elif cli._has_default(action) and "default" not in (
                formatter._expand_help(action).lower()
            ):
                default_unshown.append(name)
    assert undescribed == [] and default_unshown == []


@pytest.mark.parametrize(
    "module, argv, shown",
    [
        (
            "apps.generate",
            ["train"],
            ["--epochs EPOCHS       training epochs (default: 10)"],
        ),
        (
            "apps.translate",
            ["train"],
            ["the optimiser (default: adam)", "cosine (default)"],
        ),
        ("apps.classify", ["train"], ["else 10", "adagrad 0.01", "(default: 8)"]),
        ("apps.classify", ["predict"], ["(default: 3)"]),
        ("apps.classify", ["export"], ["base directory (default: saved_models)"]),
        ("tuning.__main__", ["search"], ["(default: random)", "(default: 2)"]),
    ],
)
def test_help_shows_defaults_and_exit_codes(module, argv, shown, capsys):
    with pytest.raises(SystemExit) as exit:
        importlib.import_module(module).main([*argv, "--help"])
    assert exit.value.code == 0
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    for words in [*shown, "exit codes:", "130 interrupted", "APPS_VERBOSE=1"]:
        assert re.sub(r"\s+", " ", words) in text


@pytest.mark.parametrize(
    "argv",
    [
        ["apps.classify", "train"],
        ["apps.generate", "train"],
        ["apps.translate", "export"],
        ["tuning", "search"],
    ],
)
def test_help_does_not_import_tensorflow(argv):
    """`--help` took ~5 s (14 s on a busy 2-core machine): it imported TensorFlow."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", *argv, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "exit codes:" in result.stdout
    imported = re.findall(r"\|\s+(\S+)$", result.stderr, re.MULTILINE)
    assert "argparse" in imported
    assert [
        name for name in imported if name.split(".")[0] in ("tensorflow", "keras")
    ] == []


def test_spelt_out_choices_are_the_libraries():
    from apps import training
    from apps.data import images
    from apps.generative import gan

    assert cli.OPTIMIZERS == training.OPTIMIZERS
    assert cli.LR_SCHEDULES == training.LR_SCHEDULES
    assert cli.STRATEGIES == training.STRATEGIES
    assert cli.DEFAULT_LEARNING_RATES == training.DEFAULT_LEARNING_RATES
    assert cli.STEPS_PER_EXECUTION == training.TrainOptions.steps_per_execution
    assert cli.GAN_LOSSES == gan.LOSSES
    assert cli.MAX_PIXELS == images.MAX_PIXELS


def test_another_program_run_with_dash_m_gets_the_models_registered(tmp_path):
    # Only our command lines put registration off until their flags are parsed; a
    # user's `python -m mypackage.run` whose package imports apps must not.
    package = tmp_path / "mypackage"
    package.mkdir()
    (package / "__init__.py").write_text("import apps\n")
    (package / "run.py").write_text("import apps\nprint(len(apps.list_models()))\n")
    root = str(Path(cli.__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-m", "mypackage.run"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([root, str(tmp_path)])},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) >= 20


def _training_parser(**kwargs):
    parser = argparse.ArgumentParser()
    cli.add_training_flags(parser, **kwargs)
    return parser


def test_training_flags_given_as_zero_are_kept():
    # 0 == False in Python: `--seed 0` must not fall back to the default.
    args = _training_parser().parse_args(["--seed", "0", "--weight-decay", "0"])
    assert cli.given_training_flags(args) == {"seed": 0, "weight_decay": 0.0}
    options = cli.train_options(args, defaults={"seed": 7, "weight_decay": 0.1})
    assert (options.seed, options.weight_decay) == (0, 0.0)


def test_training_flags_take_the_commands_defaults_and_refuse_the_unsupported():
    parser = _training_parser(defaults={"epochs": 3}, unsupported={"jit": "string ops"})
    assert cli.train_options(parser.parse_args([]), defaults={"epochs": 3}).epochs == 3
    assert "not supported here: string ops" in " ".join(parser.format_help().split())
    with pytest.raises(cli.UsageError, match="--jit is not supported here: string"):
        cli.train_options(
            parser.parse_args(["--jit"]), unsupported={"jit": "string ops"}
        )
    with pytest.raises(cli.UsageError, match="batch_size must be a positive integer"):
        cli.train_options(parser.parse_args(["--batch-size", "0"]))


@pytest.mark.parametrize(
    "module, command, own_flag",
    [
        ("apps.classify", "train", "--warmup-epochs"),
        ("apps.generate", "train", "one-sided: real target 1 - s"),
        ("apps.translate", "train", "--label-smoothing"),
        ("tuning.__main__", "search", "--max-trials"),
    ],
)
def test_every_training_command_has_the_shared_flags(module, command, own_flag, capsys):
    """Each command's parser takes the shared flags, and its --help lists them."""
    module = importlib.import_module(module)
    parser = next(
        p for p in cli.all_parsers(module.build_parser()) if p.prog.endswith(command)
    )
    flags = {option for action in parser._actions for option in action.option_strings}
    shared = [cli.flag_name(field) for field in cli.SHARED_TRAINING_FLAGS]
    assert not set(shared) - flags and "--overwrite" in flags
    with pytest.raises(SystemExit) as exit_info:
        module.main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert [flag for flag in shared if flag not in text] == [] and own_flag in text


def test_as_flags_gives_the_words_that_parse_back():
    words = cli.as_flags(
        steps_per_epoch=2, model_option=["a=1", "b=2"], overwrite=True, seed=None
    )
    assert words == [
        "--steps-per-epoch",
        "2",
        "--model-option",
        "a=1",
        "--model-option",
        "b=2",
        "--overwrite",
    ]
    parser = classify.build_parser()
    train = ["train", "--model", "lenet5", "--dataset", "mnist", "--output", "x"]
    args = parser.parse_args([*train, *words])
    assert (args.steps_per_epoch, args.model_option) == (2, ["a=1", "b=2"])
    assert args.overwrite is True
