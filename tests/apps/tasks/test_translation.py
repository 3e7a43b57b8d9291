"""apps.tasks.translation: the translator task a notebook calls, and the training
flags `python -m apps.translate train` honours through it."""

import keras
import pytest
from probes import StepGroups

from apps import cli, training, translate
from apps.cli import UsageError
from apps.tasks import translation

TINY_MODEL = {"num_layers": 1, "d_model": 16, "feed_forward_dim": 32}


class _Probe(StepGroups):
    """Records the steps per call and the compute policy, and makes the validation
    loss flat, so that early stopping with patience 1 stops after epoch 2."""

    def on_train_begin(self, logs=None):
        self.policy = self.model.dtype_policy.name

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = 1.0  # seen by the core's callbacks, which come after


def test_train_honours_the_new_flags_and_calls_the_extra_callback(tmp_path):
    flags = ["--mixed-precision", "--steps-per-execution", "2", "--early-stopping"]
    flags += ["1", "--epochs", "4", "--steps-per-epoch", "5", "--batch-size", "16"]
    args = translate.build_parser().parse_args(["train", *flags, "--output", "x"])
    options = cli.train_options(
        args, defaults=translation.TRAIN_DEFAULTS, unsupported=translation.UNSUPPORTED
    )
    config = translation.TranslationConfig(
        dropout=0.0, model_options=TINY_MODEL, validation_examples=16, test_examples=8
    )
    probe = _Probe()
    try:
        metrics = translation.train(config, options, tmp_path / "run", [probe])
        finished = translation.train(config, options, tmp_path / "run")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert probe.policy == training.mixed_precision_policy()
    assert max(probe.groups) == 2 and sum(probe.groups) == 2 * 5
    assert metrics["epochs"] == 2  # stopped early: no better val_loss in epoch 2
    assert metrics["options"]["early_stopping"] == 1
    model = translation.load_translator(tmp_path / "run")
    (result,) = translation.translate(model, ["3 May 1979"])
    assert result.text == "3 May 1979"
    assert finished is None  # a finished run is left alone


@pytest.mark.parametrize(
    "config, options, message",
    [
        (
            translation.TranslationConfig(model="lstm"),
            translation.default_options(),
            "is not a translator",
        ),
        (
            translation.TranslationConfig(),
            translation.default_options(jit=True),
            "--jit is not supported here: XLA cannot compile",
        ),
    ],
)
def test_train_refuses_bad_input_before_writing(tmp_path, config, options, message):
    with pytest.raises(UsageError, match=message):
        translation.train(config, options, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_config_load_and_translate_refuse_bad_input(tmp_path):
    with pytest.raises(ValueError, match="--test-examples must be >= 1"):
        translation.TranslationConfig(test_examples=0)
    with pytest.raises(UsageError, match="holds no model"):
        translation.load_translator(tmp_path / "missing")
    with pytest.raises(UsageError, match="--beam must be in 1..64"):
        translation.check_decoding(0, 0.6)
