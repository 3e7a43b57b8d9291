"""The sides the benchmarks compare; each is built inside a worker process.

Every side has `info() -> dict` and `run(steps) -> seconds` (the wall time of
`steps` training steps, synchronised: the last step has finished when it returns).

- `keras_bare`: our model through `apps.loop.DistributedLoop.run_steps` (one call
  per group of steps, as the core does), nothing else: no metrics read, no callbacks.
- `keras_core`: our model through `apps.training.fit` itself (the real callbacks,
  the progress bar, the NaN guard, the metrics read after every group of steps),
  timed from inside by one more callback that pauses the run between rounds.
- `torch_peer`: the same network in PyTorch, trained by a standard PyTorch loop.
- `keras_parity`: one of our builders or keras.applications' model, trained with the
  same step (`DistributedLoop.train_function`) on one in-memory batch.

Keras sides honour the variant (see `_harness`): threads, oneDNN, XLA, steps per
execution (the core's `TrainOptions.steps_per_execution`), mixed precision,
determinism, batch size and tf.data threads.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time

import _harness

LENET_OPTIONS = {"activation": "relu", "pool_type": "max"}  # the README's main run
BN_EPSILON = 1.001e-5  # our ResNet's (keras.applications') value
ADAM_EPSILON = 1e-7  # Keras's default; PyTorch's is 1e-8
LEARNING_RATE = 1e-3


def model_options(name: str) -> dict:
    """Builder options of the networks compared with PyTorch."""
    if name == "lenet5":
        return dict(LENET_OPTIONS)
    if name == "resnet18":
        return {"small_inputs": True}
    raise ValueError(f"no PyTorch peer for {name!r}; choose lenet5 or resnet18")


# Keras sides


def steps_per_execution(variant) -> int:
    """The variant's ``spe``, else the core's default."""
    from apps import training

    return int(variant.get("spe", training.TrainOptions.steps_per_execution))


def float32_outputs(model):
    """The model with its outputs cast to float32 (Keras's mixed-precision advice),
    for keras.applications' models (ours compute their outputs in float32).

    The core's top-5 accuracy (`tf.math.in_top_k`) accepts float32 predictions only.
    """
    import keras

    if all(output.dtype == "float32" for output in model.outputs):
        return model

    outputs = keras.layers.Activation("linear", dtype="float32", name="float32_out")(
        model.outputs[0]
    )
    return keras.Model(model.inputs, outputs, name=model.name)


class _KerasSide:
    def __init__(self, variant, model, batch_size, input_shape=(28, 28, 1), seed=0):
        self.variant = variant
        self.threads = _harness.configure_tensorflow(variant)
        import keras

        import apps
        from apps import training

        self.batch_size = int(variant.get("batch", batch_size))
        self.options = training.TrainOptions(
            epochs=1,
            batch_size=self.batch_size,
            optimizer="adam",
            learning_rate=LEARNING_RATE,
            mixed_precision=False,
            jit=bool(variant.get("jit", False)),
            steps_per_execution=steps_per_execution(variant),
            verbose="auto",
        )
        self.strategy = training.setup(self.options)
        if variant.get("precision"):
            keras.mixed_precision.set_global_policy(variant["precision"])
        keras.utils.set_random_seed(seed)
        with self.strategy.scope():
            self.model = self.build(apps, model, input_shape)
            if variant.get("precision", "float32") != "float32":
                self.model = float32_outputs(self.model)
            training.compile_classifier(self.model, self.options)
        self.model_name = model

    def build(self, apps, model, input_shape):
        return apps.build(
            model, input_shape=input_shape, classes=10, **model_options(model)
        )

    def training_stream(self):
        """The real training pipeline over Fashion-MNIST (no augmentation)."""
        from apps import data

        stream = data.pipeline(
            data.load("fashion_mnist", "train"),
            batch_size=self.batch_size,
            training=True,
            augment=data.images.parse_augment(self.variant.get("augment")),
            seed=0,
        )
        if self.variant.get("data_threads"):
            import tensorflow as tf

            options = tf.data.Options()
            options.threading.private_threadpool_size = self.variant["data_threads"]
            stream = stream.with_options(options)
        return stream

    def info(self) -> dict:
        import keras

        return {
            "framework": "keras/tensorflow",
            "model": self.model_name,
            "batch_size": self.batch_size,
            "variant": _harness.variant_label(self.variant),
            "trainable_parameters": sum(
                int(w.numpy().size) for w in self.model.trainable_weights
            ),
            "all_parameters": self.model.count_params(),
            "dtype_policy": keras.mixed_precision.global_policy().name,
            "threads": _harness.tensorflow_threads(),
            "pid": os.getpid(),
        }

    def _loop(self):
        from apps import loop

        return loop.DistributedLoop(
            self.model,
            self.strategy,
            jit=self.options.jit,
            steps_per_execution=self.options.steps_per_execution,
        )


class KerasBare(_KerasSide):
    """`DistributedLoop.run_steps`, `steps_per_execution` steps per call."""

    def __init__(self, variant, model, batch_size, stream="pipeline", **kwargs):
        super().__init__(variant, model, batch_size, **kwargs)
        self.runner = self._loop()
        dataset = self.training_stream()
        if stream == "in_memory":
            import tensorflow as tf

            dataset = tf.data.Dataset.from_tensors(next(iter(dataset))).repeat()
        self.iterator = iter(self.strategy.experimental_distribute_dataset(dataset))

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        while steps > 0:
            count = min(steps, self.runner.steps_per_execution)
            self.runner.run_steps(self.iterator, count)
            steps -= count
        self.model.optimizer.iterations.numpy()  # the last step has finished
        return time.perf_counter() - start


class _Stop(Exception):
    pass


class KerasCore(_KerasSide):
    """`apps.training.fit` with its callbacks, paused between rounds by a gate."""

    def __init__(self, variant, model, batch_size, **kwargs):
        super().__init__(variant, model, batch_size, **kwargs)
        import keras

        from apps import training

        side = self

        class Gate(keras.callbacks.Callback):
            """Blocks between rounds; times each round from release to its last step."""

            def on_train_begin(self, logs=None):
                self.done = 0
                self.wait()

            def wait(self):
                steps = side.requests.get()
                if steps is None:
                    raise _Stop
                self.requested, self.started_at = steps, self.done
                self.target = self.done + steps
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.done = batch + 1  # one endless epoch: batch + 1 steps so far
                if self.done >= self.target:
                    # A group of steps can overshoot the target: scale to it.
                    ran = self.done - self.started_at
                    elapsed = time.perf_counter() - self.start
                    side.results.put(elapsed * self.requested / ran)
                    self.wait()

        self.requests, self.results = queue.Queue(), queue.Queue()
        self.run_dir = tempfile.mkdtemp(prefix="bench-core-")
        self.options.steps_per_epoch = 10**9
        stream = self.training_stream()

        def target():
            try:
                training.fit(
                    self.model,
                    stream,
                    None,
                    self.run_dir,
                    self.options,
                    strategy=self.strategy,
                    extra_callbacks=[Gate()],
                )
            except _Stop:
                pass
            except BaseException as error:  # shown by the next run()
                self.results.put(error)

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def run(self, steps: int) -> float:
        self.requests.put(steps)
        result = self.results.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self):
        self.requests.put(None)
        self.thread.join(timeout=60)


VALID_1X1 = "ours, 1x1 convolutions padding=valid"
KERAS_CONFIG = "ours, 1x1 padding=valid, BatchNormalization axis=3"


def valid_1x1_convolutions(model, batch_norm_axis=None):
    """A copy of `model` whose 1x1 convolutions say padding="valid" (as
    keras.applications' ResNet50 does; ours say "same": the same output, no
    padding either way), and optionally with BatchNormalization(axis=3) (theirs;
    ours say -1, the same axis): then every layer's configuration is theirs."""
    import keras

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (1, 1):
            config["padding"] = "valid"
        if batch_norm_axis is not None and isinstance(
            layer, keras.layers.BatchNormalization
        ):
            config["axis"] = batch_norm_axis
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


class KerasParity(_KerasSide):
    """Our builder or keras.applications', same step, one in-memory batch."""

    def __init__(self, variant, model, source, input_size, batch_size, **kwargs):
        self.source = source
        shape = (input_size, input_size, 3)
        super().__init__(variant, model, batch_size, input_shape=shape, **kwargs)
        import numpy as np
        import tensorflow as tf

        from apps import loop

        self.runner = loop.DistributedLoop(
            self.model, self.strategy, jit=self.options.jit
        )
        rng = np.random.default_rng(0)
        images = rng.random((self.batch_size, input_size, input_size, 3), np.float32)
        labels = rng.integers(0, 10, self.batch_size)
        dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
        self.iterator = iter(self.strategy.experimental_distribute_dataset(dataset))

    def build(self, apps, model, input_shape):
        import keras

        if self.source == "keras.applications":
            constructor = {
                "vgg16": keras.applications.VGG16,
                "resnet50": keras.applications.ResNet50,
            }[model]
            return constructor(weights=None, input_shape=input_shape, classes=10)
        options = {"vgg16": {"dropout": 0.0}, "resnet50": {"conv_bias": True}}[model]
        ours = apps.build(model, input_shape=input_shape, classes=10, **options)
        if self.source == VALID_1X1:
            return valid_1x1_convolutions(ours)
        if self.source == KERAS_CONFIG:
            return valid_1x1_convolutions(ours, batch_norm_axis=3)
        return ours

    def info(self) -> dict:
        layers = len(self.model.layers)
        return {**super().info(), "source": self.source, "layers": layers}

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.runner.train_function(self.iterator)
        self.model.optimizer.iterations.numpy()
        return time.perf_counter() - start


def keras_bare(variant, **kwargs):
    return KerasBare(variant, **kwargs)


def keras_core(variant, **kwargs):
    return KerasCore(variant, **kwargs)


def keras_parity(variant, **kwargs):
    return KerasParity(variant, **kwargs)


# The PyTorch peer


def torch_lenet5(nn, classes=10):
    """Our lenet5(activation="relu", pool_type="max") at 28x28x1, layer for layer."""
    return nn.Sequential(
        nn.ZeroPad2d(2),  # our `pad`: 28 -> 32
        nn.Conv2d(1, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 120, 5),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, classes),  # logits: the softmax is in the loss
    )


def torch_resnet18(nn, classes=10, in_channels=1):
    """Our resnet18(small_inputs=True): 3x3 stem, basic blocks (2, 2, 2, 2)."""

    def conv_bn(cin, cout, kernel, stride):
        return [
            nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
            # Keras momentum 0.99 is PyTorch momentum 0.01.
            nn.BatchNorm2d(cout, eps=BN_EPSILON, momentum=0.01),
        ]

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(
                *conv_bn(cin, cout, 3, stride),
                nn.ReLU(),
                *conv_bn(cout, cout, 3, 1),
            )
            projection = stride != 1 or cin != cout
            self.shortcut = (
                nn.Sequential(*conv_bn(cin, cout, 1, stride))
                if projection
                else nn.Identity()
            )
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.shortcut(x) + self.body(x))

    layers = [*conv_bn(in_channels, 64, 3, 1), nn.ReLU()]
    channels = 64
    for stage in range(4):
        filters = 64 * 2**stage
        for index in range(2):
            stride = 2 if index == 0 and stage > 0 else 1
            layers.append(BasicBlock(channels, filters, stride))
            channels = filters
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
    return nn.Sequential(*layers)


class TorchPeer:
    """A standard PyTorch training loop over in-memory Fashion-MNIST tensors."""

    def __init__(self, variant, model, batch_size, threads, arrays, seed=0):
        import numpy as np
        import torch
        from torch import nn

        torch.set_num_threads(int(threads))
        torch.manual_seed(seed)
        self.torch = torch
        self.model_name = model
        self.batch_size = int(variant.get("batch", batch_size))
        with np.load(arrays) as data:
            images, labels = data["images"], data["labels"]
        # Same images and normalisation as apps.data.pipeline: uint8 / 255, NCHW.
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
        self.images = self.images.contiguous()
        self.labels = torch.from_numpy(labels.astype(np.int64))
        builder = {"lenet5": torch_lenet5, "resnet18": torch_resnet18}[model]
        self.net = builder(nn)
        self.net.train()
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON
        )
        self.loss_fn = nn.CrossEntropyLoss()
        self.generator = torch.Generator().manual_seed(seed)
        self.batches = self._batches()
        self.running_loss, self.correct, self.seen = 0.0, 0, 0

    def _batches(self):
        count = len(self.labels)
        while True:  # epochs: a fresh permutation, full batches only
            order = self.torch.randperm(count, generator=self.generator)
            for start in range(0, count - self.batch_size + 1, self.batch_size):
                index = order[start : start + self.batch_size]
                yield self.images[index], self.labels[index]

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            images, labels = next(self.batches)
            self.optimizer.zero_grad(set_to_none=True)
            outputs = self.net(images)
            loss = self.loss_fn(outputs, labels)
            loss.backward()
            self.optimizer.step()
            # What a standard loop logs each step (the Keras side reads its metrics).
            self.running_loss += loss.item()
            self.correct += (outputs.argmax(1) == labels).sum().item()
            self.seen += len(labels)
        return time.perf_counter() - start

    def info(self) -> dict:
        torch = self.torch
        trainable = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        buffers = sum(
            b.numel() for b in self.net.buffers() if b.dtype.is_floating_point
        )
        return {
            "framework": "pytorch",
            "model": self.model_name,
            "batch_size": self.batch_size,
            "trainable_parameters": trainable,
            "all_parameters": trainable + buffers,
            "threads": {
                "torch_num_threads": torch.get_num_threads(),
                "torch_num_interop_threads": torch.get_num_interop_threads(),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
                "parallel_backend": "OpenMP"
                if "OpenMP" in torch.__config__.parallel_info()
                else "other",
            },
            "mkldnn": torch.backends.mkldnn.is_available(),
            "pid": os.getpid(),
        }


def torch_peer(variant, **kwargs):
    return TorchPeer(variant, **kwargs)


def export_fashion_mnist(path) -> str:
    """Writes the Fashion-MNIST training split (from apps.data.load) as .npz."""
    import numpy as np
    import tensorflow_datasets as tfds

    from apps import data

    images, labels = [], []
    batches = data.load("fashion_mnist", "train").batch(10_000)
    for image, label in tfds.as_numpy(batches):
        images.append(image)
        labels.append(label)
    np.savez(path, images=np.concatenate(images), labels=np.concatenate(labels))
    return str(path)


class LoopEquivalence:
    """Trains the same seeded model twice through `apps.training.fit`, one step per
    call and `steps_per_execution` per call, and compares the weights bit for bit."""

    def __init__(
        self,
        variant,
        model="lenet5",
        batch_size=64,
        steps_per_execution=4,
        devices=None,
    ):
        _harness.configure_tensorflow({**variant, "determinism": True})
        self.model_name = model
        self.batch_size = batch_size
        self.steps_per_execution = steps_per_execution
        self.devices = devices

    def info(self) -> dict:
        return {
            "model": self.model_name,
            "devices": self.devices,
            "threads": _harness.tensorflow_threads(),
        }

    def check(self, epochs: int, steps_per_epoch: int, checkpoint_every: int) -> dict:
        import keras
        import numpy as np

        import apps
        from apps import data, training

        finals, histories, rates = [], [], []
        for group in (1, self.steps_per_execution):
            options = training.TrainOptions(
                steps_per_execution=group,
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                batch_size=self.batch_size,
                checkpoint_every=checkpoint_every,
                devices=self.devices,
                seed=0,
                verbose=0,
            )
            strategy = training.setup(options)
            global_batch = self.batch_size * training.replicas(strategy)
            with strategy.scope():
                model = apps.build(
                    self.model_name,
                    input_shape=(28, 28, 1),
                    classes=10,
                    **model_options(self.model_name),
                )
                training.compile_classifier(model, options)
            stream = data.pipeline(
                data.load("fashion_mnist", "train"),
                batch_size=global_batch,
                training=True,
                seed=0,
            )
            history, throughput = training.fit(
                model,
                stream,
                None,
                tempfile.mkdtemp(prefix="bench-eq-"),
                options,
                strategy=strategy,
            )
            finals.append([w.numpy() for w in model.weights])
            histories.append(history)
            rates.append([steps for _, steps in throughput.epoch_times])
            keras.backend.clear_session()
        identical = all(
            a.shape == b.shape and np.array_equal(a, b)
            for a, b in zip(*finals, strict=True)
        )
        return {
            "weights_identical": identical,
            "history_one_step_per_call": histories[0],
            "history_grouped": histories[1],
            "throughput_steps_counted": {"one_per_call": rates[0], "grouped": rates[1]},
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
            "checkpoint_every": checkpoint_every,
            "steps_per_execution": self.steps_per_execution,
            "strategy": type(strategy).__name__,
            "replicas": training.replicas(strategy),
        }


def loop_equivalence(variant, **kwargs):
    return LoopEquivalence(variant, **kwargs)


class ClassifyRun:
    """The classification task's train (what `python -m apps.classify train` runs)
    in this worker, one epoch per call.

    The training runs in a thread; a callback passed to it (first among the
    training core's callbacks) pauses it at the start of every epoch until
    `advance()` is called again, so that several runs can alternate epoch by
    epoch. At each epoch end it
    records the time and the validation accuracy and (with `test_each_epoch`)
    measures the test accuracy, with its clock stopped (the test pass is not part
    of the command and is not counted).
    """

    def __init__(self, variant, settings, run_dir, test_each_epoch=True):
        self.variant = variant
        self.threads = _harness.configure_tensorflow(variant)
        import keras

        from apps import training

        # The task's fields, as the command's flags would set them.
        self.settings, self.run_dir = dict(settings), run_dir
        if "spe" in variant:
            self.settings["steps_per_execution"] = variant["spe"]
        if variant.get("precision") not in (None, "float32"):
            if variant["precision"] != training.mixed_precision_policy():
                raise ValueError(
                    f"precision={variant['precision']}: the command's "
                    f"--mixed-precision uses {training.mixed_precision_policy()}"
                )
            self.settings["mixed_precision"] = True
        self.test_each_epoch = test_each_epoch
        self.requests, self.results = queue.Queue(), queue.Queue()
        self.epochs: list[dict] = []
        self.thread = None
        self._test = None
        self._reported = 0
        run = self

        class EpochGate(keras.callbacks.Callback):
            """First among the training core's callbacks: it pauses before
            Throughput starts an epoch's clock."""

            def on_epoch_begin(self, epoch, logs=None):
                run._pause(f"epoch {epoch}")

            def on_epoch_end(self, epoch, logs=None):
                ended = time.perf_counter()
                record = {
                    "epoch": epoch + 1,
                    "seconds_in_segment": ended - run._released,
                    "val_accuracy": (logs or {}).get("val_accuracy"),
                    "accuracy": (logs or {}).get("accuracy"),
                }
                if run.test_each_epoch:
                    record["test_accuracy"] = run._test_accuracy(self.model)
                    run._excluded += time.perf_counter() - ended
                run.epochs.append(record)

        self.gate = EpochGate()

    def info(self) -> dict:
        return {
            "settings": self.settings,
            "variant": _harness.variant_label(self.variant),
            "threads": self.threads,
            "pid": os.getpid(),
        }

    def advance(self) -> dict:
        """Runs to the next epoch start (or the end); returns that segment's time."""
        if self.thread is None:
            self._start()
        else:
            self._released, self._excluded = time.perf_counter(), 0.0
            self.requests.put(True)
        kind, value = self.results.get()
        if kind == "error":
            raise RuntimeError(value)
        finished = self.epochs[self._reported :]
        self._reported = len(self.epochs)
        return {
            "reached": value if kind == "paused" else "end",
            "seconds": time.perf_counter() - self._released - self._excluded,
            "epochs": finished,
            "done": kind == "done",
            "exit_code": value if kind == "done" else None,
        }

    def _start(self):
        from apps.tasks import classification

        def target():
            try:
                config, options, sources = classification.configure(**self.settings)
                classification.train(
                    config, options, self.run_dir, [self.gate], recipe=sources
                )
                self.results.put(("done", 0))
            except BaseException:  # noqa: BLE001 (reported to the parent)
                import traceback

                self.results.put(("error", traceback.format_exc()))

        self._released, self._excluded = time.perf_counter(), 0.0
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def _pause(self, label):
        self.results.put(("paused", label))
        self.requests.get()

    def _test_accuracy(self, model):
        import numpy as np
        import tensorflow as tf

        from apps import data

        if self._test is None:
            shape = model.inputs[0].shape[1:3]
            self._test = data.pipeline(
                data.load("fashion_mnist", "test"),
                batch_size=1000,
                image_size=tuple(shape),
            )
            self._predict = tf.function(lambda x: model(x, training=False))
        correct = total = 0
        for images, labels in self._test:
            predicted = np.argmax(self._predict(images).numpy(), axis=-1)
            correct += int(np.sum(predicted == labels.numpy()))
            total += len(predicted)
        return correct / total


def classify_run(variant, **kwargs):
    return ClassifyRun(variant, **kwargs)
