"""Attention layers against NumPy references and keras.layers.MultiHeadAttention."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import layers

B, T, S = 2, 4, 5


def numpy_attention(query, key, value, mask=None):
    """softmax(Q K^T / sqrt(d)) V with zero weight where ``mask`` is False."""
    scores = query @ np.swapaxes(key, -1, -2) / np.sqrt(key.shape[-1])
    if mask is not None:
        mask = np.broadcast_to(mask, scores.shape)
        scores = np.where(mask, scores, -np.inf)
    top = np.max(scores, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    exp = np.exp(scores - top)
    total = exp.sum(axis=-1, keepdims=True)
    weights = np.divide(exp, total, out=np.zeros_like(exp), where=total > 0)
    return weights @ value, weights


def causal(t, s):
    return np.tril(np.ones((t, s), dtype=bool))[None]


@pytest.fixture
def qkv(rng):
    query = rng.normal(size=(B, T, 6)).astype("float32")
    key = rng.normal(size=(B, S, 6)).astype("float32")
    value = rng.normal(size=(B, S, 3)).astype("float32")
    return query, key, value


def random_mask(rng, shape=(B, T, S)):
    mask = rng.random(shape) > 0.4
    mask[..., 0] = True  # every query sees something, except where a test says not
    return mask


# --- ScaledDotProductAttention ------------------------------------------------


@pytest.mark.parametrize("masking", ["none", "boolean", "causal", "both", "broadcast"])
def test_scaled_dot_product_matches_numpy(rng, qkv, masking):
    query, key, value = qkv
    boolean = random_mask(rng)
    mask, kwargs = None, {}
    if masking in ("boolean", "both"):
        mask, kwargs = boolean, {"attention_mask": boolean}
    if masking in ("causal", "both"):
        kwargs["use_causal_mask"] = True
        mask = causal(T, S) if mask is None else mask & causal(T, S)
    if masking == "broadcast":  # a (B, 1, S) padding mask
        mask = boolean[:, :1, :]
        kwargs = {"attention_mask": mask}
    layer = layers.ScaledDotProductAttention()
    outputs, weights = layer(query, value, key, return_attention_scores=True, **kwargs)
    expected, expected_weights = numpy_attention(query, key, value, mask)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    if mask is not None:
        assert np.all(weights.numpy()[~np.broadcast_to(mask, weights.shape)] == 0.0)


def test_scaled_dot_product_key_defaults_to_value(rng):
    x = rng.normal(size=(B, S, 6)).astype("float32")
    q = rng.normal(size=(B, T, 6)).astype("float32")
    layer = layers.ScaledDotProductAttention()
    expected, _ = numpy_attention(q, x, x)
    np.testing.assert_allclose(layer(q, x), expected, rtol=1e-5, atol=1e-6)


def test_scaled_dot_product_extra_batch_axes(rng):
    q = rng.normal(size=(B, 3, T, 4)).astype("float32")
    k = rng.normal(size=(B, 3, S, 4)).astype("float32")
    mask = random_mask(rng)
    outputs = layers.ScaledDotProductAttention()(q, k, attention_mask=mask)
    expected, _ = numpy_attention(q, k, k, mask[:, None])
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)


def test_fully_masked_row_is_zero_not_nan(qkv):
    query, key, value = qkv
    mask = np.ones((B, T, S), dtype=bool)
    mask[0, 1] = False
    for layer in (
        layers.ScaledDotProductAttention(),
        layers.AdditiveAttention(4),
        layers.MultiHeadAttention(2, 3, use_bias=False),
    ):
        outputs, weights = layer(
            query, value, key, attention_mask=mask, return_attention_scores=True
        )
        assert np.all(np.isfinite(outputs)) and np.all(np.isfinite(weights))
        np.testing.assert_array_equal(weights.numpy()[0, ..., 1, :], 0.0)
        # With no biases a zero context gives a zero output.
        np.testing.assert_array_equal(outputs.numpy()[0, 1], 0.0)


def test_keras_masks_propagate(rng):
    tokens = np.array([[3, 1, 4, 0, 0], [5, 9, 2, 6, 0]])
    valid = tokens != 0
    inputs = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 6, mask_zero=True)(inputs)
    attended = layers.ScaledDotProductAttention()(embedded, embedded)
    model = keras.Model(inputs, [embedded, attended])
    embedded_values, outputs = model(tokens)
    mask = valid[:, :, None] & valid[:, None, :]
    expected, _ = numpy_attention(*[embedded_values.numpy()] * 3, mask)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs.numpy()[~valid], 0.0)


# --- AdditiveAttention ----------------------------------------------------------


def numpy_additive(layer, query, key, value, mask=None):
    weights = {w.path.split("/")[-1]: w.numpy() for w in layer.weights}
    hidden = (query @ weights["query_kernel"])[:, :, None, :] + (
        key @ weights["key_kernel"]
    )[:, None, :, :]
    if "bias" in weights:
        hidden = hidden + weights["bias"]
    scores = np.tanh(hidden) @ weights["score_vector"]
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    alpha = exp / exp.sum(axis=-1, keepdims=True)
    return alpha @ value, alpha


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("causal_mask", [False, True])
def test_additive_matches_numpy(rng, qkv, use_bias, causal_mask):
    query, key, value = qkv
    query = query[..., :5]  # query and key sizes may differ
    boolean = random_mask(rng)
    layer = layers.AdditiveAttention(
        7, use_bias=use_bias, bias_initializer="random_normal"
    )
    outputs, weights = layer(
        query,
        value,
        key,
        attention_mask=boolean,
        use_causal_mask=causal_mask,
        return_attention_scores=True,
    )
    mask = boolean & causal(T, S) if causal_mask else boolean
    expected, expected_weights = numpy_additive(layer, query, key, value, mask)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    assert np.all(weights.numpy()[~mask] == 0.0)
    assert len(layer.weights) == (4 if use_bias else 3)


# --- MultiHeadAttention against Keras --------------------------------------------

MHA_CONFIGS = {
    "plain": dict(num_heads=2, key_dim=3),
    "value_dim": dict(num_heads=3, key_dim=2, value_dim=4),
    "output_int": dict(num_heads=2, key_dim=3, output_shape=5),
    "output_tuple": dict(num_heads=2, key_dim=3, value_dim=2, output_shape=(2, 3)),
    "no_bias": dict(num_heads=2, key_dim=4, use_bias=False),
    "dropout": dict(num_heads=2, key_dim=3, dropout=0.3),
}


def keras_pair(config, query, value, key):
    """A Keras MHA with non-zero biases, and ours holding the same weights."""
    reference = keras.layers.MultiHeadAttention(
        **config, bias_initializer="random_normal"
    )
    reference(query, value, key)
    ours = layers.MultiHeadAttention(**config)
    ours(query, value, key)
    assert [w.shape for w in ours.weights] == [w.shape for w in reference.weights]
    ours.set_weights(reference.get_weights())
    return ours, reference


@pytest.mark.parametrize("config", MHA_CONFIGS.values(), ids=MHA_CONFIGS.keys())
@pytest.mark.parametrize("masking", ["none", "boolean", "causal", "both"])
def test_multi_head_matches_keras(rng, qkv, config, masking):
    query, key, value = qkv
    value = rng.normal(size=(B, S, 7)).astype("float32")  # three different widths
    ours, reference = keras_pair(config, query, value, key)
    kwargs = {}
    if masking in ("boolean", "both"):
        kwargs["attention_mask"] = random_mask(rng)
    if masking in ("causal", "both"):
        kwargs["use_causal_mask"] = True
    outputs = ours(query, value, key, **kwargs)
    np.testing.assert_allclose(
        outputs, reference(query, value, key, **kwargs), rtol=1e-5, atol=1e-5
    )
    outputs, weights = ours(query, value, key, return_attention_scores=True, **kwargs)
    expected, expected_weights = reference(
        query, value, key, return_attention_scores=True, **kwargs
    )
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)


def test_multi_head_keras_masks_match_keras(rng):
    tokens = np.array([[3, 1, 4, 0, 0], [5, 9, 2, 6, 0]])
    valid = tokens != 0

    def model(attention):
        inputs = keras.Input((None,), dtype="int32")
        embedded = keras.layers.Embedding(
            10, 6, mask_zero=True, embeddings_initializer="ones"
        )(inputs)
        embedded = layers.PositionalEncoding(8)(embedded)  # keeps the mask
        return keras.Model(inputs, attention(embedded, embedded, use_causal_mask=True))

    reference = keras.layers.MultiHeadAttention(2, 3, bias_initializer="ones")
    ours = layers.MultiHeadAttention(2, 3)
    reference_model, our_model = model(reference), model(ours)
    ours.set_weights(reference.get_weights())
    outputs = our_model(tokens).numpy()
    # Padded queries see no key: Keras' fused kernel gives them uniform weights,
    # we (and Keras' unfused path) give zero weights; compare the real tokens.
    np.testing.assert_allclose(
        outputs[valid], reference_model(tokens).numpy()[valid], rtol=1e-5, atol=1e-5
    )
    bias = reference.get_weights()[-1]
    np.testing.assert_allclose(outputs[~valid], np.broadcast_to(bias, (3, 6)))

    embedded = keras.layers.Embedding(10, 6, mask_zero=True)(tokens)
    attended = ours(embedded, embedded)
    np.testing.assert_array_equal(attended._keras_mask, valid)


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: layers.ScaledDotProductAttention(dropout=0.5, seed=1),
        lambda: layers.AdditiveAttention(4, dropout=0.5, seed=1),
        lambda: layers.MultiHeadAttention(2, 3, dropout=0.5, seed=1),
    ],
    ids=["scaled_dot_product", "additive", "multi_head"],
)
def test_causal_mask_holds_with_dropout_and_scores(rng, make_layer):
    x = tf.constant(rng.normal(size=(B, T, 6)).astype("float32"))
    layer = make_layer()
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs, weights = layer(
            x, x, use_causal_mask=True, return_attention_scores=True, training=True
        )
        first = tf.reduce_sum(outputs[:, 0])
    future = tape.gradient(first, x).numpy()[:, 1:]
    np.testing.assert_array_equal(future, 0.0)
    upper = ~np.broadcast_to(causal(T, T), weights.shape)
    np.testing.assert_array_equal(weights.numpy()[upper], 0.0)
    # Dropout is active: training and inference differ.
    assert not np.allclose(outputs, layer(x, x, use_causal_mask=True))


# --- gradients ------------------------------------------------------------------


def _check_gradients(function, arrays):
    theoretical, numerical = tf.test.compute_gradient(
        function, [tf.constant(a) for a in arrays]
    )
    # Central differences with TensorFlow's step of 1/1024 are off by ~1e-6 of the
    # gradient (second order in the step), hence the relative tolerance too.
    for ours, finite_differences in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(ours, finite_differences, rtol=1e-5, atol=1e-6)


def test_gradients_float64(rng):
    # The layers' initial weights come from Keras's global seed: fixed here, so
    # that the test does not depend on what ran before it in the process.
    keras.utils.set_random_seed(0)
    q = rng.normal(size=(1, 3, 4))
    k = rng.normal(size=(1, 3, 4))
    v = rng.normal(size=(1, 3, 2))
    mask = np.array([[[1, 1, 0], [1, 0, 1], [1, 1, 1]]], dtype=bool)

    sdpa = layers.ScaledDotProductAttention(dtype="float64")
    _check_gradients(lambda q, k, v: sdpa(q, v, k, attention_mask=mask), [q, k, v])

    additive = layers.AdditiveAttention(3, use_bias=True, dtype="float64")
    additive(q, v, k)
    _check_gradients(lambda q, k, v: additive(q, v, k, use_causal_mask=True), [q, k, v])

    mha = layers.MultiHeadAttention(2, 2, value_dim=3, dtype="float64")
    mha(q, v, k)
    _check_gradients(lambda q, k, v: mha(q, v, k, attention_mask=mask), [q, k, v])

    def of_weights(*weights):
        outputs, _ = mha.stateless_call(list(weights), [], q, v, k)
        return outputs

    _check_gradients(of_weights, mha.get_weights())


# --- configuration and errors ----------------------------------------------------


def test_serialisation(layer_check, qkv):
    query, key, value = qkv
    layer_check(
        layers.ScaledDotProductAttention,
        {"dropout": 0.1, "seed": 7},
        [query, value, key],
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(B, T, 3),
        expected_num_weights=0,
    )
    layer_check(
        layers.AdditiveAttention,
        {"units": 5, "use_bias": True, "dropout": 0.2, "seed": 3},
        [query, value, key],
        expected_output_shape=(B, T, 3),
        expected_num_weights=4,
    )
    layer_check(
        layers.MultiHeadAttention,
        {
            "num_heads": 2,
            "key_dim": 3,
            "value_dim": 4,
            "dropout": 0.1,
            "use_bias": False,
            "output_shape": (2, 5),
            "kernel_regularizer": "l2",
            "seed": 11,
        },
        [query, value, key],
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(B, T, 2, 5),
        expected_num_weights=4,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: layers.MultiHeadAttention(0, 4), r"num_heads must be a positive"),
        (lambda: layers.MultiHeadAttention(-2, 4), r"num_heads=-2"),
        (lambda: layers.MultiHeadAttention(2, 0), r"key_dim must be a positive"),
        (lambda: layers.MultiHeadAttention(2, 4, value_dim=0), r"value_dim"),
        (
            lambda: layers.MultiHeadAttention(2, 4, output_shape=(3, 0)),
            r"output_shape must be None, a positive int or a tuple",
        ),
        (
            lambda: layers.MultiHeadAttention(2, 4, dropout=1.0),
            r"dropout must be a float in \[0, 1\)",
        ),
        (
            lambda: layers.ScaledDotProductAttention(dropout=-0.1),
            r"dropout must be a float in \[0, 1\). Received: dropout=-0.1",
        ),
        (lambda: layers.AdditiveAttention(0), r"units must be a positive int"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_input_shapes(qkv):
    query, key, value = qkv
    with pytest.raises(ValueError, match="expects query of rank 3"):
        layers.MultiHeadAttention(2, 3)(query[0], value)
    with pytest.raises(ValueError, match="same last dimension"):
        layers.ScaledDotProductAttention()(query, value, key[..., :5])


@pytest.mark.parametrize(
    "make, query_dim, output_dims, scores_prefix",
    [
        (lambda: layers.ScaledDotProductAttention(), 6, (6,), ()),
        (lambda: layers.AdditiveAttention(4), 5, (6,), ()),
        (lambda: layers.MultiHeadAttention(2, 3), 5, (5,), (2,)),
        (lambda: layers.MultiHeadAttention(2, 3, output_shape=(2, 4)), 5, (2, 4), (2,)),
    ],
)
def test_symbolic_shapes_for_cross_attention(
    make, query_dim, output_dims, scores_prefix
):
    query = keras.Input((3, query_dim))
    value = keras.Input((None, 6))
    layer = make()
    outputs, scores = layer(query, value, return_attention_scores=True)
    assert outputs.shape == (None, 3, *output_dims)
    # keras.layers.MultiHeadAttention reports (None, heads, 3, 3) here.
    assert scores.shape == (None, *scores_prefix, 3, None)
    model = keras.Model([query, value], [outputs, scores])
    real_outputs, real_scores = model(
        [np.zeros((2, 3, query_dim)), np.zeros((2, 7, 6))]
    )
    assert real_outputs.shape == (2, 3, *output_dims)
    assert real_scores.shape == (2, *scores_prefix, 3, 7)


def test_summary_of_a_subclassed_model():
    class Model(keras.Model):
        def __init__(self):
            super().__init__()
            self.attention = layers.MultiHeadAttention(2, 3, output_shape=4)

        def call(self, x):
            return self.attention(x, x)

    model = Model()
    model(np.zeros((1, 3, 4), "float32"))
    model.summary(print_fn=lambda *args, **kwargs: None)
