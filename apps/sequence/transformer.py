"""The Transformer encoder-decoder (Vaswani et al., NeurIPS 2017), character level.

As in the paper (section 3): token embeddings scaled by ``sqrt(d_model)`` plus the
sinusoidal positional encoding, dropout; ``num_layers`` encoder layers of
self-attention and a position-wise feed-forward network; ``num_layers`` decoder
layers of causal self-attention, attention over the encoder output and a
feed-forward network. Every sub-layer is ``LayerNorm(x + Dropout(Sublayer(x)))``
(post-norm, the paper's). Padding positions of the source get zero attention in
the encoder and in the decoder's cross-attention; decoder position ``t`` sees the
target up to ``t`` only (causal mask). Layers are named
``encoder_1_self_attention``, ``decoder_2_cross_attention``,
``decoder_2_feed_forward_norm``, ...

Embedding sharing (section 3.4): the paper shares one matrix between the two
embedding layers and the pre-softmax linear transformation, over a joint source and
target vocabulary. Here the two sides have different vocabularies (the dates' inputs
are letters, their outputs digits), so the source embedding stays its own;
``tie_embeddings=True`` shares the target embedding with the pre-softmax layer
(Press & Wolf 2017: logits ``x E^T``, no bias), saving ``V * d_model + V``
parameters. Label smoothing and the paper's warm-up schedule are training
settings: ``python -m apps.translate train --label-smoothing 0.1 --lr-schedule
rsqrt`` (see the README's translation section for what they measure).
"""

import math

import keras
from keras import layers as kl
from keras import ops

import layers
from apps.registry import register_model
from apps.sequence import _common, text

PAPER = 'Vaswani et al., "Attention Is All You Need", NeurIPS 2017'


@keras.saving.register_keras_serializable(package="apps.sequence")
class TiedEmbedding(kl.Embedding):
    """An embedding whose matrix is also the pre-softmax layer (Press & Wolf 2017).

    ``layer(ids)`` looks the ids up, as ``keras.layers.Embedding``;
    ``layer(x, reverse=True)`` returns the logits ``x E^T`` of ``x (..., output_dim)``
    over the ``input_dim`` tokens: each token is scored by the dot product of its
    embedding with ``x``. Called both ways in one functional model, the two ends
    share one weight, and the ``.keras`` file keeps it shared.

    Args:
        input_dim: vocabulary size.
        output_dim: embedding width.
        **kwargs: as ``keras.layers.Embedding``.

    Input shape:
        ``(...)`` ids, or ``(..., output_dim)`` with ``reverse=True``.

    Output shape:
        ``(..., output_dim)``, or ``(..., input_dim)`` with ``reverse=True``.

    >>> embedding = TiedEmbedding(12, 16)
    >>> vectors = embedding(ops.ones((2, 5), "int32"))  # (2, 5, 16)
    >>> embedding(vectors, reverse=True).shape
    (2, 5, 12)
    """

    def call(self, inputs, reverse=False):
        if not reverse:
            return super().call(inputs)
        kernel = ops.cast(self.embeddings, self.compute_dtype)
        return ops.matmul(ops.cast(inputs, self.compute_dtype), ops.transpose(kernel))

    def compute_output_spec(self, inputs, reverse=False):
        shape = list(inputs.shape)
        if reverse:
            shape[-1] = self.input_dim
        else:
            shape.append(self.output_dim)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)


def _add_and_norm(x, sublayer_output, dropout, name):
    """``LayerNorm(x + Dropout(sublayer_output))``, the paper's residual connection."""
    if dropout:
        sublayer_output = kl.Dropout(dropout, name=f"{name}_dropout")(sublayer_output)
    x = kl.Add(name=f"{name}_residual")([x, sublayer_output])
    return kl.LayerNormalization(epsilon=1e-6, name=f"{name}_norm")(x)


def feed_forward(x, d_model, feed_forward_dim, dropout, name):
    """``max(0, x W1 + b1) W2 + b2`` at every position, then add & norm."""
    y = kl.Dense(feed_forward_dim, activation="relu", name=f"{name}_1")(x)
    y = kl.Dense(d_model, name=f"{name}_2")(y)
    return _add_and_norm(x, y, dropout, name)


def encoder_layer(x, source_mask, d_model, num_heads, feed_forward_dim, dropout, name):
    """Self-attention over the source (padding masked), then the feed-forward net."""
    attended = layers.MultiHeadAttention(
        num_heads, d_model // num_heads, name=f"{name}_self_attention"
    )(x, x, attention_mask=source_mask)
    x = _add_and_norm(x, attended, dropout, f"{name}_self_attention")
    return feed_forward(x, d_model, feed_forward_dim, dropout, f"{name}_feed_forward")


def decoder_layer(
    x, memory, source_mask, d_model, num_heads, feed_forward_dim, dropout, name
):
    """Causal self-attention, attention over the encoder output, feed-forward net."""
    attended = layers.MultiHeadAttention(
        num_heads, d_model // num_heads, name=f"{name}_self_attention"
    )(x, x, use_causal_mask=True)
    x = _add_and_norm(x, attended, dropout, f"{name}_self_attention")
    attended = layers.MultiHeadAttention(
        num_heads, d_model // num_heads, name=f"{name}_cross_attention"
    )(x, memory, attention_mask=source_mask, return_attention_scores=True)[0]
    x = _add_and_norm(x, attended, dropout, f"{name}_cross_attention")
    return feed_forward(x, d_model, feed_forward_dim, dropout, f"{name}_feed_forward")


def _embed(ids, embedding, d_model, max_length, dropout, name):
    """Embedding * sqrt(d_model) + sinusoidal positional encoding, then dropout."""
    x = embedding(ids)
    x = kl.Rescaling(math.sqrt(d_model), name=f"{name}_embedding_scale")(x)
    x = layers.PositionalEncoding(max_length, name=f"{name}_positional_encoding")(x)
    if dropout:
        x = kl.Dropout(dropout, name=f"{name}_embedding_dropout")(x)
    return x


@register_model(
    family="transformer",
    paper=PAPER,
    task="translation",
    hyperparameters=(
        "num_layers",
        "d_model",
        "num_heads",
        "feed_forward_dim",
        "dropout",
    ),
)
def transformer(
    source_alphabet=None,
    target_alphabet=None,
    max_source_length=None,
    max_target_length=None,
    num_layers=2,
    d_model=64,
    num_heads=4,
    feed_forward_dim=128,
    dropout=0.1,
    tie_embeddings=False,
    name="transformer",
):
    """The Transformer encoder-decoder of Vaswani et al. (2017).

    The paper's base model is ``num_layers=6, d_model=512, num_heads=8,
    feed_forward_dim=2048, dropout=0.1``; the defaults here are small enough for
    dates on a CPU.

    Args:
        source_alphabet: the input characters (a string); defaults to the date
            task's (``apps.data.dates.SOURCE_ALPHABET``).
        target_alphabet: the output characters; defaults to ``"-0123456789"``.
        max_source_length: longest input, in characters (default 40).
        max_target_length: longest output, in characters (default 10).
        num_layers: ``N``, encoder and decoder layers each.
        d_model: width of every layer's output; a multiple of ``num_heads``.
        num_heads: ``h``, attention heads (each of size ``d_model / h``).
        feed_forward_dim: ``d_ff``, inner width of the feed-forward networks.
        dropout: ``P_drop``, on every sub-layer output and on the embeddings.
        tie_embeddings: share the target embedding with the pre-softmax layer
            (:class:`TiedEmbedding`; the paper's sharing, section 3.4); else the
            logits come from their own ``Dense`` layer, ``logits``.
        name: model name.

    Returns:
        An uncompiled ``keras.Model`` from ``{"source", "target"}`` strings to logits
        ``(B, max_target_length + 1, len(target_alphabet) + 4)``.
    """
    source_alphabet, target_alphabet, max_source_length, max_target_length = (
        _common.check_translation(
            source_alphabet=source_alphabet,
            target_alphabet=target_alphabet,
            max_source_length=max_source_length,
            max_target_length=max_target_length,
            name=name,
        )
    )
    _common.check_positive_int("num_layers", num_layers)
    _common.check_positive_int("d_model", d_model)
    _common.check_positive_int("num_heads", num_heads)
    _common.check_positive_int("feed_forward_dim", feed_forward_dim)
    _common.check_rate("dropout", dropout)
    _common.check_bool("tie_embeddings", tie_embeddings)
    if d_model % num_heads:
        raise ValueError(
            "d_model must be a multiple of num_heads. Received: "
            f"d_model={d_model}, num_heads={num_heads}"
        )
    target_size = text.vocabulary_size(target_alphabet) + 2  # START and END

    inputs, source_ids, decoder_ids = text.translation_inputs(
        source_alphabet, target_alphabet, max_source_length, max_target_length
    )
    source_mask = text.PaddingMask(name="source_mask")(source_ids)

    # Encoder
    x = _embed(
        source_ids,
        kl.Embedding(
            text.vocabulary_size(source_alphabet), d_model, name="source_embedding"
        ),
        d_model,
        max_source_length,
        dropout,
        "source",
    )
    for index in range(1, num_layers + 1):
        x = encoder_layer(
            x,
            source_mask,
            d_model,
            num_heads,
            feed_forward_dim,
            dropout,
            f"encoder_{index}",
        )
    memory = x

    # Decoder
    embedding_layer = TiedEmbedding if tie_embeddings else kl.Embedding
    target_embedding = embedding_layer(target_size, d_model, name="target_embedding")
    x = _embed(
        decoder_ids, target_embedding, d_model, max_target_length + 1, dropout, "target"
    )
    for index in range(1, num_layers + 1):
        x = decoder_layer(
            x,
            memory,
            source_mask,
            d_model,
            num_heads,
            feed_forward_dim,
            dropout,
            f"decoder_{index}",
        )

    # Head
    if tie_embeddings:
        logits = target_embedding(x, reverse=True)
    else:
        logits = kl.Dense(target_size, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
