"""Quality metrics: FID, the Inception-Score-style score, class coverage."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import apps
import apps.generative  # noqa: F401
from apps.generative import quality


def _gaussian(n, dim, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return (rng.normal(size=(n, dim)) @ mixing + shift).astype("float32")


def test_frechet_distance_matches_the_matrix_square_root_formula():
    linalg = pytest.importorskip("scipy.linalg")
    a, b = _gaussian(400, 6, 0), _gaussian(300, 6, 1, shift=0.5)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert quality.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, 1e-6)


def test_fid_metric_accumulates_batches_exactly():
    real, fake = _gaussian(500, 8, 0), _gaussian(500, 8, 1, shift=1.0)
    metric = quality.FrechetDistance(8)
    for start in range(0, 500, 128):  # uneven batches
        metric.update_state(real=real[start : start + 128])
        metric.update_state(generated=fake[start : start + 128])
    mean_r, cov_r = real.mean(0), np.cov(real.astype("float64"), rowvar=False)
    mean_g, cov_g = fake.mean(0), np.cov(fake.astype("float64"), rowvar=False)
    expected = quality.frechet_distance(mean_r, cov_r, mean_g, cov_g)
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)
    metric.reset_generated()
    metric.update_state(generated=real)
    assert float(metric.result()) == pytest.approx(0.0, abs=1e-6)


def test_fid_is_near_zero_for_the_same_distribution_and_large_for_another():
    same = quality.FrechetDistance(8)
    same.update_state(real=_gaussian(2000, 8, 0), generated=_gaussian(2000, 8, 0))
    assert float(same.result()) < 1e-6
    # The same distribution, other samples: only the sampling error, ~d/n.
    other = _gaussian(2000, 8, 0)
    rng = np.random.default_rng(5)
    resampled = other[rng.permutation(2000)[:1000]]
    near = quality.FrechetDistance(8)
    near.update_state(real=other[:1000], generated=resampled)
    far = quality.FrechetDistance(8)
    far.update_state(real=other, generated=rng.uniform(-3, 3, (2000, 8)))
    assert float(near.result()) < 0.05 * float(far.result())


def test_inception_score_and_coverage_bounds():
    confident = np.eye(10, dtype="float32")[np.arange(200) % 10]
    score = quality.InceptionScore(10)
    score.update_state(confident[:77])
    score.update_state(confident[77:])
    assert float(score.result()) == pytest.approx(10.0, rel=1e-6)
    collapsed = quality.InceptionScore(10)
    collapsed.update_state(np.tile(confident[3], (50, 1)))
    assert float(collapsed.result()) == pytest.approx(1.0, rel=1e-6)
    coverage = quality.ClassCoverage(10)
    coverage.update_state(np.tile(confident[3], (30, 1)))
    coverage.update_state(confident[:10])
    shares = coverage.result().numpy()
    assert shares.sum() == pytest.approx(1.0)
    assert shares[3] == pytest.approx(31 / 40)
    summary = quality.coverage_summary(shares)
    assert summary["class_coverage"] == pytest.approx(0.1)
    assert summary["max_class_share"] == pytest.approx(31 / 40)
    uniform = quality.coverage_summary(np.full(10, 0.1))
    assert uniform["class_coverage"] == 1.0
    assert uniform["class_entropy"] == pytest.approx(1.0)


def test_bad_metric_arguments():
    with pytest.raises(ValueError, match="feature_dim must be a positive int"):
        quality.FrechetDistance(0)
    with pytest.raises(ValueError, match="classes must be an int >= 2"):
        quality.InceptionScore(1)


def test_real_fashion_mnist_against_itself_and_against_noise(classifier_cache):
    """With the classifier's features: FID(real, real) ~ 0, FID(real, noise) large."""
    path = quality.ensure_classifier("fashion_mnist", root=classifier_cache)
    extractor = quality.FeatureExtractor(path)
    assert extractor.feature_dim == 84 and extractor.classes == 10  # LeNet-5's F6
    reference = quality.real_reference("fashion_mnist", (28, 28, 1), 1000)
    images = np.concatenate([batch for batch, _ in reference.as_numpy_iterator()])
    assert images.shape == (1000, 28, 28, 1) and images.min() >= -1.0

    def fid(first, second):
        metric = quality.FrechetDistance(extractor.feature_dim)
        for part in np.array_split(first, 4):
            metric.update_state(real=extractor(tf.constant(part))[0])
        for part in np.array_split(second, 4):
            metric.update_state(generated=extractor(tf.constant(part))[0])
        return float(metric.result())

    noise = np.random.default_rng(0).uniform(-1, 1, images.shape).astype("float32")
    identical = fid(images, images)
    halves = fid(images[:500], images[500:])
    against_noise = fid(images, noise)
    assert identical == pytest.approx(0.0, abs=1e-6)
    assert halves < 0.1 * against_noise
    assert against_noise > 1.0


def _extractor_of(model, tmp_path, monkeypatch):
    """A FeatureExtractor of the in-memory `model`: `load_model` is made to return
    it, since saving an 80 MB AlexNet would only test saving (the Fashion-MNIST
    test above loads a real classifier run)."""
    (tmp_path / "model.keras").write_bytes(b"")
    spec = {"input_shape": [28, 28, 1], "normalization": "unit"}
    (tmp_path / "preprocessing.json").write_text(json.dumps(spec))
    monkeypatch.setattr(keras.saving, "load_model", lambda path, compile=False: model)
    return quality.FeatureExtractor(tmp_path / "model.keras")


def _features_of(extractor, model, layer_name):
    """The extractor's output on two images, and `layer_name`'s and the model's
    first output on the same preprocessed images."""
    images = np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)).astype("float32")
    features, probabilities = extractor(tf.constant(images))
    inputs = extractor.preprocess(tf.constant(images))
    layer = keras.Model(model.inputs, model.get_layer(layer_name).output)
    outputs = model(inputs, training=False)
    first = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    return features, probabilities, layer(inputs, training=False), first


def test_alexnet_features_are_fc7_not_the_fc8_logits(tmp_path, monkeypatch):
    """AlexNet ends with an Activation layer on fc8: the features are fc8's
    input (fc7 after its dropout, the identity at inference), 4096-d."""
    model = apps.build("alexnet", classes=10, input_shape=(28, 28, 1))
    extractor = _extractor_of(model, tmp_path, monkeypatch)
    assert (extractor.feature_dim, extractor.classes) == (4096, 10)
    features, probabilities, fc7, expected = _features_of(extractor, model, "fc7")
    np.testing.assert_allclose(features, fc7, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-7)


def test_googlenet_features_come_from_the_main_head_not_aux2(tmp_path, monkeypatch):
    """With auxiliary heads the model's last layer is aux2's: the features must
    still be the main head's 1024-d average pool (what `predictions` reads)."""
    model = apps.build(
        "googlenet", classes=10, input_shape=(28, 28, 1), aux_classifiers=True
    )
    extractor = _extractor_of(model, tmp_path, monkeypatch)
    assert (extractor.feature_dim, extractor.classes) == (1024, 10)
    features, probabilities, pooled, expected = _features_of(
        extractor, model, "avg_pool"
    )
    np.testing.assert_allclose(features, pooled, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-7)


def test_a_classifier_without_a_dense_head_is_refused():
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(10, 3, name="class_maps")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Softmax(name="predictions")(x)
    with pytest.raises(ValueError, match="GlobalAveragePooling2D 'pool'"):
        quality.classifier_features(keras.Model(inputs, outputs))
    x = keras.layers.Dense(6, activation="tanh", name="features")(
        keras.layers.Flatten()(inputs)
    )
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    features, _ = quality.classifier_features(keras.Model(inputs, outputs))
    assert features._keras_history.operation.name == "features"
