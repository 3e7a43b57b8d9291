"""PositionalEncoding: the sinusoidal table, the learned table, length checks."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import layers


@pytest.mark.parametrize("depth", [6, 5])
def test_sinusoidal_values(depth):
    x = np.zeros((2, 7, depth), dtype="float32")
    y = layers.PositionalEncoding(max_length=10)(x).numpy()
    for pos in range(7):
        for i in range(depth):
            angle = pos / 10000 ** ((i - i % 2) / depth)
            expected = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            assert y[1, pos, i] == pytest.approx(expected, abs=1e-6)


def test_adds_to_the_input(rng):
    x = rng.normal(size=(3, 4, 8)).astype("float32")
    layer = layers.PositionalEncoding(max_length=4, max_wavelength=100.0)
    table = layers.positional.sinusoidal_table(4, 8, 100.0)
    np.testing.assert_allclose(layer(x), x + table, rtol=1e-6)
    assert layer.weights == []


def test_learned_table(rng):
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    layer = layers.PositionalEncoding(max_length=6, mode="learned")
    y = layer(x)
    assert [w.shape for w in layer.trainable_weights] == [(6, 4)]
    np.testing.assert_allclose(y, x + layer.table.numpy()[:3], rtol=1e-6)


def test_too_long_static_input_is_an_error():
    with pytest.raises(ValueError, match=r"length \(9\) exceeds max_length=8"):
        layers.PositionalEncoding(max_length=8)(np.zeros((1, 9, 4), "float32"))
    with pytest.raises(ValueError, match="exceeds max_length=8"):
        layers.PositionalEncoding(max_length=8)(keras.Input((9, 4)))


def test_too_long_dynamic_input_is_an_error():
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, layers.PositionalEncoding(max_length=8)(inputs))
    model(np.zeros((1, 8, 4), "float32"))
    with pytest.raises(ValueError, match="exceeds max_length=8"):
        model(np.zeros((1, 9, 4), "float32"))  # eager: the length is known
    graph = tf.function(model, input_signature=[tf.TensorSpec((None, None, 4))])
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="longer than max_length=8"
    ):
        graph(np.zeros((1, 9, 4), "float32"))


def test_keras_mask_passes_through():
    tokens = np.array([[1, 2, 0]])
    embedded = keras.layers.Embedding(5, 4, mask_zero=True)(tokens)
    encoded = layers.PositionalEncoding(max_length=3)(embedded)
    np.testing.assert_array_equal(encoded._keras_mask, [[True, True, False]])


@pytest.mark.parametrize("mode", ["sinusoidal", "learned"])
def test_serialisation(layer_check, rng, mode):
    layer_check(
        layers.PositionalEncoding,
        {"max_length": 5, "mode": mode, "max_wavelength": 500.0},
        [rng.normal(size=(2, 5, 6)).astype("float32")],
        expected_output_shape=(2, 5, 6),
        expected_num_trainable_weights=1 if mode == "learned" else 0,
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_length": 0}, r"max_length must be a positive int.*max_length=0"),
        ({"max_length": 5, "mode": "rotary"}, r"mode must be one of .*'rotary'"),
        ({"max_length": 5, "max_wavelength": 0}, r"max_wavelength must be > 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.PositionalEncoding(**kwargs)
