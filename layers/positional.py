"""Positional encodings added to a sequence of embeddings (Vaswani et al., 2017)."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

_MODES = ("sinusoidal", "learned")


def sinusoidal_table(length, depth, max_wavelength=10000.0):
    """The ``(length, depth)`` sinusoidal table of Vaswani et al., as float32 NumPy.

    ``PE[pos, 2i] = sin(pos / max_wavelength**(2i / depth))`` and
    ``PE[pos, 2i + 1] = cos(pos / max_wavelength**(2i / depth))``; an odd
    ``depth`` drops the last cosine.
    """
    positions = np.arange(length, dtype=np.float64)[:, None]
    even = np.arange(0, depth, 2, dtype=np.float64)[None, :]
    angles = positions / np.power(max_wavelength, even / depth)
    table = np.zeros((length, depth), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : depth // 2])
    return table.astype(np.float32)


@keras.saving.register_keras_serializable(package="layers")
class PositionalEncoding(keras.layers.Layer):
    """Adds a position encoding to each step of a sequence.

    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.5::

        y[b, pos, :] = x[b, pos, :] + PE[pos, :]
        PE[pos, 2i]     = sin(pos / 10000^(2i / d_model))
        PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))

    With ``mode="learned"`` ``PE`` is a trainable ``(max_length, d_model)``
    table instead (as in BERT and ViT; the paper reports both work equally well).
    The sinusoidal table is a constant, not a weight. Keras masks pass through.

    Args:
        max_length: longest sequence the layer accepts, a positive int. A longer
            input raises ValueError when its length is known when the layer is
            built, and fails a run-time check otherwise.
        mode: ``"sinusoidal"`` or ``"learned"``. Defaults to ``"sinusoidal"``.
        max_wavelength: the paper's 10000 (sinusoidal mode). Defaults to 10000.
        initializer: initializer of the learned table. Defaults to
            ``"glorot_uniform"``.
        **kwargs: standard layer keyword arguments (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, length, d_model)`` with ``length <= max_length``.

    Output shape:
        Same as the input.

    Example:

    >>> x = keras.random.normal((2, 10, 16))
    >>> PositionalEncoding(max_length=50)(x).shape
    TensorShape([2, 10, 16])
    """

    def __init__(
        self,
        max_length,
        mode="sinusoidal",
        max_wavelength=10000.0,
        initializer="glorot_uniform",
        **kwargs,
    ):
        if (
            isinstance(max_length, bool)
            or not isinstance(max_length, int)
            or max_length < 1
        ):
            raise ValueError(
                "max_length must be a positive int. "
                f"Received: max_length={max_length!r}"
            )
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}. Received: mode={mode!r}")
        if max_wavelength <= 0:
            raise ValueError(
                "max_wavelength must be > 0. "
                f"Received: max_wavelength={max_wavelength!r}"
            )
        super().__init__(**kwargs)
        self.max_length = max_length
        self.mode = mode
        self.max_wavelength = float(max_wavelength)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def _check_length(self, length):
        if length is not None and length > self.max_length:
            raise ValueError(
                f"The input sequence length ({length}) exceeds max_length="
                f"{self.max_length} of layer {self.name!r}; build the layer with a "
                "larger max_length."
            )

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "PositionalEncoding expects an input of shape (batch, length, "
                f"d_model) with d_model known. Received: input_shape={input_shape}"
            )
        self._check_length(input_shape[1])
        depth = input_shape[-1]
        if self.mode == "learned":
            self.table = self.add_weight(
                name="table",
                shape=(self.max_length, depth),
                initializer=self.initializer,
            )
        else:
            self._table = sinusoidal_table(self.max_length, depth, self.max_wavelength)

    def call(self, inputs):
        length = inputs.shape[1]
        if length is None:
            length = ops.shape(inputs)[1]
            # Unknown until run time: a graph assertion, kept in SavedModels
            # (XLA compiles assertions away; the addition then fails instead).
            check = tf.debugging.assert_less_equal(
                length,
                self.max_length,
                message=f"input sequence is longer than max_length={self.max_length}",
            )
            with tf.control_dependencies([check]):
                length = tf.identity(length)
        else:
            self._check_length(length)
        if self.mode == "learned":
            table = self.table
        else:
            table = ops.convert_to_tensor(self._table)
        table = ops.cast(table[:length], inputs.dtype)
        return inputs + ops.expand_dims(table, 0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "mode": self.mode,
            "max_wavelength": self.max_wavelength,
            "initializer": keras.initializers.serialize(self.initializer),
        }
