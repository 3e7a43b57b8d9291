"""The Transformer's tied target embedding and pre-softmax layer (Press & Wolf 2017)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import apps
import apps.sequence  # noqa: F401  (registers the translators)
from apps.sequence import transformer

SMALL = {
    "num_layers": 1,
    "d_model": 16,
    "num_heads": 2,
    "feed_forward_dim": 32,
    "dropout": 0.0,
}
INPUTS = {
    "source": tf.constant(["3rd of May 1979", "12/10/2001"]),
    "target": tf.constant(["1979-05-03", "2001-10-12"]),
}


def _build(tie):
    keras.utils.set_random_seed(0)
    return apps.build("transformer", tie_embeddings=tie, **SMALL)


def test_tied_logits_are_the_decoder_output_times_the_embedding():
    tied, untied = _build(True), _build(False)
    embedding = tied.get_layer("target_embedding")
    size = embedding.input_dim
    # One V x d matrix less, and the Dense layer's bias: V * d + V parameters.
    assert untied.count_params() - tied.count_params() == size * 16 + size
    assert "logits" not in [layer.name for layer in tied.layers]
    decoder_output = keras.Model(
        tied.inputs, tied.get_layer("decoder_1_feed_forward_norm").output
    )(INPUTS)
    expected = np.asarray(decoder_output) @ np.asarray(embedding.embeddings).T
    np.testing.assert_allclose(np.asarray(tied(INPUTS)), expected, atol=1e-5)


def test_tied_model_round_trips_and_stays_tied(tmp_path):
    model = _build(True)
    path = tmp_path / "tied.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        np.asarray(loaded(INPUTS)), np.asarray(model(INPUTS)), atol=1e-6
    )
    # Still one matrix: changing the embedding changes the logits.
    embedding = loaded.get_layer("target_embedding")
    assert isinstance(embedding, transformer.TiedEmbedding)
    before = np.asarray(loaded(INPUTS))
    embedding.embeddings.assign(embedding.embeddings * 2.0)
    assert not np.allclose(np.asarray(loaded(INPUTS)), before)


def test_both_ends_train_the_shared_matrix():
    model = _build(True)
    embedding = model.get_layer("target_embedding").embeddings
    labels = tf.fill((2, 11), 5)
    with tf.GradientTape() as tape:
        logits = model(INPUTS, training=True)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
            labels, logits
        )
    gradient = np.asarray(tape.gradient(loss, embedding.value))
    # Id 1 (unknown) is never an input: its row learns through the logits only.
    assert np.abs(gradient[1]).max() > 0
    # START (id 2) is also the first input of every target.
    assert np.abs(gradient[2]).max() > 0


@pytest.mark.parametrize("value", [1, "yes", None])
def test_tie_embeddings_must_be_a_bool(value):
    # The builder itself: apps.build drops None options (unset flags).
    with pytest.raises(ValueError, match="tie_embeddings must be True or False"):
        transformer.transformer(tie_embeddings=value)
