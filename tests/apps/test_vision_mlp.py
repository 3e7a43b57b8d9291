"""The multilayer perceptron, and the classic XOR demonstration."""

import keras
import numpy as np
import pytest

import apps

XOR_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
XOR_LABELS = np.array([0, 1, 1, 0])


def _fit_xor(hidden_units, seed=0):
    """Trains on the four XOR points; returns the accuracy on them."""
    keras.utils.set_random_seed(seed)
    model = apps.build(
        "mlp",
        input_shape=(2,),
        classes=2,
        hidden_units=hidden_units,
        activation="tanh",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # 64 copies of the four points, batches of 4: 256 updates in 4 epochs (one
    # epoch per 64 steps keeps Keras's per-epoch overhead small).
    inputs = np.tile(XOR_INPUTS, (64, 1))
    labels = np.tile(XOR_LABELS, 64)
    model.fit(inputs, labels, batch_size=4, epochs=4, verbose=0)
    predicted = np.argmax(model.predict(XOR_INPUTS, verbose=0), axis=1)
    return float(np.mean(predicted == XOR_LABELS))


def test_one_hidden_layer_solves_xor():
    assert _fit_xor(hidden_units=(8,)) == 1.0


def test_no_hidden_layer_cannot_solve_xor():
    # A single-layer perceptron is linear: at most three of the four points.
    assert _fit_xor(hidden_units=()) <= 0.75


def test_depth_and_width_form():
    model = apps.build("mlp", depth=3, width=16, input_shape=(5,), classes=4)
    hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    assert [layer.units for layer in hidden] == [16, 16, 16]
    assert model.get_layer("hidden_1").activation is keras.activations.relu
    assert apps.build("mlp", depth=2).get_layer("hidden_2").units == 128


def test_options():
    model = apps.build(
        "mlp", hidden_units=[32, 16], batch_norm=True, dropout=0.25, activation="gelu"
    )
    names = [layer.name for layer in model.layers]
    assert names[1:] == [
        "flatten",
        "hidden_1",
        "hidden_1_bn",
        "hidden_1_act",
        "hidden_1_dropout",
        "hidden_2",
        "hidden_2_bn",
        "hidden_2_act",
        "hidden_2_dropout",
        "predictions",
    ]
    features = apps.build("mlp", include_top=False, hidden_units=(12,))
    assert features.output_shape == (None, 12)
    with pytest.raises(ValueError, match="pooling must be one of \\(None,\\)"):
        apps.build("mlp", include_top=False, pooling="avg")
