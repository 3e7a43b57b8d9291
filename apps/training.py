"""The one training core: devices, strategy, optimiser, compile, callbacks, run dir.

Every command that trains (classify, generate, translate, tuning) goes through here, so
that one CPU, several GPUs (MirroredStrategy) and several machines (TF_CONFIG) run the
same code, and every run directory looks the same:

    run_dir/
      model.keras          the final model          best.keras     best on validation
      history.csv          one row per epoch        metrics.json   what came out
      run.json             arguments, versions      tensorboard/   TensorBoard logs
      state/               the exact run state (removed when the run ends well)

Typical use (the order matters: devices first, before TensorFlow initialises them):

>>> options = TrainOptions(epochs=2, batch_size=64, strategy="mirrored", devices=2)
>>> strategy = setup(options)
>>> with strategy.scope():
...     model = apps.build("lenet5", classes=10)
...     compile_model(model, options)
>>> history = fit(model, train_ds, val_ds, run_dir, options)
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps import batch_norm, loop, optimizers
from apps.options import (  # noqa: F401  (re-exported: the core's options)
    DEFAULT_LEARNING_RATES,
    LR_SCHEDULES,
    OPTIMIZERS,
    STRATEGIES,
    TrainOptions,
    _require_choice,
)
from apps.runs import write_json  # noqa: F401  (re-exported for the commands)

NAN_ADVICE = (
    "Try a smaller --learning-rate (e.g. 10x lower), gradient-friendly settings "
    "(--optimizer adam, BatchNorm variants), or check the input data for NaN/Inf. "
    "The last good state is kept in the run directory: re-running the same command "
    "resumes from it."
)


class TrainingError(RuntimeError):
    """Training cannot go on; the message says what happened and what to try."""


# Devices and strategy


def setup(options: TrainOptions) -> tf.distribute.Strategy:
    """Seeds, splits CPUs into logical devices, sets precision; returns the strategy.

    Must run before TensorFlow initialises its devices (before any op runs).
    """
    if options.seed is not None:
        keras.utils.set_random_seed(options.seed)
        tf.config.experimental.enable_op_determinism()
    if options.devices and options.devices > 1:
        split_cpu(options.devices)
    if options.mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    return make_strategy(options.strategy, options.devices)


def split_cpu(devices: int) -> None:
    """Splits the CPU into `devices` logical devices (so MirroredStrategy runs on CPU).

    Does nothing when GPUs are visible (they are the devices then).
    """
    if tf.config.list_physical_devices("GPU"):
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == devices:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError as error:
        raise TrainingError(
            f"cannot split the CPU into {devices} devices: TensorFlow is already "
            "initialised. Call apps.training.setup() before running any TF op."
        ) from error


def mixed_precision_policy() -> str:
    """mixed_float16 on GPUs; mixed_bfloat16 on CPUs, where float16 is emulated."""
    return (
        "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    )


def make_strategy(name: str = "auto", devices: int | None = None):
    """Returns the tf.distribute strategy for `name` (see `STRATEGIES`).

    `auto`: MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy when
    more than one GPU (or, with `devices`, logical CPU) is visible, else the default.
    """
    _require_choice("strategy", name, STRATEGIES)
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multi-worker"
        elif len(_compute_devices(devices)) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    compute = _compute_devices(devices)
    return tf.distribute.MirroredStrategy(
        devices=compute,
        cross_device_ops=None if _has_gpus() else tf.distribute.ReductionToOneDevice(),
    )


def _has_gpus():
    return bool(tf.config.list_physical_devices("GPU"))


def _compute_devices(devices):
    kind = "GPU" if _has_gpus() else "CPU"
    names = [device.name for device in tf.config.list_logical_devices(kind)]
    if devices is not None:
        if devices > len(names):
            raise ValueError(
                f"devices={devices} but only {len(names)} {kind} device(s) are "
                "visible. Lower --devices."
            )
        names = names[:devices]
    return names


def replicas(strategy) -> int:
    return strategy.num_replicas_in_sync


def is_chief(strategy) -> bool:
    """Whether this process writes the run directory (all but multi-worker's others)."""
    return loop.is_chief(strategy)


# Optimiser and compile


def make_optimizer(
    options: TrainOptions, **keras_options
) -> keras.optimizers.Optimizer:
    """The optimiser named in `options`; `weight_decay` is coupled L2 for SGD,
    momentum, Adagrad and RMSprop and decoupled for Adam (AdamW), never on biases
    or normalisation parameters (`apps.optimizers`). `keras_options` (`name=`,
    Adam's `beta_1=`) go to the Keras constructor."""
    learning_rate = options.resolved_learning_rate
    if options.lr_schedule == "rsqrt":  # per step, in the optimiser
        learning_rate = rsqrt_schedule(options)
    return optimizers.make(
        options.optimizer,
        learning_rate,
        options.weight_decay,
        options.momentum,
        **keras_options,
    )


def compile_classifier(model: keras.Model, options: TrainOptions, loss_weights=None):
    """Compiles an image/sequence classifier; extra outputs get `loss_weights`.

    For a model with several outputs (GoogLeNet's auxiliary heads), the first output
    is the main one: loss = main + sum(weight * aux), accuracy reported on the main
    output only. `loss_weights` maps output names to weights (missing -> 1.0).
    With `options.label_smoothing` every output's loss is smoothed.
    """
    names = output_names(model)
    loss = "sparse_categorical_crossentropy"
    if options.label_smoothing:
        loss = SmoothedSparseCrossentropy(options.label_smoothing)
    if len(names) == 1:
        weights = None
        metrics = [
            "accuracy",
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
        ]
    else:
        loss = {name: loss for name in names}
        weights = {name: float((loss_weights or {}).get(name, 1.0)) for name in names}
        metrics = {names[0]: ["accuracy"]}
    model.compile(
        optimizer=make_optimizer(options),
        loss=loss,
        loss_weights=weights,
        metrics=metrics,
        jit_compile=options.jit,
        steps_per_execution=options.steps_per_execution,
    )
    return model


@keras.saving.register_keras_serializable(package="apps.training")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against predicted probabilities, with label
    smoothing (Szegedy et al., 2016): the target is `(1 - eps) * one_hot + eps / K`
    over the K classes. Keras's sparse cross-entropy has no smoothing; this is the
    categorical one on one-hot labels."""

    def __init__(
        self, label_smoothing=0.1, name="smoothed_sparse_crossentropy", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        if len(y_true.shape) == len(y_pred.shape):  # (batch, 1) labels
            y_true = keras.ops.squeeze(y_true, axis=-1)
        one_hot = keras.ops.one_hot(
            keras.ops.cast(y_true, "int32"), y_pred.shape[-1], dtype=y_pred.dtype
        )
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def output_names(model: keras.Model) -> list[str]:
    return [tensor._keras_history.operation.name for tensor in model.outputs]


def labels_for_outputs(dataset: tf.data.Dataset, model: keras.Model):
    """Repeats the label for every output of a multi-output classifier."""
    names = output_names(model)
    if len(names) == 1:
        return dataset
    return dataset.map(lambda x, y: (x, {name: y for name in names}))


# Callbacks


class NaNGuard(keras.callbacks.Callback):
    """Stops at the first non-finite loss by raising, never by `stop_training`.

    Keras's TerminateOnNaN stops gracefully, which runs `on_train_end` (where
    Keras's BackupAndRestore deletes its backup, keras-team/keras#21771) and ends the
    run as if it had finished. An exception ends it as a failure: no state is saved
    after the bad step, and the last good state stays for the re-run.
    """

    def on_train_batch_begin(self, batch, logs=None):
        self._first = batch  # a call can run several steps (steps_per_execution)

    def on_train_batch_end(self, batch, logs=None):
        first = getattr(self, "_first", batch)
        where = f"batch {batch}" if first == batch else f"batches {first}-{batch}"
        for name, value in (logs or {}).items():
            if name.endswith("loss") and not math.isfinite(float(value)):
                raise TrainingError(
                    f"{name} became {float(value)} at {where}. {NAN_ADVICE}"
                )


class Throughput(keras.callbacks.Callback):
    """Training images per second, for metrics.json's ``images_per_second``.

    Timed from step to step (validation excluded). The first call of each traced
    step function (the session's lone first step, and the first group of a
    ``steps_per_execution`` loop) is left out: it includes tracing, which made a
    1-epoch run report a tenth of the steady rate. ``epoch_times`` keeps each
    epoch's whole time (first step to last) and step count.
    """

    def __init__(self, global_batch_size: int):
        super().__init__()
        self.global_batch_size = global_batch_size
        self.epoch_times: list[tuple[float, int]] = []
        self.steady_times: list[tuple[float, int]] = []
        self._traced = set()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last = self._steady_start = time.perf_counter()
        self._first = None
        self._steps = self._steady_steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        if self._first is None:
            self._first = batch
        self._group_start = batch

    def on_train_batch_end(self, batch, logs=None):
        # From batch indices: one call can end a group of steps_per_execution.
        count = batch + 1 - self._group_start
        self._steps = batch + 1 - self._first
        self._last = time.perf_counter()
        traced = count > 1  # one step alone, or the grouped loop: two functions
        if traced in self._traced:
            self._steady_steps += count
        else:  # this call traced its function: time from its end
            self._traced.add(traced)
            self._steady_start, self._steady_steps = self._last, 0

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_times.append((self._last - self._start, self._steps))
        self.steady_times.append((self._last - self._steady_start, self._steady_steps))

    @property
    def images_per_second(self) -> float | None:
        """Global images per second over the steps after tracing (all epochs of
        this session); the whole epochs where no step was left after it."""
        for measured in (self.steady_times, self.epoch_times):
            seconds = sum(duration for duration, _ in measured)
            steps = sum(count for _, count in measured)
            if seconds > 0 and steps:
                return steps * self.global_batch_size / seconds
        return None


class HistoryLogger(keras.callbacks.CSVLogger):
    """history.csv: Keras's CSVLogger without its empty ``val_*`` columns.

    Keras adds a ``val_<key>`` column for every key when the first epoch has no
    validation logs (for a later ``validation_freq``); the loop validates every
    epoch or never, so those columns would stay NA (a GAN's 11 of them). A resumed
    session appends under the file's own header, whatever its columns.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._header = _csv_header(self.filename) if self.append else None

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None:
            self.keys = self._header[1:] if self._header else sorted(logs or {})
        super().on_epoch_end(epoch, logs)


def _csv_header(path) -> list[str] | None:
    import csv

    try:
        with open(path, newline="") as file:
            header = next(csv.reader(file), None)
    except OSError:
        return None
    return header if header and header[0] == "epoch" else None


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """TensorBoard that skips per-batch logs at `update_freq="epoch"`: Keras 3.15
    runs `summary.scalar` for every log of every batch even then (dropped without a
    writer, but each costs eager ops; ~5 % of a LeNet-5 step on 2 CPUs)."""

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch":
            logs = None
        super().on_train_batch_end(batch, logs)


class _LearningRateLog(keras.callbacks.Callback):
    """Logs the rate of an optimiser-held schedule at each epoch's end."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            rate = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))


def _learning_rate_callback(options, monitor, mode):
    base = options.resolved_learning_rate
    if options.lr_schedule == "rsqrt":  # the optimiser's schedule sets every step
        return _LearningRateLog()
    if options.lr_schedule == "cosine":
        return keras.callbacks.LearningRateScheduler(
            cosine_schedule(base, options.epochs, options.warmup_epochs)
        )
    if options.lr_schedule == "constant":
        # Set at every epoch, so that a run resumed after a fix (a lower
        # --learning-rate after a NaN) uses the new rate, not the saved one.
        warmup = options.warmup_epochs
        return keras.callbacks.LearningRateScheduler(
            lambda epoch: base * min(1.0, (epoch + 1) / (warmup + 1))
        )
    return keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, patience=2)


def best_so_far(run_dir, monitor: str, mode: str) -> float | None:
    """The best `monitor` value in the run's history.csv (earlier sessions of a
    resumed run), so that best.keras is only replaced by a better model; None for
    a new run. `mode` as Keras's: "auto" means higher is better for accuracies."""
    if not (Path(run_dir) / "best.keras").exists():
        return None
    values = [
        value
        for value in read_history(run_dir).get(monitor, [])
        if math.isfinite(value)
    ]
    if not values:
        return None
    higher = mode == "max" or (mode == "auto" and "acc" in monitor)
    return max(values) if higher else min(values)


def cosine_schedule(base: float, epochs: int, warmup_epochs: int = 0):
    """Cosine decay per epoch, from `base` to 1 % of it; a pure function of the epoch,
    so a resumed run gets exactly the learning rate it would have had.

    With `warmup_epochs` W the rate first rises linearly, `base * (e + 1) / (W + 1)`
    at epoch `e < W` (Goyal et al.'s gradual warm-up, per epoch), and the cosine
    runs over the remaining `epochs - W` epochs."""

    def schedule(epoch, learning_rate=None):
        if epoch < warmup_epochs:
            return base * (epoch + 1) / (warmup_epochs + 1)
        decay_epochs = max(epochs - warmup_epochs, 1)
        progress = min((epoch - warmup_epochs) / decay_epochs, 1.0)
        return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))

    return schedule


WARMUP_SHARE = 0.04  # rsqrt: the paper's 4,000 warm-up steps of 100,000


@keras.saving.register_keras_serializable(package="apps.training")
class RsqrtSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Vaswani et al.'s warm-up, then inverse square root decay, peaking at `peak`.

    `lr = peak * min(n / warmup, sqrt(warmup / n))` at step `n` (the optimiser's
    step counter + 1): the paper's `d_model^-0.5 * min(n^-0.5, n * warmup^-1.5)`
    with its peak `(d_model * warmup)^-0.5` given as `peak` (fairseq's
    inverse_sqrt). A pure function of the step counter, which the run state
    saves with the optimiser, so a resumed run gets every step's rate exactly.
    """

    def __init__(self, peak: float, warmup_steps: int):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32") + 1.0
        warmup = float(self.warmup_steps)
        return self.peak * keras.ops.minimum(
            step / warmup, keras.ops.sqrt(warmup / step)
        )

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}


def rsqrt_schedule(options: TrainOptions) -> RsqrtSchedule:
    """The `rsqrt` schedule of a run: the learning rate is its peak, reached after
    `WARMUP_SHARE` of the run's steps (a share, not the paper's 4,000 steps, so
    that a short run warms up too)."""
    if options.steps_per_epoch is None:
        raise ValueError(
            "lr_schedule='rsqrt' needs steps_per_epoch (its warm-up is "
            f"{WARMUP_SHARE:.0%} of the run's steps). Received: steps_per_epoch=None"
        )
    steps = options.epochs * options.steps_per_epoch
    return RsqrtSchedule(
        options.resolved_learning_rate, max(1, round(WARMUP_SHARE * steps))
    )


def make_callbacks(
    run_dir: Path,
    options: TrainOptions,
    throughput: Throughput,
    monitor: str = "val_loss",
) -> list[keras.callbacks.Callback]:
    """The standard callbacks of every run (see the module docstring's layout)."""
    # Keras guesses the direction only for names it knows ("g_loss" is not one).
    mode = "min" if monitor.endswith("loss") or monitor.endswith("fid") else "auto"
    callbacks = [
        NaNGuard(),
        throughput,
        # Before the checkpoint and history.csv: the plateau callback logs the
        # epoch's learning rate (and may lower it) in on_epoch_end.
        _learning_rate_callback(options, monitor, mode),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.keras"),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            initial_value_threshold=best_so_far(run_dir, monitor, mode),
        ),
        HistoryLogger(str(run_dir / "history.csv"), append=True),
        EpochTensorBoard(str(run_dir / "tensorboard")),
    ]
    if options.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=options.early_stopping,
                restore_best_weights=True,
            )
        )
    return callbacks


PROGRESS_SECONDS = 30.0  # ProgressLine's interval


class ProgressLine(keras.callbacks.Callback):
    """A short line during the epoch, at most one every `seconds`, where Keras prints
    one line per epoch (output that is not a terminal: a pipe, a log file), so that
    a long epoch is not minutes of silence::

        epoch 3/10, step 120/469: loss 0.4123, 1,234 images/s, 45 s

    The images/s are those since the previous line; the seconds, the epoch's so far.
    A line can only come between two calls of the step function (every
    ``steps_per_execution`` steps). `clock` and `stream` are for tests.
    """

    def __init__(
        self,
        epochs: int,
        steps: int,
        global_batch_size: int,
        seconds: float | None = None,
        clock=time.monotonic,
        stream=None,
    ):
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.global_batch_size = global_batch_size
        self.seconds = PROGRESS_SECONDS if seconds is None else seconds
        self.clock, self.stream = clock, stream

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = self._last = self.clock()
        self._last_step = None  # a resumed epoch starts part-way

    def on_train_batch_begin(self, batch, logs=None):
        if self._last_step is None:
            self._last_step = batch

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if now - self._last < self.seconds:
            return
        done = batch + 1
        images = (done - self._last_step) * self.global_batch_size
        losses = ", ".join(
            f"{key} {float(value):.4f}"
            for key, value in sorted((logs or {}).items())
            if key.endswith("loss")
        )
        print(
            f"epoch {self._epoch + 1}/{self.epochs}, step {done}/{self.steps}: "
            f"{losses + ', ' if losses else ''}"
            f"{images / max(now - self._last, 1e-9):,.0f} images/s, "
            f"{now - self._start:.0f} s",
            file=self.stream or sys.stdout,
            flush=True,
        )
        self._last, self._last_step = now, done


# Fit and the run directory


def fit(
    model,
    train,
    validation,
    run_dir,
    options: TrainOptions,
    *,
    strategy=None,
    extra_callbacks=(),
    monitor=None,
):
    """Trains `model` (compiled, built in `strategy`'s scope) and records the run.

    Args:
        train, validation: batched datasets, batched with the *global* batch size.
        run_dir: the run directory; re-running with the same one resumes.
        options: the TrainOptions.
        strategy: the strategy the model was built under (for `replicas`).
        extra_callbacks: more callbacks (e.g. a GAN's sample-grid writer).
        monitor: the log key for the best checkpoint, the LR plateau and early
            stopping; default `val_loss`, or `loss` without validation data.

    Returns:
        `(history dict, Throughput)`.

    Raises:
        TrainingError: on a non-finite loss (the last good state is kept).
    """
    strategy = strategy or tf.distribute.get_strategy()
    workspace = loop.WorkerDirectory(run_dir, strategy)
    workspace.path.mkdir(parents=True, exist_ok=True)
    throughput = Throughput(options.batch_size * replicas(strategy))
    if monitor is None:
        monitor = "val_loss" if validation is not None else "loss"
    verbose = _verbosity(options.verbose) if workspace.chief else 0
    steps = options.steps_per_epoch or _known_steps(train)
    # One line per epoch (verbose 2, not a terminal): also a line every 30 s.
    progress = [ProgressLine(options.epochs, steps, throughput.global_batch_size)]
    callbacks = keras.callbacks.CallbackList(
        # Extra callbacks first: what they add to the logs (a GAN's FID) reaches
        # the checkpoint, history.csv and TensorBoard.
        [
            *extra_callbacks,
            *make_callbacks(workspace.path, options, throughput, monitor),
            *(progress if verbose == 2 else []),
        ],
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=options.epochs,
        steps=steps,
    )
    state = loop.RunState(workspace.run_dir / "state", writable=workspace.chief)
    try:
        history = _run_loop(
            model, strategy, options, train, validation, steps, callbacks, state
        )
        _recalibrate_batch_norm(model, train, options, strategy, verbose)
        if workspace.chief:
            model.save(workspace.path / "model.keras")
        state.clear()
    finally:
        workspace.cleanup()
    return history, throughput


def _recalibrate_batch_norm(model, train, options, strategy, verbose):
    """The BN statistics pass over epoch 0's training batches (a pure function of
    the seed, so a run resumed after a kill here repeats it exactly)."""
    steps = options.resolved_bn_recalibration_steps
    if not steps or not batch_norm.batch_norm_layers(model):
        return
    started = time.perf_counter()
    stream = train(0) if callable(train) else train
    averaged = batch_norm.recalibrate(model, stream, steps, strategy)
    if verbose:
        print(
            f"BatchNorm statistics recomputed over {averaged} training batches "
            f"({time.perf_counter() - started:.1f} s)."
        )


def _run_loop(model, strategy, options, train, validation, steps, callbacks, state):
    try:
        return loop.DistributedLoop(
            model,
            strategy,
            jit=options.jit,
            steps_per_execution=options.steps_per_execution,
        ).run(
            train,
            validation,
            epochs=options.epochs,
            steps_per_epoch=steps,
            callbacks=callbacks,
            state=state,
            checkpoint_every=options.checkpoint_every,
        )
    except tf.errors.OpError as error:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        raise TrainingError(
            "a peer worker stopped or became unreachable "
            f"({type(error).__name__}: {str(error).splitlines()[0]}). Restart every "
            "worker with the same command: they resume from the last saved state."
        ) from error


def _known_steps(train):
    if callable(train):
        raise ValueError("steps_per_epoch is required with a training stream factory")
    steps = int(train.cardinality())
    if steps < 0:
        raise ValueError(
            "steps_per_epoch is required: the training dataset is endless or of "
            "unknown size (see apps.data.images.epoch_steps)."
        )
    return steps


def _verbosity(verbose):
    """A progress bar on a terminal, one line per epoch in a log file."""
    if verbose != "auto":
        return verbose
    import sys

    return 1 if sys.stdout.isatty() else 2


def read_history(run_dir) -> dict[str, list[float]]:
    """The whole history of a run from history.csv (all sessions of a resumed run)."""
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return {}
    import csv

    with open(path, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("epoch", "").isdigit()]
    by_epoch = {int(row["epoch"]): row for row in rows}  # a resumed epoch: last wins
    ordered = [by_epoch[epoch] for epoch in sorted(by_epoch)]
    columns = {
        key: [_number(row[key]) for row in ordered]
        for key in (ordered[0] if ordered else {})
        if key != "epoch"
    }
    return {
        key: values
        for key, values in columns.items()
        if not all(math.isnan(value) for value in values)
    }


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):  # CSVLogger writes "NA" for a missing value
        return float("nan")


def versions() -> dict[str, str]:
    """Library versions recorded with every run."""
    import keras_tuner
    import tensorflow_datasets

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_datasets": tensorflow_datasets.__version__,
        "keras_tuner": keras_tuner.__version__,
        "numpy": np.__version__,
    }
