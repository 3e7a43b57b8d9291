"""Recurrent encoder-decoders with attention: Bahdanau (additive) and Luong (dot).

Both read characters and write characters (see :mod:`apps.sequence.text` for the
string inputs and the logits they return), under teacher forcing: the decoder is fed
the answer shifted right, START first.

``attention`` -- Bahdanau, Cho & Bengio (ICLR 2015), "RNNsearch": a bidirectional
GRU encoder; a GRU decoder whose state ``s_i`` is computed from ``s_(i-1)``, the
previous character and the context ``c_i``, where ``c_i`` attends over the encoder
states with ``s_(i-1)`` as the query (additive score, our ``AdditiveAttention``);
``s_0 = tanh(W_s h_1_backward)``; the output layer reads ``[s_i, c_i, y_(i-1)]``.
Departures: GRU cells instead of the paper's gated units with maxout (a tanh layer
in place of the maxout), characters instead of words.

``luong`` -- Luong, Pham & Manning (EMNLP 2015), global attention: an LSTM encoder;
an LSTM decoder started from the encoder's final state; its outputs ``h_t`` attend
over the encoder states with the dot score (our ``ScaledDotProductAttention``,
which divides the dot product by ``sqrt(units)``: Vaswani et al.'s scaling, so that
the softmax does not saturate); ``h~_t = tanh(W_c [c_t; h_t])`` feeds the softmax.
No input feeding (the paper's base model), so the attention runs in parallel over
the target positions.
"""

import keras
import tensorflow as tf
from keras import layers as kl
from keras import ops

import layers
from apps.registry import register_model
from apps.sequence import _common, text

BAHDANAU_PAPER = (
    'Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning to '
    'Align and Translate", ICLR 2015'
)
LUONG_PAPER = (
    'Luong, Pham & Manning, "Effective Approaches to Attention-based Neural '
    'Machine Translation", EMNLP 2015'
)


@keras.saving.register_keras_serializable(package="apps.sequence")
class BahdanauDecoder(kl.Layer):
    """A GRU decoder that attends over the encoder states before every step.

    For each target position ``i``::

        c_i, alpha_i = AdditiveAttention(query=s_(i-1), value=memory)
        s_i = GRU([y_(i-1); c_i], s_(i-1))

    Args:
        units: size of the GRU state ``s``.
        attention_units: size of the alignment model's hidden layer.
        **kwargs: standard layer keyword arguments.

    Call arguments:
        inputs: embedded previous characters ``(B, T, E)``.
        memory: encoder states ``(B, S, M)``.
        initial_state: ``s_0``, ``(B, units)``.
        memory_mask: boolean ``(B, 1, S)``, True where the encoder state is real.

    Returns:
        ``(states, contexts, weights)``: ``(B, T, units)``, ``(B, T, M)`` and the
        attention weights ``(B, T, S)``.
    """

    def __init__(self, units, attention_units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.attention_units = attention_units
        self.attention = layers.AdditiveAttention(attention_units, name="attention")
        self.cell = kl.GRUCell(units, name="gru_cell")

    def build(
        self,
        inputs_shape,
        memory_shape,
        initial_state_shape=None,
        memory_mask_shape=None,
    ):
        batch = inputs_shape[0]
        self.attention.build((batch, 1, self.units), memory_shape)
        self.cell.build((batch, inputs_shape[-1] + memory_shape[-1]))
        self.built = True

    def call(self, inputs, memory, initial_state, memory_mask=None):
        def step(previous_outputs, previous):
            state = previous_outputs[0]
            context, weights = self.attention(
                ops.expand_dims(state, 1),
                memory,
                attention_mask=memory_mask,
                return_attention_scores=True,
            )
            context, weights = context[:, 0], weights[:, 0]
            _, (new_state,) = self.cell(
                ops.concatenate([previous, context], axis=-1), [state]
            )
            return new_state, context, weights

        # tf.scan, not keras.ops.scan: the latter's TensorFlow version gives every
        # stacked output the shape of the first (Keras 3.15).
        batch = ops.shape(inputs)[0]
        start = (
            initial_state,
            ops.zeros((batch, memory.shape[-1]), memory.dtype),
            ops.zeros((batch, ops.shape(memory)[1]), memory.dtype),
        )
        outputs = tf.scan(step, ops.swapaxes(inputs, 0, 1), initializer=start)
        return tuple(ops.swapaxes(output, 0, 1) for output in outputs)

    def compute_output_shape(
        self,
        inputs_shape,
        memory_shape,
        initial_state_shape=None,
        memory_mask_shape=None,
    ):
        batch, steps = inputs_shape[:2]
        return (
            (batch, steps, self.units),
            (batch, steps, memory_shape[-1]),
            (batch, steps, memory_shape[1]),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "attention_units": self.attention_units,
        }


def _encoder_inputs(*, embedding_dim, units, dropout, **translation):
    """Validates the arguments both translators take, then makes their common
    front: the model inputs, the embedded source, its padding mask, the decoder's
    input ids and the target vocabulary size (the alphabet + START and END)."""
    source_alphabet, target_alphabet, *lengths = _common.check_translation(
        **translation
    )
    _common.check_positive_int("embedding_dim", embedding_dim)
    _common.check_positive_int("units", units)
    _common.check_rate("dropout", dropout)
    inputs, source_ids, decoder_ids = text.translation_inputs(
        source_alphabet, target_alphabet, *lengths
    )
    source_mask = text.PaddingMask(name="source_mask")(source_ids)
    source = kl.Embedding(
        text.vocabulary_size(source_alphabet),
        embedding_dim,
        mask_zero=True,
        name="source_embedding",
    )(source_ids)
    target_size = text.vocabulary_size(target_alphabet) + 2
    return inputs, source, source_mask, decoder_ids, target_size


@register_model(
    "attention",
    family="seq2seq",
    paper=BAHDANAU_PAPER,
    task="translation",
    hyperparameters=("embedding_dim", "units", "attention_units", "dropout"),
)
def attention(
    source_alphabet=None,
    target_alphabet=None,
    max_source_length=None,
    max_target_length=None,
    embedding_dim=32,
    units=128,
    attention_units=None,
    dropout=0.0,
    name="attention",
):
    """Bahdanau et al. (2015): bi-GRU encoder, GRU decoder, additive attention.

    Args:
        source_alphabet: the input characters (a string); defaults to the date
            task's (``apps.data.dates.SOURCE_ALPHABET``).
        target_alphabet: the output characters; defaults to ``"-0123456789"``.
        max_source_length: longest input, in characters (default 40).
        max_target_length: longest output, in characters (default 10).
        embedding_dim: size of the character embeddings.
        units: size of each encoder direction and of the decoder state.
        attention_units: hidden size of the alignment model (default ``units``).
        dropout: dropout rate before the output layer, in [0, 1).
        name: model name.

    Returns:
        An uncompiled ``keras.Model`` from ``{"source", "target"}`` strings to logits
        ``(B, max_target_length + 1, len(target_alphabet) + 4)``.
    """
    if attention_units is None:
        attention_units = units
    _common.check_positive_int("attention_units", attention_units)
    inputs, x, source_mask, decoder_ids, target_size = _encoder_inputs(
        source_alphabet=source_alphabet,
        target_alphabet=target_alphabet,
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        embedding_dim=embedding_dim,
        units=units,
        dropout=dropout,
        name=name,
    )

    # Encoder
    memory, _, backward_state = kl.Bidirectional(
        kl.GRU(units, return_sequences=True, return_state=True), name="encoder"
    )(x)
    initial_state = kl.Dense(units, activation="tanh", name="decoder_init")(
        backward_state
    )

    # Decoder
    previous = kl.Embedding(target_size, embedding_dim, name="target_embedding")(
        decoder_ids
    )
    states, contexts, _ = BahdanauDecoder(
        units, attention_units, name="decoder_attention"
    )(previous, memory, initial_state, memory_mask=source_mask)

    # Output
    x = kl.Concatenate(name="deep_output_inputs")([states, contexts, previous])
    x = kl.Dense(units, activation="tanh", name="deep_output")(x)
    if dropout:
        x = kl.Dropout(dropout, name="deep_output_dropout")(x)
    logits = kl.Dense(target_size, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


@register_model(
    "luong",
    family="seq2seq",
    paper=LUONG_PAPER,
    task="translation",
    hyperparameters=("embedding_dim", "units", "dropout"),
)
def luong(
    source_alphabet=None,
    target_alphabet=None,
    max_source_length=None,
    max_target_length=None,
    embedding_dim=32,
    units=128,
    dropout=0.0,
    name="luong",
):
    """Luong et al. (2015): LSTM encoder-decoder with global (dot) attention.

    Args:
        source_alphabet, target_alphabet, max_source_length, max_target_length:
            as for :func:`attention`.
        embedding_dim: size of the character embeddings.
        units: size of the encoder and decoder LSTMs and of ``h~``.
        dropout: dropout rate on ``h~`` before the output layer, in [0, 1).
        name: model name.

    Returns:
        An uncompiled ``keras.Model`` from ``{"source", "target"}`` strings to logits
        ``(B, max_target_length + 1, len(target_alphabet) + 4)``.
    """
    inputs, x, source_mask, decoder_ids, target_size = _encoder_inputs(
        source_alphabet=source_alphabet,
        target_alphabet=target_alphabet,
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        embedding_dim=embedding_dim,
        units=units,
        dropout=dropout,
        name=name,
    )

    # Encoder
    memory, state_h, state_c = kl.LSTM(
        units, return_sequences=True, return_state=True, name="encoder"
    )(x)

    # Decoder
    x = kl.Embedding(target_size, embedding_dim, name="target_embedding")(decoder_ids)
    hidden = kl.LSTM(units, return_sequences=True, name="decoder")(
        x, initial_state=[state_h, state_c]
    )

    # Global attention and output
    context = layers.ScaledDotProductAttention(name="attention")(
        hidden, memory, attention_mask=source_mask, return_attention_scores=True
    )[0]
    x = kl.Concatenate(name="attentional_inputs")([context, hidden])
    x = kl.Dense(units, activation="tanh", use_bias=False, name="attentional")(x)
    if dropout:
        x = kl.Dropout(dropout, name="attentional_dropout")(x)
    logits = kl.Dense(target_size, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
