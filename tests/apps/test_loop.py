"""apps.loop.DistributedLoop with steps_per_execution: same training, fewer calls."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from probes import StepGroups

from apps import loop, training


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype("float32")
    y = rng.integers(0, 3, size=80)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()


def _train(tmp_path, steps_per_execution, checkpoint_every=None):
    keras.utils.set_random_seed(0)
    options = training.TrainOptions(
        epochs=2,
        steps_per_epoch=10,
        lr_schedule="constant",
        verbose=0,
        seed=0,
        steps_per_execution=steps_per_execution,
        checkpoint_every=checkpoint_every,
    )
    net = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(3)]
    )
    net = training.compile_classifier(net, options)
    recorder = StepGroups()
    saved = []
    original_save = loop.RunState.save

    def save(state, variables, position, *args):
        saved.append(position["global_step"])
        original_save(state, variables, position, *args)

    loop.RunState.save = save
    try:
        _, throughput = training.fit(
            net, _data(), None, tmp_path, options, extra_callbacks=[recorder]
        )
    finally:
        loop.RunState.save = original_save
    return net, recorder.calls, saved, throughput


def test_groups_train_exactly_like_single_steps(tmp_path):
    single, single_calls, _, _ = _train(tmp_path / "one", 1)
    grouped, calls, saved, throughput = _train(tmp_path / "four", 4, checkpoint_every=6)
    for a, b in zip(single.get_weights(), grouped.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(grouped.optimizer.iterations.numpy()) == 20
    assert len(single_calls) == 20
    # First step of the session alone (it builds the metrics), then groups of 4,
    # cut at the epoch's end and at every checkpoint (global steps 6, 12, 18).
    assert calls == [(0, 0), (1, 4), (5, 5), (6, 9), (0, 1), (2, 5), (6, 7), (8, 9)]
    assert saved == [6, 10, 12, 18, 20]
    assert [steps for _, steps in throughput.epoch_times] == [10, 10]


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "8"])
def test_bad_steps_per_execution(value):
    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="steps_per_execution must be a positive"):
        loop.DistributedLoop(
            net, tf.distribute.get_strategy(), steps_per_execution=value
        )


def test_steps_per_execution_is_on_by_default():
    # Measured: +24 % LeNet-5 images/s on 2 CPUs (benchmarks/tf_cpu_settings.py).
    assert training.TrainOptions().steps_per_execution == 8


class Interrupt(Exception):
    pass


class InterruptAt(keras.callbacks.Callback):
    """Stops the process's run at the start of an epoch (its state is saved)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupt


def _plateau_run(run_dir, interrupt_at=None):
    """Random labels: the validation loss stalls, so the LR plateau callback lowers
    the rate and early stopping ends the run, both depending on earlier epochs."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(48, 5)).astype("float32")
    y = rng.integers(0, 3, size=48)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    held_out = rng.normal(size=(16, 5)).astype("float32"), rng.integers(0, 3, 16)
    validation = tf.data.Dataset.from_tensor_slices(held_out).batch(16)
    options = training.TrainOptions(
        epochs=16,
        steps_per_epoch=3,
        learning_rate=0.05,
        lr_schedule="plateau",
        early_stopping=4,
        verbose=0,
        seed=0,
    )

    def fit(extra):
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
        net = training.compile_classifier(net, options)
        training.fit(net, train, validation, run_dir, options, extra_callbacks=extra)
        return net

    if interrupt_at is not None:
        with pytest.raises(Interrupt):
            fit([InterruptAt(interrupt_at)])
    net = fit([])
    return net, training.read_history(run_dir)


@pytest.mark.parametrize(
    "interrupt_at",
    [pytest.param(5, marks=pytest.mark.slow), 8],  # 8: mid-plateau
)
def test_plateau_and_early_stopping_resume_exactly(tmp_path, interrupt_at):
    straight, history = _plateau_run(tmp_path / "straight")
    resumed, resumed_history = _plateau_run(tmp_path / "resumed", interrupt_at)
    rates = history["learning_rate"]
    assert min(rates) < rates[0], "the plateau callback never lowered the rate"
    assert len(rates) < 16, "early stopping never stopped the run"
    assert resumed_history == history
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # incl. the restored best weights
