"""Every layer under XLA, mixed precision, SavedModel export and MirroredStrategy."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import layers

TOKENS = np.array([[1, 2, 3, 0], [3, 4, 0, 0]], dtype="int32")
IMAGES = np.linspace(0.0, 1.0, 2 * 5 * 5 * 3, dtype="float32").reshape(2, 5, 5, 3)


def build_model(dtype=None, dropout=0.1):
    """One small functional model holding every layer, masks and dropout included."""
    images = keras.Input((None, None, 3), name="images")
    x = layers.TransposedConv2D(
        4, 3, strides=2, padding="same", output_padding=1, dtype=dtype
    )(images)
    x = layers.LocalResponseNormalization(3, dtype=dtype)(x)
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype)(x)

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(10, 8, mask_zero=True, dtype=dtype)(tokens)
    h = layers.PositionalEncoding(12, dtype=dtype)(h)
    h = layers.PositionalEncoding(12, mode="learned", dtype=dtype)(h)
    a = layers.MultiHeadAttention(2, 4, dropout=dropout, seed=3, dtype=dtype)(
        h, h, use_causal_mask=True
    )
    b = layers.ScaledDotProductAttention(dropout=dropout, seed=1, dtype=dtype)(h, a)
    c = layers.AdditiveAttention(5, dropout=dropout, seed=2, dtype=dtype)(b, h)
    z = keras.layers.GlobalAveragePooling1D(dtype=dtype)(c)
    outputs = keras.layers.Concatenate(dtype=dtype)([x, z])
    return keras.Model([images, tokens], outputs)


def _cases():
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(2, 4, 6)).astype("float32")
    keys = rng.normal(size=(2, 3, 6)).astype("float32")
    image = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    mask = np.tril(np.ones((4, 3), dtype=bool))[None]
    return {
        "lrn": (lambda **kw: layers.LocalResponseNormalization(**kw), [image], {}),
        "transposed_conv": (
            lambda **kw: layers.TransposedConv2D(3, 2, strides=2, **kw),
            [image],
            {},
        ),
        "positional": (lambda **kw: layers.PositionalEncoding(6, **kw), [seq], {}),
        "positional_learned": (
            lambda **kw: layers.PositionalEncoding(6, mode="learned", **kw),
            [seq],
            {},
        ),
        "scaled_dot_product": (
            lambda **kw: layers.ScaledDotProductAttention(dropout=0.2, **kw),
            [seq, keys],
            {"attention_mask": mask},
        ),
        "additive": (
            lambda **kw: layers.AdditiveAttention(5, dropout=0.2, **kw),
            [seq, keys],
            {"attention_mask": mask},
        ),
        "multi_head": (
            lambda **kw: layers.MultiHeadAttention(2, 3, dropout=0.2, **kw),
            [seq, seq],
            {"use_causal_mask": True},
        ),
    }


CASES = _cases()


@pytest.mark.parametrize("name", CASES)
def test_xla(name):
    make, inputs, kwargs = CASES[name]
    layer = make()
    expected = layer(*inputs, **kwargs)
    compiled = tf.function(
        lambda *args: layer(*args, **kwargs, training=False), jit_compile=True
    )
    np.testing.assert_allclose(compiled(*inputs), expected, rtol=1e-5, atol=1e-5)
    training = tf.function(
        lambda *args: layer(*args, **kwargs, training=True), jit_compile=True
    )
    assert np.all(np.isfinite(training(*inputs)))


@pytest.mark.parametrize("name", CASES)
def test_mixed_float16(name):
    make, inputs, kwargs = CASES[name]
    reference = make()
    expected = reference(*inputs, **kwargs)
    layer = make(dtype="mixed_float16")
    outputs = layer(*inputs, **kwargs)
    assert outputs.dtype == tf.float16
    assert all(w.dtype == "float32" for w in layer.weights)
    layer.set_weights(reference.get_weights())
    outputs = layer(*inputs, **kwargs)
    np.testing.assert_allclose(
        np.asarray(outputs, dtype="float32"), expected, rtol=1e-2, atol=1e-2
    )


def test_mixed_precision_global_policy_trains():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model()
        model.compile(optimizer="adam", loss="mse", jit_compile=False)
        assert model.output.dtype == "float16"
        loss = model.train_on_batch([IMAGES, TOKENS], np.zeros((2, 12), "float32"))
        assert np.isfinite(loss)
        assert all(w.dtype == "float32" for w in model.weights)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_model_with_every_layer_saves_and_exports(tmp_path):
    model = build_model()
    expected = model([IMAGES, TOKENS])
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded([IMAGES, TOKENS]), expected, atol=1e-6)

    model.export(str(tmp_path / "saved_model"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    np.testing.assert_allclose(served.serve([IMAGES, TOKENS]), expected, atol=1e-6)
    # Dynamic batch, image size and sequence length survive the export.
    images = np.ones((3, 4, 2, 3), "float32")
    tokens = np.array([[1, 2, 3, 4, 5, 0]] * 3, dtype="int32")
    np.testing.assert_allclose(
        served.serve([images, tokens]), model([images, tokens]), atol=1e-6
    )


def test_mirrored_strategy_in_a_subprocess():
    # Logical devices must be configured before TensorFlow initialises.
    root = os.path.dirname(os.path.dirname(os.path.abspath(layers.__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "MIRRORED OK" in result.stdout


def _mirrored_main():
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = build_model()
        # XLA is covered by test_xla; compiling the replicated step is slow.
        model.compile(optimizer="adam", loss="mse", jit_compile=False)
    assert all(
        isinstance(w.value, tf.distribute.DistributedValues) for w in model.weights
    )
    images = np.tile(IMAGES, (2, 1, 1, 1))
    tokens = np.tile(TOKENS, (2, 1))
    targets = np.zeros((4, 12), "float32")
    ours = [layer for layer in model.layers if type(layer).__module__[:7] == "layers."]
    assert len(ours) == 7
    before = [w.numpy().copy() for layer in ours for w in layer.trainable_weights]
    history = model.fit(
        [images, tokens], targets, batch_size=4, epochs=2, verbose=0, shuffle=False
    )
    assert all(np.isfinite(history.history["loss"]))
    after = [w.numpy() for layer in ours for w in layer.trainable_weights]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
    assert np.all(np.isfinite(model.predict([images, tokens], verbose=0)))
    print("MIRRORED OK")


if __name__ == "__main__":
    _mirrored_main()
