"""A prototype of `apps.loop.DistributedLoop` with steps per execution and sparse logs.

Benchmarks only (issue 11): it is what the measurements recommend for the training
core, written as a subclass so that it can be swapped in by monkeypatching
(`install(...)`) without editing `apps/`. Two changes, each optional:

- ``steps_per_execution=k``: one `tf.function` call runs k training steps in a
  `tf.range` loop (what `model.fit(steps_per_execution=k)` does), so the Python
  dispatch of a call is paid once per k steps;
- ``log_every=N`` (a multiple of k; default k): the metrics are read (tensor ->
  float, a few eager ops and a host sync each) and `on_train_batch_begin/end` are
  called once per N steps, with the index of the first / last step of the group,
  as Keras's own `fit` does with `steps_per_execution`.

The steps run, their order and their data are the same as the per-step loop's, so the
weights are too (checked bit for bit by `benchmarks/tf_cpu_settings.py`). A
non-finite loss is still caught before any state is saved: groups end at every
`checkpoint_every` boundary and the logs are read before each save. Throughput
callbacks that count `on_train_batch_end` calls must count `batch - first + 1`
instead (see the recommendation in `benchmarks/README.md`).
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf

from apps import loop


class PrototypeLoop(loop.DistributedLoop):
    """`DistributedLoop` with `steps_per_execution` and `log_every` (see module doc)."""

    def __init__(
        self,
        model,
        strategy,
        *,
        jit: bool = False,
        steps_per_execution: int = 1,
        log_every: int | None = None,
    ):
        super().__init__(model, strategy, jit=jit)
        self.steps_per_execution = int(steps_per_execution)
        self.log_every = int(log_every or steps_per_execution)
        if self.log_every % self.steps_per_execution:
            raise ValueError(
                "log_every must be a multiple of steps_per_execution. Received: "
                f"log_every={log_every}, steps_per_execution={steps_per_execution}"
            )
        train_step = tf.function(
            model.train_step, jit_compile=jit, reduce_retracing=True
        )

        @tf.function
        def train_steps(iterator, steps):
            # `steps` is a tensor: one trace serves every group size.
            for _ in tf.range(steps):
                strategy.run(train_step, args=(next(iterator),))

        self.train_steps = train_steps

    def run_steps(self, iterator, steps: int) -> None:
        """Runs `steps` training steps, `steps_per_execution` per call."""
        while steps > 0:
            count = min(steps, self.steps_per_execution)
            if count == 1:
                self.train_function(iterator)
            else:
                self.train_steps(iterator, tf.constant(count, tf.int32))
            steps -= count

    def run(
        self,
        train,
        validation,
        *,
        epochs,
        steps_per_epoch,
        callbacks,
        state,
        checkpoint_every=None,
        validation_steps=None,
    ) -> dict:
        """As `DistributedLoop.run`, the inner loop in groups of `log_every` steps."""
        model = self.model
        loop.build_optimizers(model, self.strategy)
        variables = loop.state_variables(model)
        position = state.restore(variables) or {"epoch": 0, "step": 0, "global_step": 0}
        start_epoch, start_step = position["epoch"], position["step"]
        stream = loop._stream_from(train, start_epoch, start_step, steps_per_epoch)
        iterator = iter(
            self.strategy.experimental_distribute_dataset(loop._by_data(stream))
        )
        model.stop_training = False
        callbacks.on_train_begin()
        for epoch in range(start_epoch, epochs):
            callbacks.on_epoch_begin(epoch)
            if epoch != start_epoch or start_step == 0:
                model.reset_metrics()
            step = start_step if epoch == start_epoch else 0
            while step < steps_per_epoch:
                global_step = epoch * steps_per_epoch + step
                count = min(self.log_every, steps_per_epoch - step)
                if checkpoint_every:  # a group never spans a checkpoint
                    to_checkpoint = checkpoint_every - global_step % checkpoint_every
                    count = min(count, to_checkpoint)
                callbacks.on_train_batch_begin(step)
                self.run_steps(iterator, count)
                step += count
                global_step += count
                callbacks.on_train_batch_end(step - 1, self.metrics())
                if (
                    checkpoint_every
                    and global_step % checkpoint_every == 0
                    and step < steps_per_epoch
                ):
                    state.save(
                        variables,
                        {"epoch": epoch, "step": step, "global_step": global_step},
                    )
                if model.stop_training:
                    break
            epoch_logs = self.metrics()
            if validation is not None:
                val_logs = self.evaluate(validation, validation_steps)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callbacks.on_epoch_end(epoch, epoch_logs)
            state.save(
                variables,
                {
                    "epoch": epoch + 1,
                    "step": 0,
                    "global_step": (epoch + 1) * steps_per_epoch,
                },
            )
            if model.stop_training:
                break
        callbacks.on_train_end(epoch_logs if epochs > start_epoch else {})
        history = next(
            c for c in callbacks.callbacks if isinstance(c, keras.callbacks.History)
        )
        return history.history


class GroupedThroughput:
    """Mixin for `apps.training.Throughput`: counts the steps of an epoch from the
    batch indices (`last - first + 1`), so that one `on_train_batch_end` for a group
    of steps counts all of them (the per-call `_steps += 1` would count one)."""

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._first = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._first is None:
            self._first = batch

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1 - self._first
        self._last = time.perf_counter()


def install(steps_per_execution: int = 1, log_every: int | None = None) -> None:
    """Makes `apps.training.fit` use the prototype (monkeypatch, this process only)."""
    from apps import training

    def factory(model, strategy, *, jit=False):
        return PrototypeLoop(
            model,
            strategy,
            jit=jit,
            steps_per_execution=steps_per_execution,
            log_every=log_every,
        )

    loop.DistributedLoop = factory
    if not issubclass(training.Throughput, GroupedThroughput):
        training.Throughput = type(
            "Throughput", (GroupedThroughput, training.Throughput), {}
        )


def epoch_tensorboard():
    """`keras.callbacks.TensorBoard` that, at `update_freq="epoch"` (the default),
    gets no per-batch logs: Keras 3.15 calls `summary.scalar` for every log of every
    batch even then (with no writer set they are dropped, but each costs eager ops)."""
    import keras

    class EpochTensorBoard(keras.callbacks.TensorBoard):
        def on_train_batch_end(self, batch, logs=None):
            if self.update_freq == "epoch":
                logs = None
            super().on_train_batch_end(batch, logs)

    return EpochTensorBoard


def install_epoch_tensorboard() -> None:
    """Makes `apps.training.make_callbacks` use `epoch_tensorboard()` (monkeypatch)."""
    from apps import training

    original = training.make_callbacks
    board = epoch_tensorboard()

    def make_callbacks(*args, **kwargs):
        callbacks = original(*args, **kwargs)
        for index, callback in enumerate(callbacks):
            if type(callback) is keras.callbacks.TensorBoard:
                callbacks[index] = board(callback.log_dir)
        return callbacks

    training.make_callbacks = make_callbacks
