"""TransposedConv2D against keras.layers.Conv2DTranspose and a NumPy reference."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import layers


def keras_output_length(n, k, s, padding, output_padding):
    if padding == "valid":
        if output_padding is None:
            output_padding = max(k, s) - k
        return (n - 1) * s + k + output_padding
    if output_padding is None:
        return n * s
    return (n - 1) * s + k % 2 + output_padding


def numpy_conv_transpose(x, kernel, strides, padding, output_padding):
    """Scatter each input pixel through the kernel, then crop like TF's "SAME"."""
    batch, height, width, _ = x.shape
    kh, kw, filters, _ = kernel.shape
    (sh, sw), (oph, opw) = strides, output_padding
    full = np.zeros((batch, (height - 1) * sh + kh, (width - 1) * sw + kw, filters))
    for i, j in itertools.product(range(height), range(width)):
        full[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :] += np.einsum(
            "bc,uvfc->buvf", x[:, i, j, :], kernel
        )
    out = []
    for n, k, s, op in ((height, kh, sh, oph), (width, kw, sw, opw)):
        length = keras_output_length(n, k, s, padding, op)
        before = 0
        if padding == "same":
            before = max((n - 1) * s + k - length, 0) // 2
        out.append((before, length))
    (top, out_h), (left, out_w) = out
    result = np.zeros((batch, out_h, out_w, filters))
    crop = full[:, top : top + out_h, left : left + out_w, :]
    result[:, : crop.shape[1], : crop.shape[2], :] = crop
    return result


CASES = [
    (kernel, stride, padding, output_padding)
    for kernel in (1, 2, 3, 4)
    for stride in (1, 2, 3)
    for padding in ("valid", "same")
    for output_padding in (None, *range(stride))
]


def _keras_fails(kernel, padding, output_padding):
    # Keras' TF backend hands this case to conv2d_transpose(padding="SAME"),
    # which rejects it; we pass the padding explicitly and it works.
    return padding == "same" and kernel % 2 == 0 and output_padding == 0


@pytest.mark.parametrize("kernel, stride, padding, output_padding", CASES)
def test_matches_keras_and_numpy(rng, kernel, stride, padding, output_padding):
    x = rng.normal(size=(2, 4, 3, 3)).astype("float32")
    ours = layers.TransposedConv2D(
        2, kernel, strides=stride, padding=padding, output_padding=output_padding
    )
    ours.build(x.shape)
    kernel_values = rng.normal(size=(kernel, kernel, 2, 3)).astype("float32")
    bias = rng.normal(size=(2,)).astype("float32")
    ours.set_weights([kernel_values, bias])
    y = ours(x).numpy()

    op = (0, 0) if output_padding is None else (output_padding,) * 2
    if output_padding is None and padding == "valid":
        op = (max(kernel, stride) - kernel,) * 2
    if output_padding is None and padding == "same":
        # n * s == (n - 1) * s + k % 2 + op with op = s - k % 2
        op = (stride - kernel % 2,) * 2
    expected = numpy_conv_transpose(x, kernel_values, (stride, stride), padding, op)
    np.testing.assert_allclose(y, expected + bias, rtol=1e-5, atol=1e-5)
    assert ours.compute_output_shape(x.shape) == y.shape

    if not _keras_fails(kernel, padding, output_padding):
        reference = keras.layers.Conv2DTranspose(
            2, kernel, strides=stride, padding=padding, output_padding=output_padding
        )
        reference.build(x.shape)
        reference.set_weights(ours.get_weights())
        np.testing.assert_allclose(y, reference(x), rtol=1e-5, atol=1e-5)


def test_rectangular_kernel_and_strides_match_keras(rng):
    x = rng.normal(size=(1, 3, 5, 2)).astype("float32")
    kwargs = dict(kernel_size=(3, 2), strides=(2, 3), output_padding=(1, 2))
    for padding in ("valid", "same"):
        reference = keras.layers.Conv2DTranspose(4, padding=padding, **kwargs)
        expected = reference(x)
        ours = layers.TransposedConv2D(4, padding=padding.upper(), **kwargs)
        ours.build(x.shape)
        assert [w.shape for w in ours.weights] == [w.shape for w in reference.weights]
        ours.set_weights(reference.get_weights())
        np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=1e-5)


def test_dynamic_batch_and_spatial_sizes(rng):
    inputs = keras.Input((None, None, 3))
    layer = layers.TransposedConv2D(
        2, 3, strides=2, padding="same", output_padding=1, activation="relu"
    )
    model = keras.Model(inputs, layer(inputs))
    assert model.output_shape == (None, None, None, 2)
    reference = keras.layers.Conv2DTranspose(
        2, 3, strides=2, padding="same", output_padding=1, activation="relu"
    )
    reference.build((None, None, None, 3))
    reference.set_weights(layer.get_weights())

    serve = tf.function(
        model, input_signature=[tf.TensorSpec((None, None, None, 3))], jit_compile=True
    )
    for shape in [(1, 5, 4, 3), (3, 2, 7, 3)]:
        x = rng.normal(size=shape).astype("float32")
        np.testing.assert_allclose(model(x), reference(x), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(serve(x), reference(x), rtol=1e-5, atol=1e-5)


def test_serialisation_and_shape(layer_check, rng):
    x = rng.normal(size=(2, 3, 3, 2)).astype("float32")
    layer_check(
        layers.TransposedConv2D,
        {
            "filters": 4,
            "kernel_size": (3, 2),
            "strides": (2, 2),
            "padding": "same",
            "output_padding": (1, 0),
            "activation": "tanh",
            "use_bias": True,
            "kernel_regularizer": "l2",
        },
        [x],
        expected_output_shape=(2, 6, 4, 4),
        expected_num_weights=2,
    )


def test_no_bias(rng):
    layer = layers.TransposedConv2D(3, 2, use_bias=False)
    layer(rng.normal(size=(1, 2, 2, 1)).astype("float32"))
    assert [w.shape for w in layer.weights] == [(2, 2, 3, 1)]


def test_gradient_float64(rng):
    layer = layers.TransposedConv2D(
        2, 3, strides=2, padding="same", output_padding=1, dtype="float64"
    )
    x = tf.constant(rng.normal(size=(1, 2, 3, 2)))
    layer(x)
    theoretical, numerical = tf.test.compute_gradient(layer, [x])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)

    def of_weights(kernel, bias):
        outputs, _ = layer.stateless_call([kernel, bias], [], x)
        return outputs

    weights = [tf.constant(w) for w in layer.get_weights()]
    theoretical, numerical = tf.test.compute_gradient(of_weights, weights)
    for ours, finite_differences in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(ours, finite_differences, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": 0, "kernel_size": 3}, r"filters must be a positive int"),
        ({"filters": 2, "kernel_size": 0}, r"kernel_size must be .*kernel_size=0"),
        ({"filters": 2, "kernel_size": (3, 3, 3)}, r"kernel_size must be"),
        ({"filters": 2, "kernel_size": 3, "strides": 0}, r"strides must be"),
        (
            {"filters": 2, "kernel_size": 3, "padding": "full"},
            r"padding must be one of \('valid', 'same'\).*padding='full'",
        ),
        (
            {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 2},
            r"output_padding must be smaller than strides.*output_padding=\(2, 2\)",
        ),
        (
            {"filters": 2, "kernel_size": 3, "output_padding": 1},
            r"output_padding must be smaller than strides",
        ),
        (
            {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": -1},
            r"output_padding must be .*>= 0",
        ),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.TransposedConv2D(**kwargs)
