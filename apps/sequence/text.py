"""Characters in, characters out: the vocabularies live inside the translators.

A translator takes two string tensors, ``source`` (the text to translate) and
``target`` (the output so far; the whole answer under teacher forcing), and returns
the logits of the next output character at every target position::

    model({"source": ["3rd of May 1979"], "target": ["1979-05-03"]})
    # -> (1, max_target_length + 1, target vocabulary size): position t predicts
    #    character t + 1 of the answer, the last position predicts END_TOKEN.

Both sides are split into characters by ``keras.layers.TextVectorization`` layers
named ``source_vectorizer`` and ``target_vectorizer``, whose vocabularies are saved
in the ``.keras`` file with the weights. Id 0 is padding, id 1 an unknown
character. Sources are standardised first (layer ``standardize``): lower-cased,
runs of white space made one space, and stripped.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers as kl

START_TOKEN = "^"
END_TOKEN = "$"
PADDING_ID = 0
UNKNOWN_ID = 1


def standardize(texts):
    """Lower-cases, turns each run of white space into one space and strips."""
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, r"\s+", " ")
    return tf.strings.strip(texts)


@keras.saving.register_keras_serializable(package="apps.sequence")
class Standardize(kl.Layer):
    """Strings -> :func:`standardize`-d strings (a layer, so the model clones).

    ``TextVectorization(standardize=callable)`` would do the same, but its config
    then holds a function, which ``keras.models.clone_model`` cannot rebuild.
    """

    def call(self, texts):
        return standardize(texts)

    def compute_output_spec(self, texts):
        return keras.KerasTensor(texts.shape, dtype="string")


def source_vectorizer(alphabet, max_length, name="source_vectorizer"):
    """Standardised text -> ``(B, max_length)`` character ids (0 = padding).

    Longer texts are cut; the command line refuses them before they get here.
    """
    return kl.TextVectorization(
        standardize=None,
        split="character",
        vocabulary=list(alphabet),
        output_sequence_length=max_length,
        name=name,
    )


def target_vectorizer(alphabet, max_length, name="target_vectorizer"):
    """Output text -> ``(B, max_length + 1)`` ids; START and END are in the vocabulary.

    One position more than the longest answer, for the END prediction.
    """
    return kl.TextVectorization(
        standardize=None,
        split="character",
        vocabulary=[START_TOKEN, END_TOKEN, *alphabet],
        output_sequence_length=max_length + 1,
        name=name,
    )


@keras.saving.register_keras_serializable(package="apps.sequence")
class DecoderInputs(kl.Layer):
    """Shifts target ids right by one and puts the start id first (teacher forcing).

    ``[c1, c2, ..., cT]`` -> ``[START, c1, ..., c(T-1)]``: position t of the decoder
    sees the answer up to character t and predicts character t + 1.

    Args:
        start_id: the id of ``START_TOKEN``.
    """

    def __init__(self, start_id, **kwargs):
        super().__init__(**kwargs)
        self.start_id = int(start_id)

    def call(self, ids):
        start = tf.fill([tf.shape(ids)[0], 1], tf.cast(self.start_id, ids.dtype))
        return tf.concat([start, ids[:, :-1]], axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "start_id": self.start_id}


@keras.saving.register_keras_serializable(package="apps.sequence")
class PaddingMask(kl.Layer):
    """Ids ``(B, S)`` -> boolean ``(B, 1, S)``, True where a key may be attended to.

    Broadcasts to the ``(B, T, S)`` ``attention_mask`` of our attention layers, so
    padding positions get exactly zero attention.
    """

    def call(self, ids):
        return tf.not_equal(ids, PADDING_ID)[:, None, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, input_shape[1])

    def compute_output_spec(self, ids):
        return keras.KerasTensor(self.compute_output_shape(ids.shape), dtype="bool")


def translation_inputs(
    source_alphabet, target_alphabet, max_source_length, max_target_length
):
    """The two string inputs and their ids, shared by every translator builder.

    Returns:
        ``(inputs, source_ids, decoder_ids)``: the ``{"source", "target"}`` dict of
        ``keras.Input``, the source ids ``(B, max_source_length)`` and the decoder
        input ids ``(B, max_target_length + 1)``, START first.
    """
    inputs = {
        "source": keras.Input(shape=(), dtype="string", name="source"),
        "target": keras.Input(shape=(), dtype="string", name="target"),
    }
    source = Standardize(name="standardize")(inputs["source"])
    source_ids = source_vectorizer(source_alphabet, max_source_length)(source)
    target = target_vectorizer(target_alphabet, max_target_length)
    start_id = target.get_vocabulary().index(START_TOKEN)
    decoder_ids = DecoderInputs(start_id, name="decoder_inputs")(
        target(inputs["target"])
    )
    return inputs, source_ids, decoder_ids


def vocabulary_size(alphabet):
    """Ids a vectorizer of ``alphabet`` produces: padding, unknown and the alphabet."""
    return len(alphabet) + 2


# Outside the model: reading the vocabularies back, checking input, making labels


def vocabularies(model):
    """``(source, target)`` vocabularies of a translator, as lists (index = id)."""
    return (
        [str(token) for token in model.get_layer("source_vectorizer").get_vocabulary()],
        [str(token) for token in model.get_layer("target_vectorizer").get_vocabulary()],
    )


def max_lengths(model):
    """``(max_source_length, max_target_length)`` of a translator."""
    source = model.get_layer("source_vectorizer").get_config()
    target = model.get_layer("target_vectorizer").get_config()
    return source["output_sequence_length"], target["output_sequence_length"] - 1


class InvalidInput(ValueError):
    """A text the translator refuses to translate; the message says why."""


def check_source(text, vocabulary, max_length):
    """Standardises ``text`` and checks the translator can read it.

    Args:
        text: a Python string.
        vocabulary: the source vocabulary (:func:`vocabularies`).
        max_length: the longest text accepted, in characters, after standardising.

    Returns:
        The standardised text.

    Raises:
        InvalidInput: for an empty text, a text longer than ``max_length`` or one
            with characters outside the vocabulary (they are listed).
    """
    cleaned = standardize(tf.constant(text)).numpy().decode("utf-8")
    if not cleaned:
        raise InvalidInput("empty input: there is nothing to translate")
    if len(cleaned) > max_length:
        raise InvalidInput(
            f"the input is {len(cleaned)} characters long; this model reads at most "
            f"{max_length}"
        )
    known = set(vocabulary[UNKNOWN_ID + 1 :])
    unknown = sorted({char for char in cleaned if char not in known})
    if unknown:
        raise InvalidInput(
            "characters outside the model's vocabulary: "
            + " ".join(repr(char) for char in unknown)
        )
    return cleaned


class Labeller:
    """Answers -> label ids ``(B, max_target_length + 1)``: the answer, then END.

    Built from the model's own target vocabulary, so data and model always agree.
    """

    def __init__(self, target_vocabulary, max_target_length):
        self.length = max_target_length + 1
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(target_vocabulary[UNKNOWN_ID + 1 :]),
                tf.range(UNKNOWN_ID + 1, len(target_vocabulary), dtype=tf.int64),
            ),
            default_value=UNKNOWN_ID,
        )

    def __call__(self, answers):
        characters = tf.strings.unicode_split(answers + END_TOKEN, "UTF-8")
        ids = tf.ragged.map_flat_values(self.table.lookup, characters)
        return ids.to_tensor(PADDING_ID, shape=[None, self.length])
