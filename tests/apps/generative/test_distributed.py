"""Two logical CPU devices (MirroredStrategy) against one: the same first step.

Splitting the CPU must happen before TensorFlow initialises, so the comparison runs
in a subprocess: it builds each GAN once, copies its weights into a copy built under
MirroredStrategy on 2 logical CPUs, runs one training step on the same global batch
in both, and prints the largest weight difference. The quality metrics are checked
the same way (FID/IS/coverage accumulated on 2 replicas vs 1), and so are the
validation losses on batches that split unevenly over the replicas.
"""

import json
import math
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from apps import training

    options = training.TrainOptions(strategy="mirrored", devices=2, seed=0)
    mirrored = training.setup(options)

    import keras
    import numpy as np
    import tensorflow as tf

    import apps
    import apps.generative  # noqa: F401
    from apps.generative import quality

    single = tf.distribute.get_strategy()
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (16, 28, 28, 1)).astype("float32")
    labels = (np.arange(16) % 10).astype("int64")
    batch = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)


    def build(strategy, name, **kwargs):
        with strategy.scope():
            gan = apps.build(name, latent_dim=8, seed=3, **kwargs)
            gan.compile(d_steps=2)
        return gan


    def one_step(gan, strategy):
        @tf.function
        def step(data):
            strategy.run(gan.train_step, args=(data,))

        step(next(iter(strategy.experimental_distribute_dataset(batch))))
        return [np.asarray(v) for v in gan.weights]


    results, pairs = {}, {}
    for name, kwargs in (
        ("dcgan", {"width": 8, "attention": True}),
        ("cdcgan", {"width": 8}),
    ):
        reference = build(single, name, **kwargs)
        copy = build(mirrored, name, **kwargs)
        copy.set_weights(reference.get_weights())
        before = [np.asarray(v).copy() for v in reference.weights]
        one = one_step(reference, single)
        two = one_step(copy, mirrored)
        pairs[name] = (reference, copy)
        results[name] = {
            "replicas": mirrored.num_replicas_in_sync,
            "max_difference": max(
                float(np.max(np.abs(a - b))) for a, b in zip(one, two)
            ),
            "max_update": max(
                float(np.max(np.abs(a - b))) for a, b in zip(one, before)
            ),
            "d_iterations": int(copy.d_optimizer.iterations.numpy()),
            "g_iterations": int(copy.g_optimizer.iterations.numpy()),
        }

    # The quality metrics on 2 replicas: a tiny (untrained) classifier suffices.
    classifier_dir = sys.argv[1]
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(6, activation="tanh", name="features")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    keras.Model(inputs, outputs).save(f"{classifier_dir}/model.keras")
    with open(f"{classifier_dir}/preprocessing.json", "w") as file:
        json.dump({"input_shape": [28, 28, 1], "normalization": "unit"}, file)
    figures = []
    reference, copy = pairs["dcgan"]
    copy.set_weights(reference.get_weights())
    for gan, strategy in ((reference, single), (copy, mirrored)):
        evaluator = quality.QualityEvaluator(
            f"{classifier_dir}/model.keras",
            images,
            samples=30,
            batch_size=8,
            strategy=strategy,
        )
        figures.append(evaluator.evaluate(gan))
    results["quality"] = figures

    # The metrics themselves, on varied inputs, accumulated on 1 and 2 replicas.
    features = rng.normal(size=(40, 6)).astype("float32")
    logits = 3 * rng.normal(size=(40, 10)).astype("float32")
    probabilities = tf.nn.softmax(logits).numpy()
    data = tf.data.Dataset.from_tensor_slices((features, probabilities)).batch(8)
    direct = []
    for strategy in (single, mirrored):
        with strategy.scope():
            fid = quality.FrechetDistance(6)
            score = quality.InceptionScore(10)
            coverage = quality.ClassCoverage(10)

        def update(f, p):
            fid.update_state(real=f, generated=2 * f + 1)
            score.update_state(p)
            coverage.update_state(p)

        @tf.function
        def step(batch):
            strategy.run(update, args=batch)

        for part in strategy.experimental_distribute_dataset(data):
            step(part)
        direct.append(
            {
                "fid": float(fid.result()),
                "inception_score": float(score.result()),
                "class_shares": [float(x) for x in coverage.result().numpy()],
            }
        )
    results["metrics"] = direct

    # Validation with ragged batches: 5 rows and 1, on 2 replicas 3 + 2 and 1 + 0.
    # The conditional GAN: its fakes pair each replica's labels with its z rows.
    from apps.loop import DistributedLoop

    validation = tf.data.Dataset.from_tensor_slices((images[:6], labels[:6])).batch(5)
    reference, copy = pairs["cdcgan"]
    copy.set_weights(reference.get_weights())
    try:  # an error here is this check's failure, not the whole script's
        results["validation"] = [
            DistributedLoop(gan, strategy).evaluate(validation)
            for gan, strategy in ((reference, single), (copy, mirrored))
        ]
    except Exception as error:
        results["validation"] = f"{type(error).__name__}: {error}"[:2000]
    print("RESULTS " + json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The script's results, from one subprocess for the tests of this module."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path_factory.mktemp("classifier"))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(
        line for line in done.stdout.splitlines() if line.startswith("RESULTS ")
    )
    return json.loads(line.removeprefix("RESULTS "))


def test_two_replicas_take_the_same_first_step_as_one(results):
    for name in ("dcgan", "cdcgan"):
        result = results[name]
        assert result["replicas"] == 2
        assert (result["d_iterations"], result["g_iterations"]) == (2, 1)
        assert result["max_update"] > 1e-5  # the step did change the weights
        # Global-batch losses, synchronised BatchNorm and the replica's share of
        # the global noise make the step the same up to float summation order.
        assert result["max_difference"] < 1e-5, result
    for one, two in (results["quality"], results["metrics"]):
        assert abs(two["fid"] - one["fid"]) < 1e-6 * max(1.0, one["fid"])
        assert abs(two["inception_score"] - one["inception_score"]) < 1e-6
        assert two["class_shares"] == one["class_shares"]
    varied = results["metrics"][0]
    assert sum(share > 0 for share in varied["class_shares"]) >= 5
    assert varied["fid"] > 1.0 and varied["inception_score"] > 2.0


def test_ragged_validation_batches_give_the_losses_of_one_device(results):
    """Validation batches split unevenly over 2 replicas (3 + 2 and 1 + 0 rows):
    the global batch is the sum of the replicas' rows (each replica takes its own
    rows of the global noise), and the trackers average over examples."""
    assert isinstance(results["validation"], list), results["validation"]
    one, two = results["validation"]
    assert set(one) == {"d_loss", "g_loss", "d_real", "d_fake"}, one
    for key, value in one.items():
        assert math.isfinite(two[key]), (key, two)
        assert abs(two[key] - value) < 1e-5 * max(1.0, abs(value)), (key, one, two)
