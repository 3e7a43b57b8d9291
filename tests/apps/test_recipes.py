"""Training recipes: precedence flag > recipe > default, validation, the registry's
check of the model options, and what `classify train` takes from a recipe."""

import pytest

import apps
from apps import classify, recipes, registry
from apps.options import TrainOptions

ZOO = (
    "lenet5",
    "mlp",
    "alexnet",
    "vgg11",
    "vgg16",
    "vgg16_bn",
    "googlenet",
    "resnet18",
    "resnet34",
    "resnet50",
    "vit",
    "rnn",
    "lstm",
    "gru",
    "bilstm",
)


def test_flag_beats_recipe_beats_default():
    recipe = recipes.Recipe(epochs=20, learning_rate=2e-3, augment="flip")
    values, sources = recipes.resolve(
        recipe, {"epochs": 3, "augment": None, "unrelated": 1}
    )
    assert (values["epochs"], sources["epochs"]) == (3, "flag")
    assert (values["augment"], sources["augment"]) == ("flip", "recipe")
    assert (values["batch_size"], sources["batch_size"]) == (128, "default")
    assert "unrelated" not in values
    values, sources = recipes.resolve(None, {})
    assert values == dict(recipes.DEFAULTS)
    assert set(sources.values()) == {"default"}


def test_budgets():
    recipe = recipes.Recipe(epochs=30, cpu_budget={"epochs": 2, "steps_per_epoch": 9})
    assert recipe.budget("full") == {"epochs": 30, "steps_per_epoch": None}
    assert recipe.budget("cpu") == {"epochs": 2, "steps_per_epoch": 9}
    assert recipes.Recipe(epochs=5).budget("cpu") == {
        "epochs": 5,
        "steps_per_epoch": None,
    }
    with pytest.raises(ValueError, match="budget must be one of"):
        recipe.budget("gpu")


def test_cpu_budget_may_train_with_other_augmentation():
    recipe = recipes.Recipe(
        epochs=30, augment="flip", cpu_budget={"epochs": 2, "augment": "none"}
    )
    assert recipe.budget("cpu") == {
        "epochs": 2,
        "steps_per_epoch": None,
        "augment": "none",
    }
    # The full budget is the recipe's own augmentation, not the cut's.
    assert "augment" not in recipe.budget("full")
    assert recipe.training()["augment"] == "flip"


def test_cpu_budget_may_train_on_the_whole_training_split():
    recipe = recipes.Recipe(cpu_budget={"epochs": 2, "validation_split": 0.0})
    assert recipe.budget("cpu")["validation_split"] == 0.0
    assert "validation_split" not in recipe.budget("full")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"learning_rate": float("inf")}, "learning_rate must be a positive, finite"),
        ({"weight_decay": 1.5}, r"weight_decay must be in \[0, 1\)"),
        ({"label_smoothing": -0.1}, r"label_smoothing must be in \[0, 1\)"),
        ({"warmup_epochs": -1}, "warmup_epochs must be >= 0"),
        ({"image_size": (28,)}, "image_size must be"),
        ({"cpu_budget": {"hours": 1}}, "cpu_budget takes"),
        ({"cpu_budget": {"epochs": 0}}, "must be a positive integer"),
        ({"cpu_budget": {"augment": 3}}, r"cpu_budget\['augment'\] must be a string"),
        ({"cpu_budget": {"augment": "blur"}}, "augment must name"),
        ({"cpu_budget": {"validation_split": 1.0}}, r"validation_split'\] must be in"),
        ({"cpu_budget": {"validation_split": "0"}}, r"validation_split'\] must be in"),
    ],
)
def test_bad_recipes_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        recipes.Recipe(**fields)


def test_recipe_is_frozen():
    recipe = recipes.Recipe(model_options={"small_inputs": True})
    with pytest.raises(TypeError):
        recipe.model_options["small_inputs"] = False


def test_registry_refuses_a_recipe_option_the_builder_does_not_take(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    def tiny(input_shape=None, classes=10):
        """A builder without **options."""

    bad = recipes.Recipe(model_options={"kernel": 7})
    with pytest.raises(ValueError, match=r"model_options \['kernel'\] are not"):
        registry.register_model("tiny_recipe_test", family="x", paper="y", recipe=bad)(
            tiny
        )
    with pytest.raises(ValueError, match="must be an apps.recipes.Recipe"):
        registry.register_model("tiny_recipe_test", family="x", paper="y", recipe={})(
            tiny
        )


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_has_a_recipe_its_builder_takes(name):
    recipe = apps.get_model_info(name).recipe
    assert recipe is not None and recipe.chosen_by and recipe.input
    assert recipes.describe(recipe)
    if recipe.model_options:  # the builder accepts them at 28x28
        model = apps.build(
            name, input_shape=(28, 28, 1), classes=10, **recipe.model_options
        )
        assert model.output_shape[-1] == 10


def _config(**fields):
    from apps.tasks import classification

    return classification.ClassificationConfig(
        model="lenet5", dataset="fashion_mnist", **fields
    )


def test_classify_fills_unset_flags_and_keeps_given_model_options():
    from apps.tasks import classification

    recipe = apps.get_model_info("lenet5").recipe
    config, values, sources = classification.resolve_recipe(
        _config(model_options={"activation": "tanh"}), {"epochs": 2}
    )
    assert values["epochs"] == 2 and sources["epochs"] == "flag"
    assert values["learning_rate"] == recipe.learning_rate
    assert sources["learning_rate"] == "recipe"
    assert config.model_options == {"pool_type": "max", "activation": "tanh"}
    assert sources["model_options"] == {"activation": "relu", "pool_type": "max"}


def test_classify_without_a_recipe_keeps_the_old_defaults():
    from apps.tasks import classification

    config, values, sources = classification.resolve_recipe(
        _config(), {}, use_recipe=False
    )
    options = TrainOptions(**values)
    assert (options.epochs, options.batch_size, options.optimizer) == (10, 128, "adam")
    assert config.augment == "none" and config.model_options == {}
    assert "model_options" not in sources


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--warmup-epochs", "5", "--epochs", "5"], "warmup_epochs must be"),
        (["--warmup-epochs", "1", "--lr-schedule", "plateau"], "warmup_epochs works"),
        (["--label-smoothing", "1.5"], r"label_smoothing must be in \[0, 1\)"),
    ],
)
def test_bad_recipe_flags_fail_before_training(tmp_path, capsys, argv, message):
    argv = ["train", "--model", "lenet5", "--dataset", "fashion_mnist", *argv]
    assert classify.main([*argv, "--output", str(tmp_path / "run")]) == 2
    assert message.replace("\\", "") in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
