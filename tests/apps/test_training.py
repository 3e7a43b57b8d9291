"""apps.training: options, strategy choice, loss weights, the NaN guard."""

import math

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
        ({"learning_rate": float("inf")}, "learning_rate must be > 0 and finite"),
        ({"learning_rate": float("nan")}, "learning_rate must be > 0 and finite"),
        ({"weight_decay": 2.0}, "weight_decay must be in"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of"),
        ({"steps_per_execution": 0}, "steps_per_execution must be a positive"),
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
    if name == "adam":  # decoupled: AdamW
        assert isinstance(optimizer, keras.optimizers.AdamW)
        assert optimizer.weight_decay == pytest.approx(1e-4)
    else:  # the L2 penalty the SGD-era papers used, not Keras's decoupled decay
        assert optimizer.l2 == pytest.approx(1e-4)
        assert optimizer.weight_decay is None


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


@pytest.mark.parametrize(
    "steps_per_execution, where", [(1, "at batch 1"), (8, "at batches 0-3")]
)
def test_nan_loss_stops_with_advice_keeps_state_and_rerun_resumes(
    tmp_path, steps_per_execution, where
):
    features = np.ones((64, 4), "float32")
    labels = np.zeros(64, "int64")
    poisoned = features.copy()
    poisoned[40:] = np.nan  # the loss turns NaN at step 5, in the second epoch

    def batches(x):
        return tf.data.Dataset.from_tensor_slices((x, labels)).batch(8).repeat()

    def model():
        net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, "softmax")])
        return training.compile_classifier(net, options)

    options = training.TrainOptions(
        epochs=3,
        steps_per_epoch=4,
        lr_schedule="constant",
        verbose=0,
        seed=0,
        steps_per_execution=steps_per_execution,
    )
    # One call runs a group of steps; the guard names the group's batches.
    with pytest.raises(training.TrainingError, match=f"loss became nan {where}"):
        training.fit(model(), batches(poisoned), None, tmp_path, options)
    assert (tmp_path / "state").is_dir(), "the last good state was deleted"
    assert not (tmp_path / "model.keras").exists()
    # The data fixed, the same run resumes after its last good epoch and finishes.
    resumed = model()
    history, _ = training.fit(resumed, batches(features), None, tmp_path, options)
    assert len(history["loss"]) == 2  # epochs 2 and 3 only
    assert int(resumed.optimizer.iterations.numpy()) == 12
    assert not (tmp_path / "state").exists()


def _state_model():
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    net.compile(optimizer="adam", loss="mse")
    net.optimizer.build(net.trainable_variables)
    return net


def test_run_state_falls_back_past_damaged_snapshots(tmp_path):
    from apps import loop

    net = _state_model()
    variables = loop.state_variables(net)
    state = loop.RunState(tmp_path)
    for step in (1, 2, 3):
        net.layers[0].bias.assign([step, step])
        state.save(variables, {"epoch": 0, "step": step, "global_step": step})
    assert len(list(tmp_path.glob("state-*.json"))) == loop.STATE_KEEP
    newest = sorted(tmp_path.glob("state-*.npz"))[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    net.layers[0].bias.assign([0, 0])
    assert state.restore(variables)["global_step"] == 2
    np.testing.assert_array_equal(net.layers[0].bias.numpy(), [2, 2])
    sorted(tmp_path.glob("state-*.json"))[-2].write_text('{"position": ')
    assert state.restore(variables) is None  # nothing good is left: start afresh


def test_run_state_refuses_another_models_state(tmp_path):
    from apps import loop

    state = loop.RunState(tmp_path)
    net = _state_model()
    state.save(loop.state_variables(net), {"epoch": 1, "step": 0, "global_step": 4})
    other = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    other.compile(optimizer="adam", loss="mse")
    other.optimizer.build(other.trainable_variables)
    assert state.restore(loop.state_variables(other)) is None


def test_write_json_is_atomic(tmp_path):
    path = tmp_path / "state.json"
    training.write_json(path, {"a": np.float32(1.5)})
    assert path.read_text().strip().startswith("{")
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture
def mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "name, input_shape",
    [
        ("lenet5", (28, 28, 1)),
        ("alexnet", (28, 28, 1)),  # its own output layers
        ("lstm", (28, 28)),
        # The same output helper as LeNet-5's; 7-10 s each on 2 CPUs.
        pytest.param("googlenet", (28, 28, 1), marks=pytest.mark.slow),  # aux heads
        pytest.param("resnet18", (28, 28, 1), marks=pytest.mark.slow),
        pytest.param("vit", (28, 28, 1), marks=pytest.mark.slow),
    ],
)
def test_mixed_precision_trains_with_float32_outputs(mixed_bfloat16, name, input_shape):
    """--mixed-precision: bfloat16 compute, float32 predictions (the top-5 metric's
    `in_top_k` rejects bfloat16 ones: the first step used to fail)."""
    import apps

    options = training.TrainOptions(steps_per_execution=1, verbose=0)
    model = apps.build(name, classes=10, input_shape=input_shape)
    assert any(layer.compute_dtype == "bfloat16" for layer in model.layers)
    assert all(output.dtype == "float32" for output in model.outputs)
    info = apps.get_model_info(name)
    model = training.compile_classifier(model, options, info.loss_weights)
    images = np.random.default_rng(0).uniform(size=(4, *input_shape)).astype("float32")
    labels = np.arange(4)
    targets = labels if len(model.outputs) == 1 else [labels] * len(model.outputs)
    logs = model.train_on_batch(images, targets, return_dict=True)
    assert np.isfinite(logs["loss"])


def _history(run_dir, rows):
    lines = ["epoch,loss,val_accuracy,val_loss", *rows]
    (run_dir / "history.csv").write_text("\n".join(lines) + "\n")


def test_best_checkpoint_remembers_earlier_sessions(tmp_path):
    """After a resume, best.keras is replaced only by a model better than every
    epoch of the run so far, not just of this session."""
    _history(
        tmp_path, ["0,1.0,0.5,0.9", "1,0.8,0.7,0.4", "2,0.7,0.6,NA", "1,0.8,0.7,0.3"]
    )
    assert training.best_so_far(tmp_path, "val_loss", "min") is None  # no best.keras
    (tmp_path / "best.keras").write_bytes(b"earlier session")
    assert training.best_so_far(tmp_path, "val_loss", "min") == 0.3  # epoch 1's rerun
    assert training.best_so_far(tmp_path, "val_accuracy", "auto") == 0.7
    assert training.best_so_far(tmp_path, "g_loss", "min") is None  # not recorded
    options = training.TrainOptions()
    callbacks = training.make_callbacks(tmp_path, options, training.Throughput(1))
    checkpoint = next(
        c for c in callbacks if isinstance(c, keras.callbacks.ModelCheckpoint)
    )
    assert checkpoint.best == 0.3
    fresh = training.make_callbacks(tmp_path / "new", options, training.Throughput(1))
    checkpoint = next(
        c for c in fresh if isinstance(c, keras.callbacks.ModelCheckpoint)
    )
    assert checkpoint.best is None  # Keras: anything is an improvement


def _timed_epoch(throughput, clock, groups, traced_seconds=10.0):
    """Feeds `throughput` one epoch of step groups `(first, last)`; each call takes
    0.1 s a step, a function's first call `traced_seconds` more (its tracing)."""
    throughput.on_epoch_begin(0)
    for first, last in groups:
        throughput.on_train_batch_begin(first)
        kind = last > first
        clock["now"] += 0.1 * (last - first + 1)
        if kind not in clock["traced"]:
            clock["traced"].add(kind)
            clock["now"] += traced_seconds
        throughput.on_train_batch_end(last)
    throughput.on_epoch_end(0)


def test_images_per_second_leaves_out_tracing(monkeypatch):
    """A 1-epoch run reported ~10 % of the steady rate: its first (tracing) calls
    were timed too."""
    clock = {"now": 0.0, "traced": set()}
    monkeypatch.setattr(training.time, "perf_counter", lambda: clock["now"])
    throughput = training.Throughput(global_batch_size=10)
    # The loop's groups: a lone first step, then steps_per_execution 4.
    _timed_epoch(throughput, clock, [(0, 0), (1, 4), (5, 8), (9, 9)])
    assert throughput.images_per_second == pytest.approx(100.0)  # 10 / 0.1 s
    assert throughput.epoch_times == [(pytest.approx(21.0), 10)]  # the whole epoch
    _timed_epoch(throughput, clock, [(0, 3), (4, 7), (8, 9)])
    assert throughput.images_per_second == pytest.approx(100.0)
    single = training.Throughput(global_batch_size=10)
    clock["traced"] = set()
    _timed_epoch(single, clock, [(0, 0)])  # nothing after tracing: the whole epoch
    assert single.images_per_second == pytest.approx(10 / 10.1)


def test_history_csv_has_only_columns_with_values(tmp_path):
    """No validation: Keras's CSVLogger added an all-NA val_* column per key; a
    resumed session appends under the file's own header."""

    def session(epochs, logs):
        logger = training.HistoryLogger(str(tmp_path / "history.csv"), append=True)
        logger.on_train_begin()
        for epoch in epochs:
            logger.on_epoch_end(epoch, logs)
        logger.on_train_end()

    session([0], {"g_loss": 1.0, "d_loss": 2.0})
    header = (tmp_path / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,d_loss,g_loss"
    session([1], {"g_loss": 0.5, "d_loss": 1.5, "learning_rate": 0.1})
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines == ["epoch,d_loss,g_loss", "0,2.0,1.0", "1,1.5,0.5"]
    assert training.read_history(tmp_path) == {
        "d_loss": [2.0, 1.5],
        "g_loss": [1.0, 0.5],
    }
    # A history.csv of an older version (with the NA columns) resumes aligned.
    old = "epoch,g_loss,val_g_loss\n0,1.0,NA\n"
    (tmp_path / "history.csv").write_text(old)
    session([1], {"g_loss": 0.5})
    assert (tmp_path / "history.csv").read_text() == old + "1,0.5,NA\n"


def test_warmup_rises_linearly_then_the_cosine_decays_over_the_rest():
    schedule = training.cosine_schedule(1.0, epochs=10, warmup_epochs=2)
    assert [schedule(e) for e in range(3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    cosine = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 7 / 8))
    assert schedule(9) == pytest.approx(cosine)
    assert training.cosine_schedule(1.0, 10)(0) == 1.0  # no warm-up: unchanged


def test_label_smoothing_compiles_a_smoothed_loss_that_round_trips(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "softmax")])
    options = training.TrainOptions(label_smoothing=0.1)
    training.compile_classifier(model, options)
    loss = model.loss
    labels = np.array([0, 2])
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    targets = np.eye(3)[labels] * 0.9 + 0.1 / 3
    expected = np.mean(-(targets * np.log(probabilities)).sum(axis=1))
    assert float(loss(labels, probabilities)) == pytest.approx(expected, rel=1e-5)
    plain = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    assert float(loss(labels, probabilities)) > float(np.mean(plain))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.loss.label_smoothing == pytest.approx(0.1)
