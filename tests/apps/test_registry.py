"""The registry: names, metadata, build, suggestions for unknown names."""

import dataclasses
import inspect

import pytest

import apps
from apps import registry
from apps.registry import ModelInfo, UnknownModelError

IMAGE_MODELS = apps.list_models(task="image_classification")


@pytest.fixture
def scratch_registry(monkeypatch):
    """A registry holding only what a test registers."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    return registry


def test_apps_reexports_build_and_list_models():
    assert apps.build is registry.build
    assert apps.list_models is registry.list_models
    assert apps.get_model_info is registry.get_model_info


def test_every_family_is_registered():
    expected = {
        "lenet5",
        "alexnet",
        "vgg",
        "vgg11",
        "vgg13",
        "vgg16",
        "vgg19",
        "vgg11_bn",
        "vgg13_bn",
        "vgg16_bn",
        "vgg19_bn",
        "googlenet",
        "resnet",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "mlp",
    }
    assert expected <= set(IMAGE_MODELS)


def test_list_models_is_sorted_and_filters():
    names = apps.list_models()
    assert names == sorted(names)
    assert apps.list_models("resnet*") == [
        "resnet",
        "resnet101",
        "resnet152",
        "resnet18",
        "resnet34",
        "resnet50",
    ]
    assert apps.list_models("vgg*_bn") == [
        "vgg11_bn",
        "vgg13_bn",
        "vgg16_bn",
        "vgg19_bn",
    ]
    assert apps.list_models("no_such_*") == []
    assert apps.list_models(task="no_such_task") == []


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_metadata(name):
    info = registry.get_model_info(name)
    assert isinstance(info, ModelInfo)
    assert info.name == name and name == name.lower()
    assert info.task == "image_classification"
    assert info.family and info.paper and info.description
    height, width, channels = info.default_input_shape
    assert min(height, width, channels) >= 1 and info.min_input_size >= 1
    # Every advertised hyper-parameter is an argument the builder takes.
    parameters = inspect.signature(info.builder).parameters
    accepts_options = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for hyperparameter in info.hyperparameters:
        assert hyperparameter in parameters or accepts_options, hyperparameter
    assert "dropout" in parameters


def test_metadata_values():
    assert registry.get_model_info("lenet5").default_input_shape == (28, 28, 1)
    assert registry.get_model_info("mlp").default_input_shape == (28, 28, 1)
    assert registry.get_model_info("vgg16").default_input_shape == (224, 224, 3)
    assert registry.get_model_info("vgg16").min_input_size == 32
    assert registry.get_model_info("alexnet").min_input_size == 63
    assert registry.get_model_info("lenet5").min_input_size == 32
    assert set(registry.get_model_info("vgg").hyperparameters) >= {
        "dropout",
        "convs_per_stage",
        "width",
    }
    assert set(registry.get_model_info("resnet").hyperparameters) >= {
        "blocks_per_stage",
        "width",
    }
    assert set(registry.get_model_info("mlp").hyperparameters) >= {"depth", "width"}
    assert dict(registry.get_model_info("googlenet").loss_weights) == {
        "predictions": 1.0,
        "aux1": 0.3,
        "aux2": 0.3,
    }
    assert registry.get_model_info("resnet50").loss_weights is None


def test_model_info_is_frozen():
    info = registry.get_model_info("googlenet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.family = "other"
    with pytest.raises(TypeError):
        info.loss_weights["aux1"] = 1.0
    assert isinstance(info.hyperparameters, tuple)


@pytest.mark.parametrize(
    "asked, expected",
    [
        ("resnet-5O", "resnet50"),
        ("ResNet-50", "resnet50"),
        ("resnet_50", "resnet50"),
        ("VGG-16", "vgg16"),
        ("vgg16bn", "vgg16_bn"),
        ("lenet", "lenet5"),
        ("googlenet_v1", "googlenet"),
    ],
)
def test_unknown_name_suggests_the_closest(asked, expected):
    with pytest.raises(UnknownModelError) as caught:
        apps.build(asked)
    assert expected in caught.value.suggestions
    assert repr(expected) in str(caught.value)
    assert repr(asked) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_unknown_name_without_close_match():
    with pytest.raises(UnknownModelError, match="list_models"):
        registry.get_model_info("zzzzzzzzzzzzzzzz")
    with pytest.raises(UnknownModelError):
        registry.get_model_info(None)


def test_build_drops_none_options():
    model = apps.build(
        "lenet5", classes=None, input_shape=None, pooling=None, dropout=None
    )
    assert model.output_shape == (None, 10)
    assert model.input_shape == (None, 28, 28, 1)


def test_build_passes_the_model_name_through():
    assert apps.build("lenet5", name="my_lenet").name == "my_lenet"


def test_build_passes_options_to_the_builder():
    model = apps.build("mlp", classes=3, input_shape=(4,), hidden_units=(5,))
    assert model.output_shape == (None, 3)
    assert [layer.name for layer in model.layers][1:] == ["hidden_1", "predictions"]


def test_register_and_build(scratch_registry):
    @scratch_registry.register_model(
        family="toy",
        paper="none",
        task="sequence_classification",
        default_input_shape=[None],
        hyperparameters=["units"],
    )
    def toy(units=2):
        """A toy builder."""
        return {"units": units}

    info = scratch_registry.get_model_info("toy")
    assert info.description == "A toy builder."
    assert info.default_input_shape == (None,)
    assert info.hyperparameters == ("units",)
    assert scratch_registry.build("toy", units=None) == {"units": 2}
    assert scratch_registry.build("toy", units=5) == {"units": 5}
    assert scratch_registry.list_models(task="sequence_classification") == ["toy"]


def test_duplicate_registration_is_an_error(scratch_registry):
    def builder():
        return None

    scratch_registry.register_model("toy", family="toy", paper="none")(builder)
    with pytest.raises(ValueError, match="already registered"):
        scratch_registry.register_model("toy", family="toy", paper="none")(builder)


@pytest.mark.parametrize("name", ["VGG16", "vgg-16", "1net", "", "a b"])
def test_badly_formed_names_are_refused(scratch_registry, name):
    with pytest.raises(ValueError, match="lowercase"):
        scratch_registry.register_model(name, family="toy", paper="none")(len)


def test_the_recipe_check_reads_a_variants_signature(scratch_registry):
    # A variant passes **options on to its family's builder; the recipe's options
    # are checked against what it takes (blocks.variant's signature), not waved
    # through.
    from apps.recipes import Recipe
    from apps.vision import blocks, resnet

    @blocks.variant(resnet._resnet, "block", "blocks_per_stage")
    def tiny_resnet(name="tiny_resnet", **options):
        """A ResNet variant."""
        return resnet._resnet("basic", (1, 1), name=name, **options)

    fixed = Recipe(model_options={"block": "bottleneck"})
    with pytest.raises(ValueError, match=r"model_options \['block'\] are not"):
        scratch_registry.register_model(family="toy", paper="none", recipe=fixed)(
            tiny_resnet
        )
    small = Recipe(model_options={"small_inputs": True})
    scratch_registry.register_model(family="toy", paper="none", recipe=small)(
        tiny_resnet
    )
    model = scratch_registry.build("tiny_resnet", input_shape=(28, 28, 1), classes=3)
    assert model.name == "tiny_resnet" and model.output_shape == (None, 3)
