"""The distributed training loop and the exact run state behind `apps.training.fit`.

Why not `model.fit`: on Keras 3.15 / TF 2.21 it fails under
MultiWorkerMirroredStrategy before training starts (keras-team/keras#20585: its
symbolic build reduces the first input batch across workers, and its metric reduction
asks for axis 0 of scalars), and its BackupAndRestore resumes only at epoch boundaries
from mid-epoch weights. This loop is what `fit` does — `strategy.run(model.train_step)`
per replica, Keras callbacks, a progress bar — with one code path for the default
strategy, MirroredStrategy and MultiWorkerMirroredStrategy, and with a run state that
makes a killed run continue exactly:

- the state holds every model variable (weights, BatchNorm statistics, the seed
  generators behind Dropout), every optimiser variable and the metric accumulators;
- the training stream is a pure function of (seed, epoch, batch) (see
  `apps.data.images.pipeline`), so a run resumed at (epoch, batch) sees what the killed
  run would have seen;
- state files are written atomically (temporary file, `os.replace`), checked on load
  (SHA-256, names and shapes), and the previous good state is kept: a truncated or
  corrupt latest state falls back to the one before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps.errors import require_positive_int
from apps.runs import atomic_write

STATE_KEEP = 2


class RunState:
    """The resumable state of a run: numbered snapshots in one directory.

    Each snapshot is `state-<global step>.npz` (variables) plus `.json` (where the run
    stood, the variables' names and shapes, the npz's SHA-256). The JSON is written
    last, so it marks a complete snapshot.
    """

    def __init__(self, directory, writable: bool = True):
        self.directory = Path(directory)
        self.writable = writable

    def save(self, variables, position: dict, callbacks=None, extra_arrays=()) -> None:
        """Saves `variables`, where the run stands, the callbacks' state (a JSON-able
        dict) and `extra_arrays` (NumPy arrays that are not variables, e.g.
        EarlyStopping's best weights)."""
        # Every worker reads (a read can be a collective op); only a writer writes.
        arrays = {
            f"v{index}": np.asarray(v.numpy()) for index, v in enumerate(variables)
        }
        arrays.update({f"x{i}": np.asarray(a) for i, a in enumerate(extra_arrays)})
        if not self.writable:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        step = int(position["global_step"])
        data_path = self.directory / f"state-{step:010d}.npz"
        atomic_write(data_path, lambda file: np.savez(file, **arrays))
        meta = {
            "position": position,
            "variables": [
                [_name(v), list(np.shape(arrays[f"v{i}"]))]
                for i, v in enumerate(variables)
            ],
            "callbacks": callbacks or {},
            "extra_arrays": len(extra_arrays),
            "sha256": _sha256(data_path),
            "saved_at": time.time(),
        }
        text = json.dumps(meta, indent=1).encode()
        atomic_write(data_path.with_suffix(".json"), lambda file: file.write(text))
        self._prune()

    def restore(self, variables) -> dict | None:
        """Loads the newest good snapshot into `variables`; returns its position.

        The snapshot's callback state and extra arrays are left in `self.callbacks`
        and `self.extra_arrays`.
        """
        self.callbacks, self.extra_arrays = {}, []
        for meta_path in sorted(self.directory.glob("state-*.json"), reverse=True):
            try:
                meta, arrays, extra = self._read(meta_path, variables)
            except (OSError, ValueError, KeyError) as error:
                print(f"warning: skipping damaged run state {meta_path.name}: {error}")
                continue
            for variable, value in zip(variables, arrays, strict=True):
                variable.assign(value)
            self.callbacks, self.extra_arrays = meta.get("callbacks", {}), extra
            return meta["position"]
        return None

    def _read(self, meta_path, variables):
        meta = json.loads(meta_path.read_text())
        data_path = meta_path.with_suffix(".npz")
        if _sha256(data_path) != meta["sha256"]:
            raise ValueError("its data file does not match its checksum")
        # Shapes, not names: Keras numbers auto-named layers per process
        # ("dense_1"), so names of one architecture can differ between sessions.
        saved = [shape for _, shape in meta["variables"]]
        if saved != [list(v.shape) for v in variables]:
            raise ValueError("it was saved from a different model or optimiser")
        with np.load(data_path) as data:
            arrays = [data[f"v{index}"] for index in range(len(variables))]
            extra = [data[f"x{i}"] for i in range(meta.get("extra_arrays", 0))]
        return meta, arrays, extra

    def _prune(self):
        snapshots = sorted(self.directory.glob("state-*.json"), reverse=True)
        for old in snapshots[STATE_KEEP:]:
            old.with_suffix(".npz").unlink(missing_ok=True)
            old.unlink(missing_ok=True)
        for orphan in self.directory.glob("state-*.npz"):
            if not orphan.with_suffix(".json").exists() and orphan.stat().st_mtime < (
                time.time() - 60
            ):
                orphan.unlink(missing_ok=True)

    def clear(self) -> None:
        if self.writable:
            shutil.rmtree(self.directory, ignore_errors=True)


def _name(variable):
    return getattr(variable, "path", None) or variable.name


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def optimizers(model: keras.Model) -> list:
    """`model.optimizer` and optimisers held as attributes (a GAN's two), in order."""
    found = [model.optimizer] if model.optimizer is not None else []
    for value in vars(model).values():
        if isinstance(value, keras.optimizers.Optimizer) and value not in found:
            found.append(value)
    return found


def build_optimizers(model: keras.Model, strategy) -> None:
    """Creates optimiser slots now: a state saved before the first step must hold them.

    `model.optimizer` is built for `model.trainable_variables`; optimisers held as
    attributes must be built by their model (e.g. in `compile`).
    """
    if model.optimizer is not None and not model.optimizer.built:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
    unbuilt = [o for o in optimizers(model) if not o.built]
    if unbuilt:
        raise ValueError(
            f"{type(model).__name__} holds optimisers that are not built "
            f"({[o.name for o in unbuilt]}); build them (optimizer.build(variables)) "
            "before training, or their state cannot be saved and resumed."
        )


def state_variables(model: keras.Model) -> list:
    """Model, optimiser and metric variables, each once, in a stable order.

    Compiled metrics are built lazily by the first step; their accumulators are left
    out (they only affect the logs of an interrupted epoch, never the weights).
    """
    seen, ordered = set(), []
    optimizer_variables = [v for o in optimizers(model) for v in o.variables]
    for variable in [*model.variables, *optimizer_variables, *model.metrics_variables]:
        if id(variable) not in seen:
            seen.add(id(variable))
            ordered.append(variable)
    return ordered


def is_chief(strategy) -> bool:
    """Whether this process writes the run directory (always, but for multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


class WorkerDirectory:
    """The run directory for the chief; a temporary one, removed after, for others."""

    def __init__(self, run_dir, strategy):
        self.chief = is_chief(strategy)
        self.run_dir = Path(run_dir)
        self.path = (
            self.run_dir if self.chief else Path(tempfile.mkdtemp(prefix="worker-"))
        )

    def cleanup(self):
        if not self.chief:
            shutil.rmtree(self.path, ignore_errors=True)


# What a callback must remember for a resumed run to decide as the uninterrupted one
# (the learning rate itself is an optimiser variable, saved with the others).
CALLBACK_STATE = {
    keras.callbacks.EarlyStopping: ("wait", "stopped_epoch", "best", "best_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
}


def _stateful(callbacks):
    """(key, callback, attributes) of the stateful callbacks; keyed by type and
    rank among those of its type, since other callbacks may differ between sessions."""
    found, seen = [], {}
    for callback in callbacks.callbacks:
        for kind, attributes in CALLBACK_STATE.items():
            if isinstance(callback, kind):
                rank = seen[kind] = seen.get(kind, -1) + 1
                found.append((f"{kind.__name__}#{rank}", callback, attributes))
    return found


def callback_state(callbacks) -> tuple[dict, list]:
    """The state of `callbacks`' EarlyStopping / ReduceLROnPlateau: a JSON-able dict
    and a list of arrays (EarlyStopping's best weights, when it restores them)."""
    saved, arrays = {}, []
    for key, callback, attributes in _stateful(callbacks):
        entry = {name: _plain(getattr(callback, name, None)) for name in attributes}
        weights = getattr(callback, "best_weights", None)
        if weights is not None:
            entry["best_weights"] = [len(arrays), len(weights)]
            arrays.extend(weights)
        saved[key] = entry
    return saved, arrays


def restore_callback_state(callbacks, saved: dict, arrays) -> None:
    """Puts `callback_state`'s values back (after `on_train_begin`, which resets)."""
    for key, callback, attributes in _stateful(callbacks):
        entry = saved.get(key)
        if entry is None:
            continue
        for name in attributes:
            setattr(callback, name, entry.get(name))
        if "best_weights" in entry:
            start, count = entry["best_weights"]
            callback.best_weights = list(arrays[start : start + count])


def _plain(value):
    return float(value) if isinstance(value, (np.floating, np.integer)) else value


class DistributedLoop:
    """Runs `model.train_step` / `test_step` under `strategy`, with Keras callbacks.

    `steps_per_execution` training steps run in one `tf.function` call (a `tf.range`
    loop, as `model.fit(steps_per_execution=k)` does), so the Python dispatch, the
    metric reads and the callbacks are paid once per group of steps: 8 steps per call
    train LeNet-5 1.16x as fast as 1 on a 2-core CPU (`benchmarks/tf_cpu_settings.py`),
    to bit-identical weights. Callbacks see `on_train_batch_begin(first)` and
    `on_train_batch_end(last, logs)` once per group (Keras's convention); groups
    never span a checkpoint, and the logs (NaN check) are read before every save.
    """

    def __init__(self, model, strategy, *, jit: bool = False, steps_per_execution=1):
        require_positive_int("steps_per_execution", steps_per_execution)
        self.model = model
        self.strategy = strategy
        self.steps_per_execution = steps_per_execution
        self._built = False
        train_step = tf.function(
            model.train_step, jit_compile=jit, reduce_retracing=True
        )
        test_step = tf.function(model.test_step, jit_compile=jit, reduce_retracing=True)

        @tf.function
        def train_function(iterator):
            strategy.run(train_step, args=(next(iterator),))

        @tf.function
        def train_steps(iterator, steps):
            # `steps` is a tensor: one trace serves every group size.
            for _ in tf.range(steps):
                strategy.run(train_step, args=(next(iterator),))

        @tf.function
        def test_function(batch):
            strategy.run(test_step, args=(batch,))

        self.train_function = train_function
        self.train_steps = train_steps
        self.test_function = test_function

    def run_steps(self, iterator, steps: int) -> None:
        """Runs `steps` training steps in one call (one step alone: no loop)."""
        if steps == 1:
            self.train_function(iterator)
        else:
            self.train_steps(iterator, tf.constant(steps, tf.int32))

    def _group(self, step, global_step, steps_per_epoch, checkpoint_every) -> int:
        """How many steps the next call runs: the first step of a session alone,
        then `steps_per_execution`, cut at the epoch's end and at checkpoints.

        The lone first step is a precaution, not a measured need: any variable a
        model or its metrics create lazily is then created in a plain trace, outside
        a loop body (Keras's compiled metrics also worked when grouped).
        """
        if not self._built:
            self._built = True
            return 1
        count = min(self.steps_per_execution, steps_per_epoch - step)
        if checkpoint_every:
            count = min(count, checkpoint_every - global_step % checkpoint_every)
        return count

    def metrics(self) -> dict:
        return {
            name: float(value)
            for name, value in self.model.get_metrics_result().items()
            if np.ndim(value) == 0
        }

    def evaluate(self, dataset, steps=None) -> dict:
        self.model.reset_metrics()
        distributed = self.strategy.experimental_distribute_dataset(
            shard_by_data(dataset)
        )
        for index, batch in enumerate(distributed):
            if steps is not None and index >= steps:
                break
            self.test_function(batch)
        return self.metrics()

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
        """Trains from where `state` stood (or the start) to `epochs` epochs.

        Args:
            train: an endless batched dataset starting at epoch 0, or a callable
                `start_epoch -> that stream from start_epoch on` (faster to resume)
                when every epoch of `steps_per_epoch` steps is one data epoch.
            validation: a finite batched dataset, or None.
            callbacks: a `keras.callbacks.CallbackList` (with its History).
            state: a `RunState`; saved after every epoch and every
                `checkpoint_every` steps.

        Returns:
            The History callback's `history` dict for this session.
        """
        model = self.model
        build_optimizers(model, self.strategy)
        variables = state_variables(model)
        position = state.restore(variables) or {"epoch": 0, "step": 0, "global_step": 0}
        start_epoch, start_step = position["epoch"], position["step"]
        stream = _stream_from(train, start_epoch, start_step, steps_per_epoch)
        iterator = iter(
            self.strategy.experimental_distribute_dataset(shard_by_data(stream))
        )
        model.stop_training = False
        callbacks.on_train_begin()
        restore_callback_state(callbacks, state.callbacks, state.extra_arrays)

        def save(position):
            state.save(variables, position, *callback_state(callbacks))

        for epoch in range(start_epoch, epochs):
            callbacks.on_epoch_begin(epoch)
            if epoch != start_epoch or start_step == 0:
                model.reset_metrics()
            step = start_step if epoch == start_epoch else 0
            while step < steps_per_epoch:
                global_step = epoch * steps_per_epoch + step
                count = self._group(
                    step, global_step, steps_per_epoch, checkpoint_every
                )
                callbacks.on_train_batch_begin(step)
                self.run_steps(iterator, count)
                step, global_step = step + count, global_step + count
                callbacks.on_train_batch_end(step - 1, self.metrics())
                if (
                    checkpoint_every
                    and global_step % checkpoint_every == 0
                    and step < steps_per_epoch
                ):
                    save({"epoch": epoch, "step": step, "global_step": global_step})
                if model.stop_training:
                    break
            epoch_logs = self.metrics()
            if validation is not None:
                val_logs = self.evaluate(validation, validation_steps)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callbacks.on_epoch_end(epoch, epoch_logs)
            save(
                {
                    "epoch": epoch + 1,
                    "step": 0,
                    "global_step": (epoch + 1) * steps_per_epoch,
                }
            )
            if model.stop_training:
                break
        callbacks.on_train_end(epoch_logs if epochs > start_epoch else {})
        history = next(
            c for c in callbacks.callbacks if isinstance(c, keras.callbacks.History)
        )
        return history.history


def shard_by_data(dataset):
    """Multi-worker: shard by batches, never by files, so that each step's global
    batch is the one a single process would see."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(options)


def _stream_from(train, start_epoch, start_step, steps_per_epoch):
    """The training stream positioned at (start_epoch, start_step)."""
    if callable(train):
        return train(start_epoch).skip(start_step)
    return train.skip(start_epoch * steps_per_epoch + start_step)
