"""Every registered image model: Fashion-MNIST-sized input, training, save/load.

Parametrised over the registry, so a newly registered model is tested at once.
The biggest variants are marked slow: their code paths are those of a smaller
member of the same family, which stays in the fast set.
"""

import keras
import numpy as np
import pytest

import apps

IMAGE_MODELS = apps.list_models(task="image_classification")
# Same builder code as a fast sibling (resnet18, vgg11/vgg16; the _bn variants are
# built and counted in test_vision_architectures), only bigger: minutes on 2 CPUs.
SLOW = {
    "resnet",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg",
    "vgg13",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
}
CLASSES = 10
BATCH = 8


def _models():
    return [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
        for name in IMAGE_MODELS
    ]


def _fashion_mnist_like(seed=0):
    """A tiny batch shaped like Fashion-MNIST: (8, 28, 28, 1) in [0, 1], labels."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, size=(BATCH, 28, 28, 1)).astype("float32")
    labels = np.arange(BATCH) % CLASSES
    return images, labels


@pytest.mark.parametrize("name", _models())
def test_forward_and_keras_round_trip(name, tmp_path):
    keras.utils.set_random_seed(0)
    images, _ = _fashion_mnist_like()
    model = apps.build(name, classes=CLASSES, input_shape=(28, 28, 1))

    predictions = np.asarray(model(images, training=False))
    assert predictions.shape == (BATCH, CLASSES)
    assert np.all(np.isfinite(predictions))
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == model.name
    assert [layer.name for layer in loaded.layers] == [
        layer.name for layer in model.layers
    ]
    np.testing.assert_allclose(
        np.asarray(loaded(images, training=False)), predictions, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", _models())
def test_loss_falls_on_a_tiny_batch(name):
    keras.utils.set_random_seed(0)
    images, labels = _fashion_mnist_like()
    model = apps.build(name, classes=CLASSES, input_shape=(28, 28, 1), dropout=0)
    # Eager steps: for five steps, tracing the train function costs more than
    # running it. Except with grouped convolutions, which Keras's TensorFlow
    # backend compiles with XLA on every eager call on CPU.
    grouped = any(getattr(layer, "groups", 1) > 1 for layer in model.layers)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss="sparse_categorical_crossentropy",
        run_eagerly=not grouped,
    )
    losses = model.fit(images, labels, batch_size=BATCH, epochs=5, verbose=0)
    losses = losses.history["loss"]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses
