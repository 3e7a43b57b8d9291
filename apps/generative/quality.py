"""Sample quality, measured: FID, an Inception-Score-style score, class coverage.

The reference network is not Inception (no downloads): it is an image classifier
trained by our own classification task (`apps.tasks.classification`, as
``python -m apps.classify train`` runs it) on the same dataset (LeNet-5
on Fashion-MNIST by default, cached after the first use). Its penultimate layer
(LeNet-5's F6, 84 units: the input of the Dense layer behind the first output,
see `classifier_features`) gives the features, its softmax the class
probabilities.
The numbers are therefore comparable between our runs, not with published
Inception-based FIDs.

- `FrechetDistance` (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule
  Converge to a Local Nash Equilibrium", NeurIPS 2017)::

      FID = |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))

- `InceptionScore` (Salimans et al., 2016), over the whole sample (no splits)::

      IS = exp(E_x KL(p(y|x) || p(y)))  in [1, classes]

- `ClassCoverage`: the share of generated samples the classifier puts in each
  class. A collapsed generator piles into a few classes; `coverage_summary` turns
  the shares into the share of classes covered and a normalised entropy.

All three are `keras.metrics.Metric`s that accumulate sums (counts, feature sums,
sums of outer products), so they can be updated batch by batch, on any number of
replicas (their variables are summed over replicas when read), and the result is
exact for the whole sample. `QualityEvaluator` ties them to a classifier and a
reference set of real images.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps.tasks.classification import PREPROCESSING_FILE

CACHE_ENV = "KERAS_CLASSICS_CACHE"
CLASSIFIER_MODEL = "lenet5"
CLASSIFIER_EPOCHS = 3


# Metrics


class FrechetDistance(keras.metrics.Metric):
    """Fréchet distance between the Gaussians fitted to two feature sets.

    `update_state(real=..., generated=...)` adds feature batches ``(B, d)`` to
    either side; `result()` is the FID of everything seen. The sums are float64.
    `reset_generated()` clears the generated side only (the real reference is
    kept between epochs).

    Args:
        feature_dim: d, the size of the feature vectors.
        name: metric name.
    """

    def __init__(self, feature_dim, name="fid", **kwargs):
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int):
            raise ValueError(
                f"feature_dim must be a positive int. Received: {feature_dim!r}"
            )
        if feature_dim < 1:
            raise ValueError(
                f"feature_dim must be a positive int. Received: {feature_dim!r}"
            )
        super().__init__(name=name, dtype="float64", **kwargs)
        self.feature_dim = feature_dim
        self._sides = {}
        for side in ("real", "generated"):
            self._sides[side] = (
                _zeros(self, (), f"{side}_count"),
                _zeros(self, (feature_dim,), f"{side}_sum"),
                _zeros(self, (feature_dim, feature_dim), f"{side}_outer"),
            )

    def update_state(self, real=None, generated=None):
        for side, features in (("real", real), ("generated", generated)):
            if features is None:
                continue
            features = tf.cast(tf.reshape(features, (-1, self.feature_dim)), tf.float64)
            count, total, outer = self._sides[side]
            count.assign_add(tf.cast(tf.shape(features)[0], tf.float64))
            total.assign_add(tf.reduce_sum(features, axis=0))
            outer.assign_add(tf.matmul(features, features, transpose_a=True))

    def result(self):
        values = [
            tf.convert_to_tensor(variable)
            for side in ("real", "generated")
            for variable in self._sides[side]
        ]
        return tf.numpy_function(_fid_from_sums, values, tf.float64, stateful=False)

    def reset_generated(self):
        for variable in self._sides["generated"]:
            variable.assign(tf.zeros(variable.shape, tf.float64))

    def get_config(self):
        return {**super().get_config(), "feature_dim": self.feature_dim}


class InceptionScore(keras.metrics.Metric):
    """exp(E_x KL(p(y|x) || p(y))) from class probabilities ``(B, classes)``.

    Accumulates the count, the sum of p(y|x) and the sum of sum_y p log p, which
    give the score exactly: E_x KL = E_x[sum p log p] - sum_y p(y) log p(y).
    """

    def __init__(self, classes, name="inception_score", **kwargs):
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(f"classes must be an int >= 2. Received: {classes!r}")
        super().__init__(name=name, dtype="float64", **kwargs)
        self.classes = classes
        self.count = _zeros(self, (), "count")
        self.probability_sum = _zeros(self, (classes,), "probability_sum")
        self.negentropy_sum = _zeros(self, (), "negentropy_sum")

    def update_state(self, probabilities):
        p = tf.cast(tf.reshape(probabilities, (-1, self.classes)), tf.float64)
        self.count.assign_add(tf.cast(tf.shape(p)[0], tf.float64))
        self.probability_sum.assign_add(tf.reduce_sum(p, axis=0))
        self.negentropy_sum.assign_add(tf.reduce_sum(p * _safe_log(p)))

    def result(self):
        count = tf.maximum(tf.convert_to_tensor(self.count), 1.0)
        marginal = tf.convert_to_tensor(self.probability_sum) / count
        marginal_entropy = -tf.reduce_sum(marginal * _safe_log(marginal))
        kl = tf.convert_to_tensor(self.negentropy_sum) / count + marginal_entropy
        return tf.exp(kl)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


class ClassCoverage(keras.metrics.Metric):
    """The share of samples classified into each class (argmax), ``(classes,)``."""

    def __init__(self, classes, name="class_shares", **kwargs):
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(f"classes must be an int >= 2. Received: {classes!r}")
        super().__init__(name=name, dtype="float64", **kwargs)
        self.classes = classes
        self.counts = _zeros(self, (classes,), "counts")

    def update_state(self, probabilities):
        p = tf.reshape(probabilities, (-1, self.classes))
        predicted = tf.one_hot(tf.argmax(p, axis=-1), self.classes, dtype=tf.float64)
        self.counts.assign_add(tf.reduce_sum(predicted, axis=0))

    def result(self):
        counts = tf.convert_to_tensor(self.counts)
        return counts / tf.maximum(tf.reduce_sum(counts), 1.0)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


def _zeros(metric, shape, name):
    """A float64 accumulator of `metric`, summed over replicas when read."""
    return metric.add_variable(
        shape=shape, initializer="zeros", dtype="float64", name=name
    )


def _safe_log(x):
    return tf.math.log(tf.maximum(x, 1e-12))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """FID between N(mu1, sigma1) and N(mu2, sigma2), in float64 numpy.

    tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2,
    which are those of the symmetric PSD matrix S1^(1/2) S2 S1^(1/2): two
    symmetric eigen-decompositions, no complex arithmetic, no scipy.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(value, 0.0))


def _sqrt_psd(matrix):
    eigenvalues, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


def gaussian_from_sums(count, total, outer):
    """Mean and (unbiased) covariance from the count, sum and sum of outer products."""
    count = float(count)
    if count < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {count:g}")
    mean = np.asarray(total, np.float64) / count
    covariance = (np.asarray(outer, np.float64) - count * np.outer(mean, mean)) / (
        count - 1
    )
    return mean, covariance


def _fid_from_sums(n1, s1, o1, n2, s2, o2):
    if n1 < 2 or n2 < 2:
        return np.float64(np.nan)
    mu1, sigma1 = gaussian_from_sums(n1, s1, o1)
    mu2, sigma2 = gaussian_from_sums(n2, s2, o2)
    return np.float64(frechet_distance(mu1, sigma1, mu2, sigma2))


def coverage_summary(shares, threshold=0.5) -> dict:
    """Mode-collapse figures from per-class shares.

    Returns:
        ``class_coverage``: the share of classes holding at least ``threshold``
        times their fair share 1/C (1.0: every class is produced);
        ``class_entropy``: entropy of the shares / log C (1.0: uniform);
        ``max_class_share``: the largest share.
    """
    shares = np.asarray(shares, np.float64)
    classes = len(shares)
    covered = float(np.mean(shares >= threshold / classes))
    nonzero = shares[shares > 0]
    entropy = abs(float(-(nonzero * np.log(nonzero)).sum() / math.log(classes)))
    return {
        "class_coverage": covered,
        "class_entropy": entropy,
        "max_class_share": float(shares.max()),
    }


# The reference classifier


def cache_dir() -> Path:
    """Where quality classifiers are cached: $KERAS_CLASSICS_CACHE or
    ~/.cache/keras-classics."""
    return Path(
        os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "keras-classics"
    ).expanduser()


def classifier_dir(dataset: str, root=None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(dataset))
    return Path(root or cache_dir()) / "quality_classifiers" / safe


def ensure_classifier(
    dataset: str,
    *,
    root=None,
    epochs: int = CLASSIFIER_EPOCHS,
    steps_per_epoch: int | None = None,
    batch_size: int = 128,
    in_process: bool = False,
) -> Path:
    """The `model.keras` of a cached classifier for `dataset`; trains one if needed.

    Training (`train_classifier`) runs by default in a fresh process, so that it
    neither touches this process's seeds, precision policy or strategy nor
    initialises TensorFlow before `apps.training.setup` splits devices, into a
    temporary directory, then moves it into the cache in one rename, so that an
    interrupted or concurrent first use never leaves a half-written classifier.
    """
    target = classifier_dir(dataset, root)
    model_path = target / "model.keras"
    if model_path.is_file() and (target / PREPROCESSING_FILE).is_file():
        return model_path
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".training-", dir=target.parent))
    budget = {
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
    }
    print(
        f"Training the {CLASSIFIER_MODEL} classifier that measures sample quality on "
        f"{dataset} ({epochs} epoch{'' if epochs == 1 else 's'}, once; cached in "
        f"{target}) ...",
        flush=True,
    )
    try:
        if in_process:
            train_classifier(dataset, work / "run", **budget)
        else:
            _train_apart(dataset, work / "run", **budget)
        try:
            os.replace(work / "run", target)
        except OSError:
            if not model_path.is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return model_path


def train_classifier(
    dataset: str, run_dir, *, epochs: int, steps_per_epoch=None, batch_size=128
) -> dict | None:
    """Trains the quality classifier into `run_dir`: LeNet-5 through the
    classification task, seed 0, all of the training split, Adam at its default
    rate, constant, no augmentation. Not LeNet-5's recipe: the published FID/IS
    figures were measured with this classifier (the paper's tanh LeNet-5), as
    `python -m apps.classify train --recipe none` trains it."""
    from apps.tasks import classification

    config, options, sources = classification.configure(
        model=CLASSIFIER_MODEL,
        dataset=dataset,
        validation_split=0.0,
        eval_steps=4 if steps_per_epoch else None,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        lr_schedule="constant",
        seed=0,
        use_recipe=False,
    )
    return classification.train(config, options, run_dir, recipe=sources)


# A fresh interpreter's work (see `_train_apart`).
TRAIN_APART = (
    "import sys; from apps.generative import quality; "
    "sys.exit(quality.train_apart_main(sys.argv[1]))"
)


def train_apart_main(arguments: str) -> int:
    """`train_classifier(**json.loads(arguments))` with a command's exit code and
    one-line error (`apps.cli.run_command`): what `_train_apart`'s process runs."""
    from apps import cli

    def train(keywords) -> int:
        train_classifier(**keywords)
        return 0

    return cli.run_command(train, json.loads(arguments))


def _train_apart(dataset: str, run_dir, **budget) -> None:
    """`train_classifier` in a fresh Python process (its output captured);
    TrainingError with the end of its stderr if it fails."""
    arguments = json.dumps({"dataset": dataset, "run_dir": str(run_dir), **budget})
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_APART, arguments], capture_output=True, text=True
    )
    if done.returncode != 0:
        from apps.training import TrainingError

        raise TrainingError(
            f"training the quality classifier failed (exit {done.returncode}): "
            f"{done.stderr[-2000:]}"
        )


# Layers that only apply a function to the logits, element by element or across
# the classes: walked past to find the Dense layer that computes the logits.
ACTIVATION_LAYERS = (
    keras.layers.Activation,
    keras.layers.Softmax,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Identity,
)


def classifier_features(classifier):
    """The ``(features, probabilities)`` tensors of a functional classifier.

    The probabilities are ``classifier.outputs[0]`` (the main head: GoogLeNet's
    auxiliary heads are outputs 1 and 2). The features are the input of the Dense
    layer that computes that output's logits, found by walking back from the
    output past activation-only layers (`ACTIVATION_LAYERS`): AlexNet's output is
    an ``Activation`` layer on fc8, so its features are fc8's input (fc7, 4096-d),
    not fc8's 10 logits. Taking ``classifier.layers[-1]`` instead gets this wrong
    whenever the last layer in the list is not the main head's Dense layer.

    Raises:
        ValueError: if the output is not computed by a Dense layer (behind
            activation-only layers): there is no penultimate feature vector to
            take, and FID would silently compare something else.
    """
    probabilities = classifier.outputs[0]
    tensor = probabilities
    while True:
        layer, node_index, _ = tensor._keras_history
        inputs = layer._inbound_nodes[node_index].input_tensors
        if isinstance(layer, ACTIVATION_LAYERS) and len(inputs) == 1:
            tensor = inputs[0]
            continue
        break
    if not isinstance(layer, keras.layers.Dense) or len(inputs) != 1:
        raise ValueError(
            f"The quality classifier {classifier.name!r} must compute its first "
            "output with a Dense layer (optionally followed by activation layers), "
            "whose input gives the features of FID. Received an output computed by "
            f"{type(layer).__name__} {layer.name!r}."
        )
    return inputs[0], probabilities


class FeatureExtractor:
    """The classifier as a feature function of [-1, 1] images.

    `__call__(images)` returns ``(features, probabilities)``: the input of the
    Dense layer behind the classifier's first output (see `classifier_features`)
    and that output, after converting the images to what the classifier was
    trained on (its saved preprocessing spec: size, channels, normalisation).
    """

    def __init__(self, model_path):
        import apps  # noqa: F401  (custom layers, for deserialisation)

        path = Path(model_path)
        spec_path = path.parent / PREPROCESSING_FILE
        if not path.is_file() or not spec_path.is_file():
            raise ValueError(
                f"{path} is not the model.keras of a `python -m apps.classify "
                "train` run (model.keras with preprocessing.json beside it)."
            )
        self.path = path
        self.spec = json.loads(spec_path.read_text())
        classifier = keras.saving.load_model(path, compile=False)
        features, probabilities = classifier_features(classifier)
        self.model = keras.Model(
            classifier.inputs, [features, probabilities], name="quality"
        )
        self.feature_dim = int(features.shape[-1])
        self.classes = int(probabilities.shape[-1])
        self.class_names = list(self.spec.get("class_names", []))

    def __call__(self, images):
        features, probabilities = self.model(self.preprocess(images), training=False)
        return features, probabilities

    def preprocess(self, images):
        """[-1, 1] images to the classifier's input."""
        height, width, channels = self.spec["input_shape"]
        images = tf.cast(images, tf.float32)
        if images.shape[-1] != channels:
            if channels == 1:
                images = tf.image.rgb_to_grayscale(images)
            else:
                images = tf.image.grayscale_to_rgb(images)
        if tuple(images.shape[1:3]) != (height, width):
            images = tf.image.resize(images, (height, width), antialias=True)
        normalization = self.spec.get("normalization", "unit")
        if normalization == "unit":
            return (images + 1.0) / 2.0
        if normalization == "none":
            return (images + 1.0) * 127.5
        return images


class QualityEvaluator:
    """FID, IS and class coverage of a generator against real images.

    The real side (features of `real_images`) is computed once; `evaluate(gan)`
    draws `samples` images from a fixed latent batch (the same every epoch, so
    that epochs are compared on the same z) and returns the figures. Updates run
    through `strategy.run` on the distributed batches.

    Args:
        extractor: a `FeatureExtractor` (or the path of a classifier model.keras).
        real_images: a dataset of float32 [-1, 1] image batches (or
            ``(images, labels)`` batches), or an array of such images.
        samples: generated images per evaluation.
        batch_size: global batch of the evaluation.
        seed: seeds the fixed latent batch (and the class labels' order).
        strategy: the strategy the GAN was built in (default: the current one).
    """

    def __init__(
        self,
        extractor,
        real_images,
        *,
        samples: int = 1000,
        batch_size: int = 250,
        seed: int = 0,
        strategy=None,
    ):
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
            raise ValueError(f"samples must be an int >= 2. Received: {samples!r}")
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            if not isinstance(extractor, FeatureExtractor):
                extractor = FeatureExtractor(extractor)
            self.extractor = extractor
            self.fid = FrechetDistance(extractor.feature_dim)
            self.inception_score = InceptionScore(extractor.classes)
            self.coverage = ClassCoverage(extractor.classes)
        self.samples = samples
        self.batch_size = batch_size
        self.seed = seed
        self._generator_step = None
        self.real_count = self._add_real(real_images)

    def _add_real(self, real_images):
        if not isinstance(real_images, tf.data.Dataset):
            real_images = tf.data.Dataset.from_tensor_slices(
                np.asarray(real_images, np.float32)
            ).batch(self.batch_size)
        real_images = real_images.map(lambda *batch: batch[0])  # drop labels

        @tf.function
        def step(images):
            def update(batch):
                features, _ = self.extractor(batch)
                self.fid.update_state(real=features)

            self.strategy.run(update, args=(images,))

        for images in self._distribute(real_images):
            step(images)
        count = int(self.fid._sides["real"][0].numpy())
        if count < 2:
            raise ValueError(
                f"the real reference set has {count} images; at least 2 are needed."
            )
        return count

    def evaluate(self, gan) -> dict:
        """The quality figures of `gan`'s generator now (a dict of floats)."""
        self.fid.reset_generated()
        self.inception_score.reset_state()
        self.coverage.reset_state()
        z = latent_batch(self.samples, gan.latent_dim, self.seed)
        labels = gan.sample_labels(self.samples)
        if labels is None:
            dataset = tf.data.Dataset.from_tensor_slices(z)
        else:
            dataset = tf.data.Dataset.from_tensor_slices((z, labels))
        dataset = dataset.batch(self.batch_size)
        step = self._step_for(gan)
        for batch in self._distribute(dataset):
            step(batch)
        shares = self.coverage.result().numpy()
        return {
            "fid": float(self.fid.result()),
            "inception_score": float(self.inception_score.result()),
            **coverage_summary(shares),
            "class_shares": [float(share) for share in shares],
        }

    def _distribute(self, dataset):
        # Multi-worker: split batches between workers, never files (there are none).
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return self.strategy.experimental_distribute_dataset(
            dataset.with_options(options)
        )

    def _step_for(self, gan):
        if self._generator_step is not None and self._generator_step[0] is gan:
            return self._generator_step[1]

        @tf.function
        def step(batch):
            def update(inputs):
                if isinstance(inputs, tuple):
                    inputs = list(inputs)
                images = gan.generator(inputs, training=False)
                features, probabilities = self.extractor(images)
                self.fid.update_state(generated=features)
                self.inception_score.update_state(probabilities)
                self.coverage.update_state(probabilities)

            self.strategy.run(update, args=(batch,))

        self._generator_step = (gan, step)
        return step


def latent_batch(n, latent_dim, seed=0):
    from apps.generative.gan import latent_batch as draw

    return draw(n, latent_dim, seed)


def real_reference(dataset: str, image_shape, samples: int, batch_size: int = 250):
    """The first `samples` test images of `dataset` as [-1, 1] batches."""
    from apps import data

    examples = data.load(dataset, "test").take(samples)
    return data.pipeline(
        examples,
        batch_size=batch_size,
        image_size=tuple(image_shape[:2]),
        channels=image_shape[-1],
        normalization="symmetric",
        cache=False,
    )
