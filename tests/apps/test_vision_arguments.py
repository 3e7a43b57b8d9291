"""Arguments are validated before anything is built, with messages that help."""

import inspect
import re

import keras
import numpy as np
import pytest

import apps
from apps.cli import UsageError, check_builder_options
from apps.registry import UnknownModelError

IMAGE_MODELS = apps.list_models(task="image_classification")


def _takes(name, argument):
    parameters = inspect.signature(apps.get_model_info(name).builder).parameters
    return argument in parameters or any(
        p.kind is p.VAR_KEYWORD for p in parameters.values()
    )


def test_unknown_model_suggests_the_closest():
    with pytest.raises(UnknownModelError, match="Did you mean 'resnet50'"):
        apps.build("resnet-5O")
    with pytest.raises(ValueError, match="Unknown model name: 'alexnett'"):
        apps.build("alexnett")


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("pooling", ["mean", "AVG", 1, True])
def test_bad_pooling(name, pooling):
    with pytest.raises(ValueError, match=r"pooling must be one of .*Received: pooling"):
        apps.build(name, include_top=False, pooling=pooling)


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("activation", ["softmaxx", 3, "no_such_activation"])
def test_bad_classifier_activation(name, activation):
    with pytest.raises(ValueError, match="classifier_activation must be"):
        apps.build(name, classifier_activation=activation)


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("dropout", [1.0, -0.1, 1.5, "0.5", True])
def test_bad_dropout(name, dropout):
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
        apps.build(name, dropout=dropout)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_missing_weights_file(name, tmp_path):
    missing = tmp_path / "missing.weights.h5"
    with pytest.raises(ValueError, match="No such file") as caught:
        apps.build(name, weights=str(missing))
    assert str(missing) in str(caught.value)
    with pytest.raises(ValueError, match="no pretrained weights are downloaded"):
        apps.build(name, weights="imagenet")


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("classes", [0, -3, 2.5, "10"])
def test_bad_classes(name, classes):
    with pytest.raises(ValueError, match="classes must be a positive integer"):
        apps.build(name, classes=classes)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_input_size_below_the_minimum_names_it(name):
    if not _takes(name, "resize"):
        pytest.skip(f"{name} accepts any input size")
    minimum = apps.get_model_info(name).min_input_size
    too_small = (minimum - 1, minimum + 5, 1)
    with pytest.raises(ValueError, match=rf"at least {minimum}\b") as caught:
        apps.build(name, input_shape=too_small, resize=False)
    assert "input_shape" in str(caught.value)
    assert re.search(r"too small for \w+", str(caught.value))
    # The minimum itself is accepted, natively.
    model = apps.build(name, input_shape=(minimum, minimum, 1), resize=False)
    assert "resize" not in {layer.name for layer in model.layers}
    # An explicit resize target below the minimum is refused too.
    with pytest.raises(ValueError, match=rf"resize is too small .* {minimum}\b"):
        apps.build(name, input_shape=(64, 64, 1), resize=minimum - 1)


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("input_shape", [(28, 28), (0, 28, 1), (28, 28, None), "28"])
def test_bad_input_shape(name, input_shape):
    if name == "mlp" and input_shape == (28, 28):
        pytest.skip("an MLP takes inputs of any rank")
    with pytest.raises(ValueError, match="input_shape must be"):
        apps.build(name, input_shape=input_shape)


@pytest.mark.parametrize("resize", ["yes", (32,), 2.5, True])
def test_bad_resize(resize):
    with pytest.raises(ValueError, match="resize must be 'auto', False"):
        apps.build("vgg11", input_shape=(28, 28, 1), resize=resize)


def test_resize_options():
    auto = apps.build("alexnet", input_shape=(28, 28, 1), classes=10)
    assert tuple(auto.get_layer("resize").output.shape[1:]) == (63, 63, 1)
    fixed = apps.build("alexnet", input_shape=(28, 28, 1), classes=10, resize=96)
    assert tuple(fixed.get_layer("resize").output.shape[1:]) == (96, 96, 1)
    lenet = apps.build("lenet5", input_shape=(28, 28, 1), resize=(40, 36))
    assert tuple(lenet.get_layer("resize").output.shape[1:]) == (40, 36, 1)
    assert "pad" not in {layer.name for layer in lenet.layers}
    with pytest.raises(ValueError, match="at least 32"):
        apps.build("lenet5", input_shape=(28, 28, 1), resize=False)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("vgg16", {"input_shape": (None, None, 3)}, "height and width must be known"),
        ("lenet5", {"activation": "squash"}, "activation must be"),
        ("lenet5", {"pool_type": "min"}, "pool_type must be one of"),
        ("alexnet", {"groups": 3}, r"groups must be one of \(1, 2\)"),
        ("alexnet", {"groups": True}, "groups must be one of"),
        ("alexnet", {"normalization": "layernorm"}, "normalization must be one of"),
        ("vgg", {"convs_per_stage": ()}, "convs_per_stage must be a non-empty"),
        ("vgg", {"convs_per_stage": (2, 0)}, "convs_per_stage must be"),
        ("vgg", {"width": 0}, "width must be a positive integer"),
        ("vgg16", {"batch_norm": "yes"}, "batch_norm must be True or False"),
        ("resnet", {"block": "wide"}, "block must be one of"),
        ("resnet", {"blocks_per_stage": "3463"}, "blocks_per_stage must be"),
        ("resnet18", {"small_inputs": 1}, "small_inputs must be True or False"),
        ("googlenet", {"factorized": "yes"}, "factorized must be one of"),
        ("googlenet", {"aux_dropout": 1}, "aux_dropout must be a number"),
        (
            "googlenet",
            {"aux_classifiers": True, "include_top": False},
            "aux_classifiers=True needs include_top=True",
        ),
        (
            "googlenet",
            {"aux_classifiers": True, "input_shape": (64, 64, 3), "resize": False},
            "at least 65",
        ),
        ("mlp", {"hidden_units": (8,), "depth": 2}, "not both"),
        ("mlp", {"hidden_units": (8, -1)}, "hidden_units must be"),
        ("mlp", {"depth": -1}, "depth must be an integer >= 0"),
        ("mlp", {"activation": "nope"}, "activation must be"),
        ("mlp", {"include_top": "yes"}, "include_top must be True or False"),
        ("lenet5", {"name": ""}, "name must be a non-empty string"),
        ("lenet5", {"weights": 3}, "weights must be None"),
    ],
)
def test_family_options_are_validated(name, options, message):
    with pytest.raises(ValueError, match=message):
        apps.build(name, **options)


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError):
        apps.build("vgg16", no_such_option=1)


@pytest.mark.parametrize(
    "name, family, fixed",
    [
        ("resnet18", "resnet", {"block", "blocks_per_stage"}),
        ("resnet152", "resnet", {"block", "blocks_per_stage"}),
        ("vgg11", "vgg", {"convs_per_stage"}),
        ("vgg16_bn", "vgg", {"convs_per_stage", "batch_norm"}),
    ],
)
def test_variants_take_their_family_options_but_what_they_fix(name, family, fixed):
    # The command lines' --model-option check and the registry's recipe check read
    # these signatures: a variant names the options it takes, not **options.
    info = apps.get_model_info(name)
    parameters = inspect.signature(info.builder).parameters
    family_parameters = inspect.signature(apps.get_model_info(family).builder)
    assert set(parameters) == set(family_parameters.parameters) - fixed
    assert parameters["name"].default == name
    assert all(p.kind is p.KEYWORD_ONLY for p in parameters.values())
    with pytest.raises(UsageError, match=r"does not take \['foo'\]. Its options: \["):
        check_builder_options(info, {"foo": 1})
    with pytest.raises(UsageError, match=rf"does not take \['{min(fixed)}'\]"):
        check_builder_options(info, {min(fixed): 1})


def test_weights_file_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    images = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    model = apps.build("lenet5")
    expected = np.asarray(model(images))

    weights_file = tmp_path / "lenet5.weights.h5"
    model.save_weights(weights_file)
    loaded = apps.build("lenet5", weights=str(weights_file))
    np.testing.assert_allclose(np.asarray(loaded(images)), expected, rtol=1e-6)

    keras_file = tmp_path / "lenet5.keras"
    model.save(keras_file)
    loaded = apps.build("lenet5", weights=keras_file)  # a path-like works too
    np.testing.assert_allclose(np.asarray(loaded(images)), expected, rtol=1e-6)

    with pytest.raises(ValueError):  # other architecture: clear shape error
        apps.build("lenet5", classes=3, weights=str(keras_file))
