"""apps.training.ProgressLine: a line at least every ~30 s when output is not a
terminal (Keras prints one line per epoch there)."""

import io

import keras
import numpy as np
import tensorflow as tf

from apps import training


def test_a_line_every_interval_with_steps_loss_rate_and_time():
    clock = {"now": 100.0}
    stream = io.StringIO()
    progress = training.ProgressLine(
        epochs=3,
        steps=50,
        global_batch_size=10,
        seconds=30,
        clock=lambda: clock["now"],
        stream=stream,
    )
    progress.on_epoch_begin(1)
    for step in range(50):
        progress.on_train_batch_begin(step)
        clock["now"] += 2.0  # 2 s a step: a line every 15 steps
        progress.on_train_batch_end(step, {"loss": 0.41234, "accuracy": 0.5})
    lines = stream.getvalue().splitlines()
    assert lines == [
        "epoch 2/3, step 15/50: loss 0.4123, 5 images/s, 30 s",
        "epoch 2/3, step 30/50: loss 0.4123, 5 images/s, 60 s",
        "epoch 2/3, step 45/50: loss 0.4123, 5 images/s, 90 s",
    ]
    # A resumed epoch starts part-way: the rate counts this session's steps only.
    stream.truncate(0), stream.seek(0)
    progress.on_epoch_begin(2)
    progress.on_train_batch_begin(40)
    clock["now"] += 40.0
    progress.on_train_batch_end(47, {"d_loss": 1.0, "g_loss": 2.0})
    assert stream.getvalue() == (
        "epoch 3/3, step 48/50: d_loss 1.0000, g_loss 2.0000, 2 images/s, 40 s\n"
    )


def test_fit_prints_progress_lines_when_output_is_not_a_terminal(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(training, "PROGRESS_SECONDS", 0.0)
    options = training.TrainOptions(
        epochs=1, steps_per_epoch=3, steps_per_execution=1, verbose=2
    )
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, "softmax")])
    training.compile_classifier(net, options)
    data = tf.data.Dataset.from_tensor_slices(
        (np.ones((24, 4), "float32"), np.zeros(24, "int64"))
    ).batch(8)
    training.fit(net, data, None, tmp_path, options)
    out = capsys.readouterr().out
    assert "epoch 1/1, step 1/3: loss " in out and "epoch 1/1, step 3/3" in out
    quiet = training.TrainOptions(epochs=1, steps_per_epoch=3, verbose=1)
    training.fit(net, data, None, tmp_path / "tty", quiet)
    assert "epoch 1/1, step" not in capsys.readouterr().out  # the progress bar only
