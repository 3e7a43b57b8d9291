"""The BatchNorm statistics pass (apps.batch_norm) and the builders' BN momentum."""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from fresh import run_script
from keras import layers as kl

import apps
from apps import batch_norm


def _two_bn_model():
    """Conv -> BN -> ReLU -> Dropout -> Dense -> BN: the second BN's input depends
    on how the first normalises, and the Dropout holds a seed generator."""
    inputs = keras.Input((6, 6, 2))
    x = kl.Conv2D(3, 3, name="conv")(inputs)
    x = kl.BatchNormalization(momentum=0.99, name="bn1")(x)
    x = kl.Activation("relu")(x)
    x = kl.Dropout(0.5, seed=1)(x)
    x = kl.Flatten()(x)
    x = kl.Dense(4, name="fc")(x)
    x = kl.BatchNormalization(momentum=0.99, name="bn2")(x)
    return keras.Model(inputs, kl.Dense(2, activation="softmax")(x))


def _batches(count, size=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(2.0, 3.0, (count * size, 6, 6, 2)).astype("float32")
    labels = np.zeros(count * size, "int64")
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(size), images


def test_statistics_are_the_average_of_training_mode_batch_statistics():
    model = _two_bn_model()
    dataset, images = _batches(3)
    probe = keras.Model(model.input, [model.get_layer(n).input for n in ("bn1", "bn2")])
    expected = {"bn1": ([], []), "bn2": ([], [])}
    for start in range(0, 24, 8):
        # Dropout draws differ from the pass's, so compare the first BN exactly and
        # the second only through a model without dropout below.
        features = probe(images[start : start + 8], training=True)
        for name, feature in zip(("bn1", "bn2"), features, strict=True):
            axes = tuple(range(feature.ndim - 1))
            expected[name][0].append(np.mean(feature, axes))
            expected[name][1].append(np.var(feature, axes))
    assert batch_norm.recalibrate(model, dataset, steps=5) == 3  # data ran out
    layer = model.get_layer("bn1")
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), np.mean(expected["bn1"][0], 0), rtol=1e-5
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), np.mean(expected["bn1"][1], 0), rtol=1e-5
    )


def test_inference_equals_training_mode_after_a_pass_over_one_batch():
    model = apps.build(
        "resnet",
        input_shape=(12, 12, 1),
        classes=3,
        block="basic",
        blocks_per_stage=(1, 1),
        width=4,
        small_inputs=True,
        batch_norm_momentum=0.99,
    )
    images = np.random.default_rng(1).random((16, 12, 12, 1), "float32")
    before = np.abs(model(images, training=False) - model(images, training=True)).max()
    batch_norm.recalibrate(model, tf.data.Dataset.from_tensors(images).repeat(), 2)
    after = np.abs(model(images, training=False) - model(images, training=True)).max()
    assert after < 1e-5 < before


def test_only_the_moving_statistics_change():
    model = _two_bn_model()
    model(np.zeros((1, 6, 6, 2), "float32"), training=True)
    statistics = {
        id(v)
        for name in ("bn1", "bn2")
        for v in (
            model.get_layer(name).moving_mean,
            model.get_layer(name).moving_variance,
        )
    }
    others = [(v, v.numpy().copy()) for v in model.variables if id(v) not in statistics]
    assert any("seed" in v.path for v, _ in others)  # the Dropout's generator
    batch_norm.recalibrate(model, _batches(2)[0], steps=2)
    for variable, value in others:
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    assert not np.allclose(model.get_layer("bn1").moving_mean.numpy(), 0.0)


def test_models_without_batch_norm_are_left_alone():
    model = apps.build("lenet5", classes=10)
    weights = [w.copy() for w in model.get_weights()]
    dataset = tf.data.Dataset.from_tensors(np.zeros((2, 28, 28, 1), "float32"))
    assert batch_norm.recalibrate(model, dataset, steps=3) == 0
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("steps", [0, -1, 1.5, True])
def test_bad_steps_are_refused(steps):
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        batch_norm.recalibrate(_two_bn_model(), _batches(1)[0], steps)


def test_frozen_layers_keep_their_statistics():
    model = _two_bn_model()
    model.get_layer("bn1").trainable = False
    assert [layer.name for layer in batch_norm.batch_norm_layers(model)] == ["bn2"]


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, tensorflow as tf, keras
    from apps import batch_norm, training
    training.split_cpu(2)
    import apps

    def build():
        return apps.build("mlp", input_shape=(5,), classes=2, hidden_units=(4,),
                          batch_norm=True)

    # The two halves of each global batch differ: per-replica variances would be
    # far below the global batch's.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (16, 5)), rng.normal(5, 1, (16, 5))])
    data = tf.data.Dataset.from_tensors(
        (x.astype("float32"), np.zeros(32, "int64"))).repeat()
    single = build()
    mirrored = training.make_strategy("mirrored", devices=2)
    with mirrored.scope():
        twin = build()
    twin.set_weights(single.get_weights())
    batch_norm.recalibrate(single, data, 3)
    batch_norm.recalibrate(twin, data, 3, mirrored)
    layer = lambda m: m.get_layer("hidden_1_bn")
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "single": layer(single).moving_variance.numpy().tolist(),
        "mirrored": layer(twin).moving_variance.numpy().tolist(),
        "single_mean": layer(single).moving_mean.numpy().tolist(),
        "mirrored_mean": layer(twin).moving_mean.numpy().tolist(),
    }))
    """
)


def test_mirrored_pass_uses_the_global_batch():
    result = run_script(MIRRORED_SCRIPT)
    assert result["replicas"] == 2
    np.testing.assert_allclose(result["mirrored"], result["single"], rtol=1e-5)
    np.testing.assert_allclose(
        result["mirrored_mean"], result["single_mean"], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "name, options",
    [
        ("resnet18", {}),
        ("vgg11_bn", {}),
        ("googlenet", {"batch_norm": True}),
        ("alexnet", {"normalization": "batchnorm"}),
        ("mlp", {"batch_norm": True}),
    ],
)
def test_every_batch_norm_builder_takes_a_momentum(name, options):
    shape = (28, 28, 1) if name == "mlp" else (32, 32, 3)
    default = apps.build(name, input_shape=shape, classes=3, **options)
    custom = apps.build(
        name, input_shape=shape, classes=3, batch_norm_momentum=0.5, **options
    )
    momenta = {
        layer.momentum
        for layer in default.layers
        if isinstance(layer, kl.BatchNormalization)
    }
    assert momenta == {0.9}
    assert {
        layer.momentum
        for layer in custom.layers
        if isinstance(layer, kl.BatchNormalization)
    } == {0.5}


@pytest.mark.parametrize("value", [1.0, 1.5, -0.1, "fast", True])
def test_bad_momentum_is_refused_with_the_range(value):
    with pytest.raises(
        ValueError, match=r"batch_norm_momentum must be a number in \[0, 1\)"
    ):
        apps.build("resnet18", classes=3, batch_norm_momentum=value)
