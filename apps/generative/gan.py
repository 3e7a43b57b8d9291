"""The GAN: a `keras.Model` that trains a generator against a discriminator.

Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, Algorithm 1: for
every generator update, `d_steps` (k) discriminator updates, each on its own real
minibatch and its own noise. The discriminator outputs *logits* (no sigmoid layer);
the losses are

- ``"bce"`` (Goodfellow et al.): D minimises ``-log D(x) - log(1 - D(G(z)))``, G the
  non-saturating ``-log D(G(z))`` (section 3 of the paper);
- ``"lsgan"`` (Mao et al., "Least Squares Generative Adversarial Networks", ICCV
  2017, a-b-c = 0-1-1): D minimises ``½(D(x) - 1)² + ½D(G(z))²``, G
  ``½(D(G(z)) - 1)²``.

`label_smoothing` s replaces the real target 1 by ``1 - s`` in D's loss (one-sided,
Salimans et al., "Improved Techniques for Training GANs", 2016).

Data and distribution:

- The training stream yields batches of ``k × B`` real images (and labels); the step
  cuts them into k minibatches of B with a stride (``images[j::k]``), so that the
  rows of minibatch j are the same whether the global batch is split over one or N
  replicas.
- Every loss is a sum of per-example losses divided by the *global* batch
  ``B × num_replicas_in_sync`` (as `tf.nn.compute_average_loss` does); the batch size
  is read from the tensors. The gradients summed over replicas are then those of one
  device with the whole batch.
- The noise is a pure function of ``(seed, generator step, discriminator step)``:
  drawn for the global batch with `tf.random.stateless_normal`, each replica takes
  its rows. One device and N replicas see the same z, and a run resumed from a
  checkpoint draws exactly the noise the uninterrupted run would have drawn.
- Validation (`test_step`) draws new noise for every batch, a pure function of
  ``(seed, generator step, batch index in this evaluation)``, for the real global
  batch (summed over replicas: a ragged last batch splits unevenly), and its
  trackers average over examples, not batches: N replicas report what one
  device does, whatever the batch sizes.
- Both optimisers are built in `compile()`, so that their slots exist before any
  checkpoint is written or restored (Keras builds only `model.optimizer` before it
  restores a checkpoint, and an unbuilt optimiser held as an attribute silently
  skips its saved state). `model.optimizer` is an `OptimizerPair` of the two: what
  the training core saves in its run state (`.variables`), counts (`.iterations`:
  generator steps) and schedules (`.learning_rate`, D's rate kept in proportion).

>>> gan = apps.build("dcgan", input_shape=(28, 28, 1))
>>> gan.compile(d_steps=2, loss="bce")
>>> gan.fit(real_batches, epochs=1, steps_per_epoch=10)  # (images, labels) of 2 x B
>>> images = gan.generate(16)              # (16, 28, 28, 1) in [-1, 1]
"""

from __future__ import annotations

import random

import keras
import numpy as np
import tensorflow as tf

from apps.errors import require_positive_int

LOSSES = ("bce", "lsgan")
# DCGAN's optimiser (Radford et al., section 4): Adam, lr 2e-4, beta_1 0.5.
DEFAULT_LEARNING_RATE = 2e-4
DEFAULT_BETA_1 = 0.5


def _descend(optimizer, tape, scaled_loss, network) -> None:
    """One step of `optimizer` on `network`'s trainable weights, down the gradient
    of `scaled_loss` (recorded by `tape`)."""
    variables = network.trainable_variables
    gradients = tape.gradient(scaled_loss, variables)
    optimizer.apply_gradients(zip(gradients, variables, strict=True))


def default_optimizer(
    learning_rate=DEFAULT_LEARNING_RATE, beta_1=DEFAULT_BETA_1, name="adam"
):
    """Adam with DCGAN's settings (a fresh instance each call).

    Give the two optimisers of a GAN fixed names: their variables' paths carry the
    name, and a run state is only restored into variables of the same paths.
    """
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, name=name)


class OptimizerPair:
    """The discriminator's and the generator's optimisers, seen as one `optimizer`.

    What training loops and callbacks read from `model.optimizer`: `variables`
    (both optimisers' state, for checkpoints), `iterations` (generator updates)
    and `learning_rate` (the generator's; setting it scales the discriminator's
    in proportion, so a schedule keeps a two-time-scale ratio). Not a Keras object:
    the `.keras` file saves the two optimisers as the GAN's `d_optimizer` and
    `g_optimizer`.
    """

    built = True

    def __init__(self, d_optimizer, g_optimizer):
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self._ratio = _learning_rate(d_optimizer) / _learning_rate(g_optimizer)

    @property
    def variables(self):
        return [*self.d_optimizer.variables, *self.g_optimizer.variables]

    @property
    def iterations(self):
        return self.g_optimizer.iterations

    @property
    def learning_rate(self):
        return self.g_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.g_optimizer.learning_rate = value
        self.d_optimizer.learning_rate = float(value) * self._ratio

    def build(self, variables=None):
        """Both are built by `GAN.compile`; nothing to do."""


def _learning_rate(optimizer) -> float:
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


@keras.saving.register_keras_serializable(package="generative")
class GAN(keras.Model):
    """A generator and a discriminator trained against each other.

    Args:
        generator: a `keras.Model` from latent vectors ``(B, latent_dim)`` (and, if
            conditional, int labels ``(B,)``) to images ``(B, H, W, C)`` in [-1, 1].
        discriminator: a `keras.Model` from images (and labels) to logits ``(B, 1)``.
        latent_dim: size of z, a positive int; must match the generator's input.
        num_classes: number of classes of a conditional GAN (a generator with two
            inputs); ``None`` for an unconditional one.
        seed: seeds the noise of the training step; default: a random one, kept in
            the config so a saved model continues with the same stream.
        **kwargs: `keras.Model` arguments (``name``, ...).

    Call:
        ``gan(z)`` or ``gan([z, labels])`` runs the generator.

    Metrics of `fit` (one value per epoch): ``d_loss`` (mean over the k
    discriminator steps), ``g_loss``, ``d_real`` (mean D(x)) and ``d_fake`` (mean
    D(G(z)) in the discriminator steps); for ``"bce"`` D is the sigmoid of the
    logit, a probability.
    """

    def __init__(
        self,
        generator,
        discriminator,
        latent_dim,
        num_classes=None,
        seed=None,
        **kwargs,
    ):
        for name, model in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(model, keras.Model):
                raise ValueError(
                    f"{name} must be a keras.Model. Received: {name}={model!r}"
                )
        require_positive_int("latent_dim", latent_dim)
        conditional = len(generator.inputs) == 2
        if conditional:
            require_positive_int("num_classes", num_classes)
            if len(discriminator.inputs) != 2:
                raise ValueError(
                    "A conditional generator (inputs [z, label]) needs a conditional "
                    "discriminator (inputs [image, label]). Received a discriminator "
                    f"with {len(discriminator.inputs)} input(s)."
                )
        elif num_classes is not None:
            raise ValueError(
                "num_classes is only for conditional GANs (a generator with inputs "
                f"[z, label]). Received: num_classes={num_classes!r}"
            )
        z_size = generator.inputs[0].shape[-1]
        if z_size != latent_dim:
            raise ValueError(
                f"latent_dim must match the generator's input size {z_size}. "
                f"Received: latent_dim={latent_dim!r}"
            )
        image_shape = tuple(generator.outputs[0].shape[1:])
        if tuple(discriminator.inputs[0].shape[1:]) != image_shape:
            raise ValueError(
                f"The generator makes images of shape {image_shape} but the "
                "discriminator takes "
                f"{tuple(discriminator.inputs[0].shape[1:])}."
            )
        if seed is None:
            seed = random.randrange(2**31 - 1)
        _check_seed(seed)
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.seed = int(seed)
        self.image_shape = image_shape
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        # Validation batches seen in this evaluation (per replica, all equal):
        # `test_step` draws batch i's noise from it. Not in `metrics` (not
        # logged, not in the run state); `reset_metrics` zeroes it before each
        # evaluation.
        self.validation_batches = keras.metrics.Sum(name="validation_batches")
        # Nothing to build: the sub-models are built. (Keras would otherwise try
        # to build the GAN by calling it on a batch of *images*.)
        self.built = True
        self.d_optimizer = None
        self.g_optimizer = None
        self.loss_name = "bce"
        self.d_steps = 1
        self.label_smoothing = 0.0

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    @property
    def metrics(self):
        return [
            self.d_loss_tracker,
            self.g_loss_tracker,
            self.d_real_tracker,
            self.d_fake_tracker,
        ]

    def reset_metrics(self):
        """Resets the trackers and the validation batch counter (Keras and
        `apps.loop` call this before every evaluation)."""
        super().reset_metrics()
        self.validation_batches.reset_state()

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    # Compile

    def compile(
        self,
        d_optimizer=None,
        g_optimizer=None,
        loss="bce",
        d_steps=1,
        label_smoothing=0.0,
        **kwargs,
    ):
        """Sets the optimisers and the objective, and builds both optimisers.

        Args:
            d_optimizer, g_optimizer: optimisers (instances or names); default
                Adam(2e-4, beta_1=0.5) each (DCGAN). They must be two objects.
            loss: ``"bce"`` or ``"lsgan"``.
            d_steps: k, discriminator updates per generator update, >= 1.
            label_smoothing: one-sided smoothing of the real target, in [0, 1).
            **kwargs: `keras.Model.compile` arguments (``jit_compile``,
                ``steps_per_execution``, ``run_eagerly``); no optimizer or loss.
        """
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}. Received: loss={loss!r}")
        require_positive_int("d_steps", d_steps)
        if (
            isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, (int, float))
            or not 0.0 <= label_smoothing < 1.0
        ):
            raise ValueError(
                "label_smoothing must be a float in [0, 1). "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        for key in ("optimizer", "loss_weights", "metrics"):
            if key in kwargs:
                raise ValueError(
                    f"GAN.compile takes d_optimizer/g_optimizer and loss, not {key}."
                )
        d_optimizer = keras.optimizers.get(
            d_optimizer or default_optimizer(name="d_optimizer")
        )
        g_optimizer = keras.optimizers.get(
            g_optimizer or default_optimizer(name="g_optimizer")
        )
        if d_optimizer is g_optimizer:
            raise ValueError(
                "d_optimizer and g_optimizer must be two optimiser objects: one "
                "object would mix the slots of both networks."
            )
        super().compile(optimizer=None, **kwargs)
        if self.dtype_policy.name == "mixed_float16":
            d_optimizer = _loss_scaled(d_optimizer)
            g_optimizer = _loss_scaled(g_optimizer)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.optimizer = OptimizerPair(d_optimizer, g_optimizer)
        self.loss_name = loss
        self.d_steps = int(d_steps)
        self.label_smoothing = float(label_smoothing)
        # Keras builds only `model.optimizer` before restoring a checkpoint; an
        # unbuilt optimiser held as an attribute would silently skip its saved
        # slots (the loader merely warns). Build both here, in the model's scope.
        with self.distribute_strategy.scope():
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.g_optimizer.build(self.generator.trainable_variables)

    def get_compile_config(self):
        if not self.compiled or self.d_optimizer is None:
            return {}
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "loss": self.loss_name,
            "d_steps": self.d_steps,
            "label_smoothing": self.label_smoothing,
        }

    def compile_from_config(self, config):
        config = dict(config)
        for key in ("d_optimizer", "g_optimizer"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        self.compile(**config)

    # Training

    def train_step(self, data):
        images, labels = _unpack(data)
        k = self.d_steps
        local_batch = tf.shape(images)[0] // k
        replicas = _replicas()
        global_batch = local_batch * replicas
        step = tf.cast(self.g_optimizer.iterations, tf.int64)

        # Discriminator, k times: a new real minibatch and new noise each time.
        for j in range(k):
            real = images[j::k]
            real_labels = None if labels is None else labels[j::k]
            z = self._noise(global_batch, local_batch, step * (k + 1) + j)
            fake = self.generator(self._g_inputs(z, real_labels), training=True)
            with tf.GradientTape() as tape:
                real_out = self._discriminate(real, real_labels)
                fake_out = self._discriminate(fake, real_labels)
                d_loss = self._d_loss(real_out, fake_out, global_batch)
                total = d_loss + _regularization(self.discriminator, replicas)
                scaled = self.d_optimizer.scale_loss(total)
            _descend(self.d_optimizer, tape, scaled, self.discriminator)
            self.d_loss_tracker.update_state(d_loss * tf.cast(replicas, d_loss.dtype))
            self.d_real_tracker.update_state(self._as_score(real_out))
            self.d_fake_tracker.update_state(self._as_score(fake_out))

        # Generator, once, through the updated discriminator. A conditional
        # generator is asked for the classes of the first real minibatch (the
        # data's class mix, the same rows on 1 or N replicas).
        g_labels = None if labels is None else labels[0::k]
        z = self._noise(global_batch, local_batch, step * (k + 1) + k)
        with tf.GradientTape() as tape:
            fake = self.generator(self._g_inputs(z, g_labels), training=True)
            fake_out = self._discriminate(fake, g_labels)
            g_loss = self._g_loss(fake_out, global_batch)
            total = g_loss + _regularization(self.generator, replicas)
            scaled = self.g_optimizer.scale_loss(total)
        _descend(self.g_optimizer, tape, scaled, self.generator)
        self.g_loss_tracker.update_state(g_loss * tf.cast(replicas, g_loss.dtype))
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        """Both losses on held-out real images, without updates (no k split).

        Batch i of an evaluation gets its own noise, drawn from ``(seed,
        generator step, i)``: deterministic for a seeded run (and a resumed one,
        since the counter restarts with every evaluation), and as many distinct
        z as there are validation images. The global batch is the sum of the
        replicas' batches, which differ for a ragged last batch (5 rows are 3 + 2
        on 2 replicas, 1 row is 1 + 0), and the trackers take per-example values:
        each result is the mean over all validation images, as on one device.
        """
        images, labels = _unpack(data)
        local_batch = tf.shape(images)[0]
        # Collectives and the counter on every replica, even one without rows.
        global_batch, start = _global_rows(local_batch)
        step = tf.cast(self.g_optimizer.iterations, tf.int64)
        index = tf.cast(tf.convert_to_tensor(self.validation_batches.total), tf.int64)
        self.validation_batches.update_state(1.0)
        z = self._noise(
            global_batch, local_batch, -1 - step, start=start, batch_index=index
        )
        # A replica can get no rows of a last batch (1 row on 2 replicas). The
        # networks are not run on it: on TF 2.21 a CPU convolution can return
        # its input unchanged for an empty batch, and the next layer then fails
        # on the wrong depth.
        outputs = tf.cond(
            local_batch > 0,
            lambda: self._validation_outputs(images, labels, z),
            lambda: (tf.zeros((0,)),) * 4,
        )
        d_losses, g_losses, d_real, d_fake = outputs
        self.d_loss_tracker.update_state(d_losses)
        self.g_loss_tracker.update_state(g_losses)
        self.d_real_tracker.update_state(d_real)
        self.d_fake_tracker.update_state(d_fake)
        return {metric.name: metric.result() for metric in self.metrics}

    def _validation_outputs(self, images, labels, z):
        """Per-example ``(B,)`` D loss, G loss, D(x) and D(G(z)) of a batch."""
        fake = self.generator(self._g_inputs(z, labels), training=False)
        real_out = self._discriminate(images, labels, training=False)
        fake_out = self._discriminate(fake, labels, training=False)
        per_real, per_fake = self._d_losses(real_out, fake_out)
        return (
            _per_row(per_real) + _per_row(per_fake),
            _per_row(self._g_losses(fake_out)),
            _row_means(self._as_score(real_out)),
            _row_means(self._as_score(fake_out)),
        )

    def _noise(
        self, global_batch, local_batch, counter, *, start=None, batch_index=None
    ):
        """This replica's rows of the global batch's noise for `counter`.

        `start` is where this replica's rows begin (default: replica id x local
        batch, right when every replica has the same batch); `batch_index`, if
        given, is folded into the seed, so that each validation batch of a step
        draws its own z.
        """
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(counter, tf.int64)])
        if batch_index is not None:
            seed = tf.random.experimental.stateless_fold_in(seed, batch_index)
        z = tf.random.stateless_normal((global_batch, self.latent_dim), seed=seed)
        if start is None:
            start = _replica_id() * local_batch
        return z[start : start + local_batch]

    def _g_inputs(self, z, labels):
        return z if labels is None or not self.conditional else [z, labels]

    def _discriminate(self, real, labels, training=True):
        inputs = real if labels is None or not self.conditional else [real, labels]
        return tf.cast(self.discriminator(inputs, training=training), tf.float32)

    def _d_losses(self, real_out, fake_out):
        """D's per-example losses on real and on generated images."""
        real_target = 1.0 - self.label_smoothing
        if self.loss_name == "bce":
            per_real = tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.fill(tf.shape(real_out), real_target), logits=real_out
            )
            per_fake = tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.zeros_like(fake_out), logits=fake_out
            )
        else:
            per_real = 0.5 * tf.square(real_out - real_target)
            per_fake = 0.5 * tf.square(fake_out)
        return per_real, per_fake

    def _d_loss(self, real_out, fake_out, global_batch):
        per_real, per_fake = self._d_losses(real_out, fake_out)
        return _global_mean(per_real, global_batch) + _global_mean(
            per_fake, global_batch
        )

    def _g_losses(self, fake_out):
        """G's per-example losses."""
        if self.loss_name == "bce":
            return tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.ones_like(fake_out), logits=fake_out
            )
        return 0.5 * tf.square(fake_out - 1.0)

    def _g_loss(self, fake_out, global_batch):
        return _global_mean(self._g_losses(fake_out), global_batch)

    def _as_score(self, outputs):
        return tf.sigmoid(outputs) if self.loss_name == "bce" else outputs

    # Sampling

    def generate(self, n, labels=None, seed=0, batch_size=256):
        """`n` images in [-1, 1] as a float32 numpy array, from seeded noise.

        Args:
            n: number of images.
            labels: conditional GANs only: an int (every image of that class), a
                sequence of n ints, or ``None`` (classes in turn: 0, 1, 2, ...).
            seed: seeds the noise; the same seed gives the same images.
            batch_size: images per generator call.
        """
        require_positive_int("n", n)
        z = latent_batch(n, self.latent_dim, seed)
        labels = self.sample_labels(n, labels)
        outputs = []
        for start in range(0, n, batch_size):
            stop = start + batch_size
            part_labels = None if labels is None else tf.constant(labels[start:stop])
            inputs = self._g_inputs(tf.constant(z[start:stop]), part_labels)
            outputs.append(np.asarray(self.generator(inputs, training=False)))
        return np.concatenate(outputs).astype("float32")

    def sample_labels(self, n, labels=None):
        """The int32 label array for `n` conditional samples (None if unconditional)."""
        if not self.conditional:
            if labels is not None:
                raise ValueError(
                    "labels (--class) are only for conditional GANs; this GAN is "
                    "unconditional."
                )
            return None
        if labels is None:
            return np.arange(n, dtype="int32") % self.num_classes
        array = np.broadcast_to(np.asarray(labels, dtype="int64"), (n,))
        if array.min() < 0 or array.max() >= self.num_classes:
            raise ValueError(
                f"class labels must be in [0, {self.num_classes}). Received: {labels!r}"
            )
        return array.astype("int32")

    # Saving

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "latent_dim": self.latent_dim,
            "num_classes": self.num_classes,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)


def latent_batch(n, latent_dim, seed=0) -> np.ndarray:
    """A fixed batch of standard-normal latent vectors (float32, numpy)."""
    return (
        np.random.default_rng(seed).standard_normal((n, latent_dim)).astype("float32")
    )


def to_uint8(images) -> np.ndarray:
    """[-1, 1] floats to uint8 pixels."""
    pixels = np.round((np.asarray(images, dtype="float32") + 1.0) * 127.5)
    return np.clip(pixels, 0, 255).astype("uint8")


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int or None. Received: seed={seed!r}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63). Received: seed={seed!r}")


def _loss_scaled(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def _unpack(data):
    if isinstance(data, (tuple, list)):
        images = data[0]
        labels = data[1] if len(data) > 1 else None
    else:
        images, labels = data, None
    return images, labels


def _replicas():
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: called outside strategy.run
        return tf.distribute.get_strategy().num_replicas_in_sync
    return context.num_replicas_in_sync


def _replica_id():
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def _global_rows(local_batch):
    """The global batch and the row where this replica's part of it starts.

    From every replica's local batch size (gathered), not ``local x replicas``:
    a ragged last batch splits unevenly, earlier replicas taking the extra rows.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return local_batch, tf.constant(0, tf.int32)
    sizes = context.all_gather(tf.reshape(local_batch, (1,)), axis=0)
    before = tf.range(tf.shape(sizes)[0]) < context.replica_id_in_sync_group
    return tf.reduce_sum(sizes), tf.reduce_sum(tf.where(before, sizes, 0))


def _per_row(per_example):
    """Per-example losses ``(B, ...)`` summed over all but the batch axis: ``(B,)``."""
    per_example = tf.reshape(per_example, (tf.shape(per_example)[0], -1))
    return tf.reduce_sum(per_example, axis=1)


def _row_means(values):
    """``(B, ...)`` to ``(B,)``: the mean over all but the batch axis."""
    return tf.reduce_mean(tf.reshape(values, (tf.shape(values)[0], -1)), axis=1)


def _global_mean(per_example, global_batch):
    """Sum of per-example losses / the global batch (tf.nn.compute_average_loss)."""
    per_example = _per_row(per_example)
    return tf.reduce_sum(per_example) / tf.cast(global_batch, per_example.dtype)


def _regularization(model, replicas):
    """Layer losses (weight penalties), split over replicas so they add up once."""
    if not model.losses:
        return 0.0
    total = tf.add_n([tf.cast(loss, tf.float32) for loss in model.losses])
    return total / tf.cast(replicas, tf.float32)
