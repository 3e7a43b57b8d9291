"""apps.tasks.generation: the GAN task a notebook calls, without a command line."""

import keras
import pytest
from probes import StepGroups

from apps import optimizers
from apps.cli import UsageError
from apps.tasks import generation


def _tiny(**changes):
    settings = {"model": "dcgan", "dataset": "fashion_mnist", "width": 8}
    settings.update(latent_dim=8, quality_samples=0, samples=4)
    return generation.GenerationConfig(**{**settings, **changes})


def test_train_calls_the_extra_callback_and_honours_the_options(
    fashion_mnist, tmp_path
):
    options = generation.default_options(
        epochs=1,
        steps_per_epoch=5,
        batch_size=8,
        seed=0,
        steps_per_execution=2,
        optimizer="sgd",
    )
    probe = StepGroups()
    metrics = generation.train(_tiny(), options, tmp_path / "run", [probe])
    assert sum(probe.groups) == 5 and max(probe.groups) == 2  # 2 steps per call
    assert metrics["epochs"] == 1 and metrics["steps_per_epoch"] == 5
    assert metrics["options"]["optimizer"] == "sgd"
    gan = generation.load_gan(tmp_path / "run" / "model.keras")
    for optimizer, name in ((gan.d_optimizer, "d"), (gan.g_optimizer, "g")):
        assert isinstance(optimizer, optimizers.SGDL2)
        assert optimizer.name == f"{name}_optimizer"
        # sgd's usual rate: the GAN's 2e-4 is Adam's
        assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert generation.train(_tiny(), options, tmp_path / "run") is None  # finished


def test_the_default_optimisers_are_dcgans():
    options = generation.default_options()
    assert (options.optimizer, options.learning_rate) == ("adam", 2e-4)
    assert (options.lr_schedule, options.batch_size) == ("constant", 64)
    for optimizer in generation.make_optimizers(options):
        assert type(optimizer) is keras.optimizers.Adam
        assert optimizer.beta_1 == 0.5
        assert float(optimizer.learning_rate) == pytest.approx(2e-4)
    d_optimizer, _ = generation.make_optimizers(
        generation.default_options(weight_decay=0.01), beta_1=0.6
    )
    assert isinstance(d_optimizer, keras.optimizers.AdamW) and d_optimizer.beta_1 == 0.6


@pytest.mark.parametrize(
    "config, options, message",
    [
        (
            _tiny(model="lenet5"),
            generation.default_options(),
            "lenet5 is not a generative model",
        ),
        (
            _tiny(),
            generation.default_options(early_stopping=2),
            "--early-stopping is not supported here: a GAN has no validation loss",
        ),
        (_tiny(beta_1=0.9), generation.default_options(optimizer="sgd"), "Adam's"),
    ],
)
def test_train_refuses_bad_input_before_writing(tmp_path, config, options, message):
    with pytest.raises(UsageError, match=message):
        generation.train(config, options, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_config_and_load_refuse_bad_input(tmp_path):
    with pytest.raises(ValueError, match="--d-steps must be >= 1"):
        _tiny(d_steps=0)
    with pytest.raises(UsageError, match="does not exist"):
        generation.load_gan(tmp_path / "none.keras")
    classifier = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    classifier.save(tmp_path / "dense.keras")
    with pytest.raises(UsageError, match="holds a Sequential, not a GAN"):
        generation.load_gan(tmp_path / "dense.keras")
