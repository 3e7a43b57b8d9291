"""GoogLeNet's auxiliary classifiers, the inference model and the v2/v3 options."""

import keras
import numpy as np
import pytest

import apps
from apps.vision import googlenet as googlenet_module
from apps.vision.googlenet import (
    AUX_LOSS_WEIGHTS,
    googlenet,
    googlenet_inference_model,
    transfer_weights,
)

CLASSES = 3


def _images(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(batch, 28, 28, 1)).astype("float32")


def test_loss_weights_are_the_papers():
    assert AUX_LOSS_WEIGHTS == {"predictions": 1.0, "aux1": 0.3, "aux2": 0.3}
    info = apps.get_model_info("googlenet")
    assert dict(info.loss_weights) == AUX_LOSS_WEIGHTS


def test_aux_outputs_order_and_names():
    model = googlenet(aux_classifiers=True, classes=CLASSES, input_shape=(28, 28, 1))
    names = [tensor._keras_history.operation.name for tensor in model.outputs]
    assert names == ["predictions", "aux1", "aux2"]
    assert model.output_shape == [(None, CLASSES)] * 3
    # 28x28 is brought to 65x65, where inception_4a is 5x5: the heads' pool fits.
    assert tuple(model.get_layer("resize").output.shape[1:3]) == (65, 65)
    assert tuple(model.get_layer("inception_4a").output.shape[1:3]) == (5, 5)
    # The heads hang on inception_4a and inception_4d.
    assert (
        model.get_layer("aux1_avg_pool").input is model.get_layer("inception_4a").output
    )
    assert (
        model.get_layer("aux2_avg_pool").input is model.get_layer("inception_4d").output
    )


def test_train_with_heads_then_infer_without(tmp_path):
    keras.utils.set_random_seed(0)
    images = _images()
    labels = np.arange(len(images)) % CLASSES
    trained = googlenet(aux_classifiers=True, classes=CLASSES, input_shape=(28, 28, 1))
    trained.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss={name: "sparse_categorical_crossentropy" for name in AUX_LOSS_WEIGHTS},
        loss_weights=AUX_LOSS_WEIGHTS,
        run_eagerly=True,
    )
    targets = {name: labels for name in AUX_LOSS_WEIGHTS}
    history = trained.fit(images, targets, epochs=2, batch_size=4, verbose=0)
    total = history.history["loss"]
    assert total[-1] < total[0]
    expected = np.asarray(trained(images, training=False)[0])

    # 1. The inference model: same layers, same weights, no heads.
    inference = googlenet_inference_model(trained)
    assert inference.output_shape == (None, CLASSES)
    assert not any(layer.name.startswith("aux") for layer in inference.layers)
    assert inference.count_params() < trained.count_params()
    np.testing.assert_allclose(np.asarray(inference(images)), expected, rtol=1e-5)

    # ... and it saves and loads on its own.
    path = tmp_path / "inference.keras"
    inference.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded(images)), expected, rtol=1e-5)

    # 2. A fresh model without heads takes the weights by layer name.
    fresh = googlenet(classes=CLASSES, input_shape=(28, 28, 1))
    assert fresh.count_params() == inference.count_params()
    copied = transfer_weights(trained, fresh)
    assert "inception_5b_1x1" in copied and "aux1_fc" not in copied
    np.testing.assert_allclose(np.asarray(fresh(images)), expected, rtol=1e-5)

    # 3. Or from the trained model's .keras file, through `weights`.
    trained_path = tmp_path / "trained.keras"
    trained.save(trained_path)
    from_file = apps.build(
        "googlenet", classes=CLASSES, input_shape=(28, 28, 1), weights=trained_path
    )
    np.testing.assert_allclose(np.asarray(from_file(images)), expected, rtol=1e-5)


def test_transfer_weights_names_what_is_missing():
    source = apps.build("lenet5")
    target = apps.build("mlp")
    with pytest.raises(ValueError, match="'hidden_1'"):
        transfer_weights(source, target)
    with pytest.raises(ValueError, match="trained_model must be a googlenet"):
        googlenet_inference_model(apps.build("lenet5", include_top=False))


def test_batch_norm_is_inception_v2():
    model = googlenet(batch_norm=True, include_top=False, input_shape=(64, 64, 3))
    names = {layer.name for layer in model.layers}
    assert {"conv1_bn", "inception_3a_5x5_bn", "inception_5b_pool_proj_bn"} <= names
    assert not {"lrn1", "lrn2"} & names
    assert not model.get_layer("inception_3a_1x1").use_bias
    plain = googlenet(include_top=False, input_shape=(64, 64, 3))
    assert {"lrn1", "lrn2"} <= {layer.name for layer in plain.layers}


def test_factorized_is_inception_v3s_idea():
    plain = googlenet(include_top=False)
    factorized = googlenet(factorized=True, include_top=False)
    asymmetric = googlenet(factorized="asymmetric", include_top=False)
    names = {layer.name for layer in factorized.layers}
    assert "inception_3a_5x5" not in names
    assert {"inception_3a_5x5_a", "inception_3a_5x5_b"} <= names
    assert factorized.get_layer("inception_3a_5x5_a").kernel_size == (3, 3)
    asymmetric_names = {layer.name for layer in asymmetric.layers}
    assert {"inception_3a_3x3_1x3", "inception_3a_3x3_3x1"} <= asymmetric_names
    assert asymmetric.get_layer("inception_3a_3x3_1x3").kernel_size == (1, 3)
    # Same feature maps.
    for model in (factorized, asymmetric):
        for module in googlenet_module.INCEPTION_FILTERS:
            name = f"inception_{module}"
            assert model.get_layer(name).output.shape == (
                plain.get_layer(name).output.shape
            )
    # The 5x5 branch: reduce > 3x3 > 3x3 (both 3x3 with #5x5 filters), by
    # arithmetic on inception_3a (192 > 16 > 32).
    branch = factorized.get_layer("inception_3a_5x5_a").count_params()
    branch += factorized.get_layer("inception_3a_5x5_b").count_params()
    assert branch == (3 * 3 * 16 * 32 + 32) + (3 * 3 * 32 * 32 + 32)
    assert asymmetric.count_params() < factorized.count_params()
