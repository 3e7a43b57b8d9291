"""apps.training: options, strategy choice, loss weights, the NaN guard."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps import training


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"epochs": 1.5}, "epochs must be a positive integer"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of"),
        ({"strategy": "tpu"}, "strategy must be one of"),
        ({"learning_rate": -1.0}, "learning_rate must be > 0"),
        ({"weight_decay": 2.0}, "weight_decay must be in"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        training.TrainOptions(**kwargs)


def test_auto_strategy_is_default_on_one_cpu(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = training.make_strategy("auto")
    assert training.replicas(strategy) == 1


def test_too_many_devices_is_a_clear_error():
    with pytest.raises(ValueError, match="only 1 CPU device"):
        training.make_strategy("mirrored", devices=64)


@pytest.mark.parametrize("name", training.OPTIMIZERS)
def test_every_optimizer_builds_with_weight_decay(name):
    options = training.TrainOptions(optimizer=name, weight_decay=1e-4)
    optimizer = training.make_optimizer(options)
    assert float(optimizer.learning_rate) == pytest.approx(
        training.DEFAULT_LEARNING_RATES[name]
    )
    assert optimizer.weight_decay == pytest.approx(1e-4)


def _two_output_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    main = keras.layers.Dense(3, activation="softmax", name="predictions")(hidden)
    aux = keras.layers.Dense(3, activation="softmax", name="aux1")(hidden)
    return keras.Model(inputs, [main, aux])


def test_auxiliary_outputs_get_their_loss_weights():
    model = _two_output_model()
    training.compile_classifier(
        model, training.TrainOptions(), loss_weights={"aux1": 0.3}
    )
    features = np.random.default_rng(0).random((16, 4)).astype("float32")
    labels = np.arange(16) % 3
    data = training.labels_for_outputs(
        tf.data.Dataset.from_tensor_slices((features, labels)).batch(16), model
    )
    results = model.evaluate(data, return_dict=True, verbose=0)
    expected = results["predictions_loss"] + 0.3 * results["aux1_loss"]
    assert results["loss"] == pytest.approx(expected, rel=1e-5)
    assert "predictions_accuracy" in results


def test_cosine_schedule_is_a_function_of_the_epoch():
    schedule = training.cosine_schedule(0.1, epochs=10)
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(10) == pytest.approx(0.001)
    assert schedule(3) > schedule(4)


def test_nan_loss_stops_with_advice_and_keeps_the_backup(tmp_path):
    features = np.ones((64, 4), "float32")
    features[40:] = np.nan  # the loss turns NaN in the second epoch's batches
    labels = np.zeros(64, "int64")
    data = tf.data.Dataset.from_tensor_slices((features, labels)).batch(8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, "softmax")])
    options = training.TrainOptions(
        epochs=2, steps_per_epoch=4, lr_schedule="constant", verbose=0
    )
    training.compile_classifier(model, options)
    with pytest.raises(
        training.TrainingError,
        match="loss became nan at batch .*smaller --learning-rate",
    ):
        training.fit(model, data.repeat(), None, tmp_path, options)
    assert (tmp_path / "state").is_dir(), "the last good state was deleted"
    assert not (tmp_path / "model.keras").exists()


def test_write_json_is_atomic(tmp_path):
    path = tmp_path / "state.json"
    training.write_json(path, {"a": np.float32(1.5)})
    assert path.read_text().strip().startswith("{")
    assert not list(tmp_path.glob(".*.tmp"))
