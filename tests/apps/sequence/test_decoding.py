"""Beam search on a toy translator whose next-character probabilities are a table.

The toy reads nothing but the output so far (the prefix), so every score below can
be checked by hand: alphabet ``"ab"``, outputs of at most 3 characters, then END.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as kl

from apps.sequence import decoding, text

ALPHABET = "ab"
MAX_LENGTH = 3
SOURCE = ["x"]


def _toy_translator(table):
    """A translator whose distribution after ``prefix`` is ``table[prefix]``.

    ``table`` maps a prefix to ``{character or "$": probability}``; prefixes not in
    it get the uniform distribution over END, ``a`` and ``b``.
    """
    inputs, source_ids, decoder_ids = text.translation_inputs(
        "x", ALPHABET, 1, MAX_LENGTH
    )
    vocabulary = [text.END_TOKEN, *ALPHABET]
    ids = [2, 3, 4, 5]  # START, END, a, b: after padding (0) and unknown (1)
    size, positions = len(ids) + 2, MAX_LENGTH + 1
    # One row per prefix code sum(id_j * size**j), START at j = 0.
    rows = np.full((size**positions, size), -1e9, np.float32)
    rows[:, 3:] = math.log(1 / 3)
    for prefix, probabilities in table.items():
        code = 2 + sum(
            (4 + ALPHABET.index(c)) * size ** (j + 1) for j, c in enumerate(prefix)
        )
        # Every longer code with this start is the same prefix plus padding.
        row = np.full(size, -1e9, np.float32)
        for token, probability in probabilities.items():
            row[3 + vocabulary.index(token)] = math.log(probability)
        rows[code] = row
    powers = tf.constant([size**j for j in range(positions)], tf.int64)
    lookup = tf.constant(rows)

    def logits(tensors):
        _, decoder = tensors
        codes = tf.cumsum(tf.cast(decoder, tf.int64) * powers, axis=1)
        return tf.gather(lookup, codes)

    outputs = kl.Lambda(logits, output_shape=(positions, size))(
        [source_ids, decoder_ids]
    )
    return keras.Model(inputs, outputs, name="toy")


def test_the_toy_scores_what_its_table_says():
    model = _toy_translator({"": {"$": 0.2, "a": 0.5, "b": 0.3}})
    scores = decoding._Decoder(model).log_probabilities(SOURCE, [""], 0)
    np.testing.assert_allclose(np.exp(scores[0, 3:]), [0.2, 0.5, 0.3], rtol=1e-6)


def test_a_full_length_output_is_scored_with_the_end_token():
    # "aaa" is likely up to its last character, but after it END is unlikely
    # (0.01): its score is log(0.6 * 0.9 * 0.9 * 0.01) = -5.33, below "b"'s
    # log(0.4 * 0.9) = -1.02. Scored with the best token instead (0.98), "aaa"
    # would win with -0.74.
    model = _toy_translator(
        {
            "": {"a": 0.6, "b": 0.4},
            "a": {"a": 0.9, "$": 0.05, "b": 0.05},
            "aa": {"a": 0.9, "$": 0.05, "b": 0.05},
            "aaa": {"a": 0.98, "$": 0.01, "b": 0.01},
            "b": {"$": 0.9, "a": 0.05, "b": 0.05},
        }
    )
    assert decoding.greedy(model, SOURCE) == ["aaa"]
    assert decoding.beam_search(model, SOURCE, beam_width=2) == ["b"]


# Greedy stops at once (END 0.42 against "a" 0.38); "ab" is less likely in all,
# 0.38 * 0.99 * 0.99 = 0.372, but per its 3 tokens (a, b, END) far more.
SHORT_OR_LONG = {
    "": {"$": 0.42, "a": 0.38, "b": 0.2},
    "a": {"b": 0.99, "$": 0.005, "a": 0.005},
    "ab": {"$": 0.99, "a": 0.005, "b": 0.005},
}


def test_length_normalisation_prefers_the_likelier_long_output():
    model = _toy_translator(SHORT_OR_LONG)
    assert decoding.greedy(model, SOURCE) == [""]
    # GNMT (Wu et al. 2016): log P / ((5 + |Y|) / 6) ** 0.6; "" has |Y| = 1
    # (END), so -0.868 / 1; "ab" -0.988 / (8 / 6) ** 0.6 = -0.832.
    assert decoding.beam_search(model, SOURCE, beam_width=2) == ["ab"]
    assert decoding.beam_search(model, SOURCE, beam_width=2, length_penalty=0.6) == [
        "ab"
    ]
    # Without it, summed log-probabilities: the short output wins.
    assert decoding.beam_search(model, SOURCE, beam_width=2, length_penalty=0.0) == [""]


def test_beam_one_is_greedy_with_any_length_penalty():
    model = _toy_translator(SHORT_OR_LONG)
    for alpha in (0.0, 0.6, 2.0):
        assert decoding.beam_search(
            model, SOURCE, beam_width=1, length_penalty=alpha
        ) == decoding.greedy(model, SOURCE)
    assert decoding.decode(model, SOURCE, beam_width=2) == ["ab"]


@pytest.mark.parametrize("alpha", [-0.1, float("nan"), float("inf"), "0.6", True])
def test_bad_length_penalty(alpha):
    model = _toy_translator({})
    with pytest.raises(ValueError, match="length_penalty must be"):
        decoding.beam_search(model, SOURCE, beam_width=2, length_penalty=alpha)
