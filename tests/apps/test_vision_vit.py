"""ViT (apps/vision/vit.py) at a small width: a training step, save/load, its options.

The registry-wide image-model tests build it at its default size too; these build
it small, so that they stay fast, and check what only ViT has (patches, the class
token, the representation).
"""

import keras
import numpy as np
import pytest
from model_checks import trains_a_step_and_round_trips

import apps

CLASSES = 10
BATCH = 8
SMALL = {"hidden_size": 16, "depth": 1, "num_heads": 2, "mlp_dim": 32}


def test_vit_is_an_image_classifier():
    assert "vit" in apps.list_models(task="image_classification")


def test_builds_trains_a_step_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, size=(BATCH, 28, 28, 1)).astype("float32")
    labels = np.arange(BATCH) % CLASSES
    model = apps.build("vit", input_shape=(28, 28, 1), classes=CLASSES, **SMALL)
    trains_a_step_and_round_trips(model, images, labels, tmp_path / "vit.keras")


def test_vit_options():
    keras.utils.set_random_seed(0)
    seven = apps.build("vit", patch_size=7, **SMALL)
    assert tuple(seven.get_layer("patches").output.shape) == (None, 16, 16)
    assert tuple(seven.get_layer("position_embedding").output.shape) == (None, 17, 16)
    mean = apps.build("vit", representation="mean", **SMALL)
    assert "class_token" not in {layer.name for layer in mean.layers}
    assert tuple(mean.get_layer("position_embedding").output.shape) == (None, 49, 16)
    tokens = apps.build("vit", include_top=False, **SMALL)
    assert tuple(tokens.output.shape) == (None, 50, 16)
    pooled = apps.build("vit", include_top=False, pooling="avg", **SMALL)
    assert tuple(pooled.output.shape) == (None, 16)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"patch_size": 5}, "multiples of patch_size=5"),
        ({"hidden_size": 30, "num_heads": 4}, "multiple of num_heads"),
        ({"representation": "cls"}, "representation must be one of"),
        ({"input_shape": (None, None, 1)}, "height and width must be known"),
        ({"depth": 0}, "depth must be a positive integer"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        apps.build("vit", **options)
