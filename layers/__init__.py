"""Keras layers of the classic architectures, registered for serialisation.

Import as ``import layers``; inside this package ``keras.layers`` is spelt
``from keras import layers as kl`` to avoid the name clash.
"""

from layers.attention import (
    AdditiveAttention,
    MultiHeadAttention,
    ScaledDotProductAttention,
)
from layers.lrn import LocalResponseNormalization
from layers.positional import PositionalEncoding
from layers.transposed_conv import TransposedConv2D

__all__ = [
    "AdditiveAttention",
    "LocalResponseNormalization",
    "MultiHeadAttention",
    "PositionalEncoding",
    "ScaledDotProductAttention",
    "TransposedConv2D",
]
