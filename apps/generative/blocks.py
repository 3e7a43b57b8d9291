"""Building blocks shared by the GAN builders: SAGAN self-attention, maxout and the
conditional GANs' label input."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers as kl

import layers
from apps.vision import blocks as vision_blocks


def fixed_image_shape(input_shape, default):
    """`input_shape` (`default` when None) checked as (height, width, channels), with
    a height and width: a GAN's generator makes images of one size."""
    input_shape = vision_blocks.check_image_shape(
        default if input_shape is None else input_shape
    )
    if input_shape[0] is None or input_shape[1] is None:
        raise ValueError(
            f"A GAN needs a fixed image size. Received: input_shape={input_shape!r}"
        )
    return input_shape


@keras.saving.register_keras_serializable(package="generative")
class SelfAttention2D(kl.Layer):
    """Self-attention over the positions of a feature map, with a gated residual.

    Zhang, Goodfellow, Metaxas & Odena, "Self-Attention Generative Adversarial
    Networks", ICML 2019, section 3::

        tokens = reshape(x, (B, H*W, C))
        o = MultiHead(tokens, tokens)      # 1 head: query/key C/8, value C/2, out C
        y = x + gamma * reshape(o, (B, H, W, C)),   gamma initialised to 0

    The query/key/value/output projections of our `layers.MultiHeadAttention` are
    SAGAN's 1x1 convolutions f, g, h and v. With gamma = 0 the block starts as the
    identity, and the network learns how much non-local evidence to mix in.
    (SAGAN also uses spectral normalisation; not reproduced here.)

    Args:
        key_ratio: query/key size is ``max(C // key_ratio, 1)``. Defaults to 8.
        value_ratio: value size is ``max(C // value_ratio, 1)``. Defaults to 2.
        **kwargs: standard layer keyword arguments.

    Input shape:
        ``(B, H, W, C)``.

    Output shape:
        the same.

    >>> SelfAttention2D()(keras.random.normal((2, 8, 8, 16))).shape
    TensorShape([2, 8, 8, 16])
    """

    def __init__(self, key_ratio=8, value_ratio=2, **kwargs):
        for name, value in (("key_ratio", key_ratio), ("value_ratio", value_ratio)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{name} must be a positive int. Received: {name}={value!r}"
                )
        super().__init__(**kwargs)
        self.key_ratio = key_ratio
        self.value_ratio = value_ratio
        self.input_spec = keras.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "SelfAttention2D needs a known channel dimension. "
                f"Received: input_shape={input_shape}"
            )
        self.attention = layers.MultiHeadAttention(
            num_heads=1,
            key_dim=max(channels // self.key_ratio, 1),
            value_dim=max(channels // self.value_ratio, 1),
            output_shape=channels,
            use_bias=False,
            name="attention",
        )
        self.attention.build((None, None, channels), (None, None, channels))
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")

    def call(self, inputs):
        shape = tf.shape(inputs)
        tokens = tf.reshape(inputs, (shape[0], shape[1] * shape[2], inputs.shape[-1]))
        attended = tf.reshape(self.attention(tokens, tokens), shape)
        return inputs + tf.cast(self.gamma, inputs.dtype) * attended

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "key_ratio": self.key_ratio,
            "value_ratio": self.value_ratio,
        }


def maxout(x, units, pieces, name):
    """A maxout layer (Goodfellow et al., 2013): the max of `pieces` linear units.

    Built from standard layers (Dense, Reshape, Permute, GlobalMaxPooling1D) so that
    it saves and loads without custom code.
    """
    x = kl.Dense(units * pieces, name=f"{name}_linear")(x)
    x = kl.Reshape((units, pieces), name=f"{name}_pieces")(x)
    x = kl.Permute((2, 1), name=f"{name}_permute")(x)
    return kl.GlobalMaxPooling1D(name=name)(x)


def with_label(x, inputs: list, classes, label_dim: int, name: str):
    """Mirza & Osindero's conditioning of a flat tensor: with ``classes``, appends an
    int32 ``label`` input to ``inputs`` and returns ``x`` concatenated with the
    label's embedding (``label_dim`` wide; layer ``name``); else ``x`` unchanged."""
    if classes is None:
        return x
    label = keras.Input((), dtype="int32", name="label")
    embedded = kl.Embedding(classes, label_dim, name="label_embedding")(label)
    inputs.append(label)
    return kl.Concatenate(name=name)([x, embedded])
