"""Every hypermodel builds its registered model for default and sampled values."""

import keras
import keras_tuner
import numpy as np
import pytest

from apps import training
from tuning import hypermodels

INPUT_SHAPE, CLASSES = (28, 28, 1), 10
# Fixed options that keep the big families light on a CPU.
LIGHT = {"vgg": {"fc_units": 32}}
SAMPLES = 1  # a sampled set per family, beside the defaults (10 families)


def _hypermodel(name, **kwargs):
    return hypermodels.hypermodel_for(
        name, INPUT_SHAPE, CLASSES, **{**LIGHT.get(name, {}), **kwargs}
    )


def _sampled(space, seed):
    """Random values from a search space (as the random-search oracle draws them)."""
    sample = keras_tuner.HyperParameters()
    for index, parameter in enumerate(space.space):
        sample.merge([parameter])
        sample.values[parameter.name] = parameter.random_sample(seed * 100 + index)
    return sample


def _depth_seen(name, model):
    """The depth the built model really has, counted from its layer names."""
    names = {layer.name for layer in model.layers}

    def count(pattern):
        index = 0
        while pattern.format(index + 1) in names:
            index += 1
        return index

    if name == "mlp":
        return count("hidden_{}")
    if name == "vgg":
        return count("block1_conv{}")
    if name == "resnet":
        return count("conv2_block{}_out")
    if name == "lenet5":
        return sum(n in names for n in ("c1", "c3", "c5"))
    return count(f"{name}_{{}}")


def test_every_family_of_the_issue_has_a_hypermodel():
    tunable = hypermodels.tunable_models()
    for name in ("mlp", "vgg", "resnet", "lenet5"):
        assert name in tunable
    if not {"lstm", "gru", "rnn"} & set(tunable):
        pytest.skip("no recurrent model is registered in this checkout (apps.sequence)")


@pytest.mark.parametrize("name", hypermodels.tunable_models())
def test_defaults_build_the_default_model(name):
    hypermodel = _hypermodel(name)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    for tuned in hypermodels.TUNED:
        assert tuned in hp.values, tuned
    assert hp.values["learning_rate"] == pytest.approx(1e-3)  # Adam's default
    builder_dropout = {"vgg": 0.5}.get(name, 0.0)
    assert hp.values["dropout"] == pytest.approx(builder_dropout)
    assert model.output_shape == (None, CLASSES)
    assert model.optimizer is not None  # compiled, ready for the training core
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert _depth_seen(name, model) == hp.values["depth"]
    keras.backend.clear_session()


@pytest.mark.parametrize("name", hypermodels.tunable_models())
def test_sampled_values_build_what_they_say(name):
    hypermodel = _hypermodel(name)
    space = keras_tuner.HyperParameters()
    hypermodel.build(space)  # declares the space (and builds the default model)
    for seed in range(SAMPLES):
        hp = _sampled(space, seed)
        keras.backend.clear_session()
        model = hypermodel.build(hp)
        assert model.output_shape == (None, CLASSES)
        assert _depth_seen(name, model) == hp.values["depth"]
        assert float(model.optimizer.learning_rate) == pytest.approx(
            hp.values["learning_rate"], rel=1e-6
        )
        assert 1e-4 <= hp.values["learning_rate"] <= 1e-2
        assert 0.0 <= hp.values["dropout"] <= 0.5
        dropouts = [
            layer.rate
            for layer in model.layers
            if isinstance(layer, keras.layers.Dropout)
        ]
        assert all(rate == pytest.approx(hp.values["dropout"]) for rate in dropouts)
        prediction = np.asarray(model(np.zeros((2, *INPUT_SHAPE), "float32")))
        assert prediction.shape == (2, CLASSES) and np.isfinite(prediction).all()
    keras.backend.clear_session()


def test_learning_rate_range_follows_the_optimiser():
    hypermodel = _hypermodel("mlp", options=training.TrainOptions(optimizer="sgd"))
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    (space,) = [p for p in hp.space if p.name == "learning_rate"]
    assert (space.min_value, space.max_value, space.sampling) == (1e-3, 0.1, "log")
    assert hp.values["learning_rate"] == pytest.approx(0.01)


def test_lenet_depth_is_fixed_and_documented():
    hp = keras_tuner.HyperParameters()
    _hypermodel("lenet5").build(hp)
    (depth,) = [p for p in hp.space if p.name == "depth"]
    assert isinstance(depth, keras_tuner.engine.hyperparameters.Fixed)
    assert {"activation", "pool_type"} <= set(hp.values)


def test_resnet_takes_the_small_input_stem_for_small_images():
    assert _hypermodel("resnet").builder_options["small_inputs"] is True
    big = hypermodels.hypermodel_for("resnet", (96, 96, 3), CLASSES)
    assert big.builder_options["small_inputs"] is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 3}, "sets ['depth'] itself"),
        ({"no_such_option": 1}, "does not take ['no_such_option']"),
    ],
)
def test_bad_fixed_options_are_refused(kwargs, message):
    with pytest.raises(
        ValueError, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        _hypermodel("mlp", **kwargs)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("vgg16", "fixed configuration of the 'vgg' family"),
        ("nosuchnet", "Unknown model to tune"),
        ("msp", "Did you mean 'mlp'"),
    ],
)
def test_unknown_models_name_what_can_be_tuned(name, message):
    with pytest.raises(hypermodels.UnknownHyperModelError, match=message):
        hypermodels.resolve_model(name)


def test_a_family_with_one_tunable_model_resolves_to_it():
    assert hypermodels.resolve_model("lenet") == "lenet5"


def test_input_shape_and_classes_are_checked():
    with pytest.raises(ValueError, match="input_shape"):
        hypermodels.hypermodel_for("mlp", (0, 28), CLASSES)
    with pytest.raises(ValueError, match="classes"):
        hypermodels.hypermodel_for("mlp", INPUT_SHAPE, 1)


def test_a_nan_fails_the_trial_without_retry(monkeypatch, tmp_path):
    hypermodel = _hypermodel("mlp")
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)

    def nan_fit(*args, **kwargs):
        raise training.TrainingError("loss became nan at batch 0.")

    monkeypatch.setattr(training, "fit", nan_fit)
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="nan"):
        hypermodel.fit(hp, model, None, None, run_dir=tmp_path)


@pytest.fixture
def own_registry(monkeypatch):
    """The registry, restored after the test (it may register models)."""
    from apps import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return registry


def test_a_registry_entry_with_a_search_space_is_tunable(own_registry):
    """Adding a family to the search is its registry entry, not a second list."""
    from apps.search_spaces import Choice

    mlp = own_registry.get_model_info("mlp").builder
    own_registry.register_model(
        "toy_mlp",
        family="toy",
        paper="none",
        hyperparameters={"width": Choice((8, 16), default=8), "dropout": None},
    )(lambda **kwargs: mlp(depth=1, **kwargs))
    assert "toy_mlp" in hypermodels.tunable_models()
    assert own_registry.get_model_info("toy_mlp").hyperparameters == (
        "width",
        "dropout",
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodels.hypermodel_for("toy_mlp", INPUT_SHAPE, CLASSES).build(hp)
    assert hp.values["width"] == 8 and model.get_layer("hidden_1").units == 8
    keras.backend.clear_session()


@pytest.mark.parametrize(
    ("space", "message"),
    [({"width": 3}, "must be an apps.search_spaces spec"), ({"nope": None}, "nope")],
)
def test_a_bad_search_space_is_refused_at_registration(own_registry, space, message):
    def toy(width=1, dropout=0.0):
        return None

    with pytest.raises(ValueError, match=message):
        own_registry.register_model(family="toy", paper="none", hyperparameters=space)(
            toy
        )
