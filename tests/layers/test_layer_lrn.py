"""LocalResponseNormalization against tf.nn.local_response_normalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import layers


@pytest.mark.parametrize("size", [1, 3, 5, 7])
@pytest.mark.parametrize("k, alpha, beta", [(2.0, 1e-4, 0.75), (1.0, 0.05, 0.5)])
def test_matches_tf_lrn(rng, size, k, alpha, beta):
    x = rng.normal(scale=5.0, size=(2, 3, 3, 9)).astype("float32")
    layer = layers.LocalResponseNormalization(size=size, k=k, alpha=alpha, beta=beta)
    # TF's alpha is not divided by the window size either: the paper's convention.
    expected = tf.nn.local_response_normalization(
        x, depth_radius=(size - 1) // 2, bias=k, alpha=alpha, beta=beta
    )
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_caffe_scaling_divides_alpha_by_size(rng):
    x = rng.normal(scale=5.0, size=(2, 4, 4, 8)).astype("float32")
    caffe = layers.LocalResponseNormalization(
        size=5, k=1.0, alpha=5e-3, beta=0.75, alpha_scaling="caffe"
    )
    expected = tf.nn.local_response_normalization(
        x, depth_radius=2, bias=1.0, alpha=5e-3 / 5, beta=0.75
    )
    np.testing.assert_allclose(caffe(x), expected, rtol=1e-5, atol=1e-6)
    assert caffe.effective_alpha == pytest.approx(1e-3)


def test_defaults_are_alexnets():
    config = layers.LocalResponseNormalization().get_config()
    assert (config["size"], config["k"], config["alpha"], config["beta"]) == (
        5,
        2.0,
        1e-4,
        0.75,
    )
    assert config["alpha_scaling"] == "paper"


def test_formula_by_hand():
    # One pixel, channels [1, 2, 3], size 3: the window of channel 0 is {0, 1}.
    x = np.array([[1.0, 2.0, 3.0]], dtype="float32")
    y = layers.LocalResponseNormalization(size=3, k=1.0, alpha=0.1, beta=1.0)(x)
    sums = np.array([1 + 4, 1 + 4 + 9, 4 + 9], dtype="float32")
    np.testing.assert_allclose(y, x / (1.0 + 0.1 * sums), rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 6), (2, 3, 6), (1, 2, 2, 2, 6)])
def test_any_rank(rng, shape):
    x = rng.normal(size=shape).astype("float32")
    y = layers.LocalResponseNormalization(size=3)(x)
    flat = x.reshape(1, 1, -1, shape[-1])
    expected = tf.nn.local_response_normalization(
        flat, depth_radius=1, bias=2.0, alpha=1e-4, beta=0.75
    )
    np.testing.assert_allclose(y, np.reshape(expected, shape), rtol=1e-5, atol=1e-6)


def test_serialisation_and_shape(layer_check, rng):
    x = rng.normal(size=(2, 4, 4, 6)).astype("float32")
    layer_check(
        layers.LocalResponseNormalization,
        {"size": 3, "k": 1.0, "alpha": 1e-3, "beta": 0.5, "alpha_scaling": "caffe"},
        [x],
        expected_output_shape=(2, 4, 4, 6),
        expected_num_weights=0,
    )


def test_gradient_float64(rng):
    layer = layers.LocalResponseNormalization(size=3, alpha=0.1, dtype="float64")
    x = tf.constant(rng.normal(size=(1, 2, 2, 5)))
    theoretical, numerical = tf.test.compute_gradient(layer, [x])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


def test_float16_does_not_overflow():
    # a**2 = 1e6 overflows float16; the sum of squares is taken in float32.
    x = np.full((1, 1, 1, 5), 1000.0, dtype="float32")
    layer = layers.LocalResponseNormalization(dtype="mixed_float16")
    y = layer(x)
    assert y.dtype == tf.float16
    expected = tf.nn.local_response_normalization(
        x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75
    )
    np.testing.assert_allclose(y.numpy().astype("float32"), expected, rtol=2e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 0}, r"size must be a positive odd integer.*size=0"),
        ({"size": 4}, r"size must be a positive odd integer.*size=4"),
        ({"size": 2.5}, r"size must be a positive odd integer.*size=2\.5"),
        ({"alpha_scaling": "torch"}, r"alpha_scaling must be one of.*'torch'"),
        ({"k": -1.0}, r"k must be >= 0.*k=-1\.0"),
        ({"alpha": -0.1}, r"alpha must be >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.LocalResponseNormalization(**kwargs)


def test_rank_one_input_is_rejected():
    with pytest.raises(ValueError, match="rank >= 2"):
        layers.LocalResponseNormalization()(keras.ops.ones((4,)))
