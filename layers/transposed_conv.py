"""Transposed 2-D convolution on ``tf.nn.conv2d_transpose`` (Zeiler et al., 2010)."""

import keras
import tensorflow as tf

_PADDINGS = ("valid", "same")


def _pair(value, name, minimum):
    """Return ``value`` as a tuple of two ints >= ``minimum`` or raise ValueError."""
    pair = (value, value) if isinstance(value, int) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = None
    if (
        pair is None
        or len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
        or min(pair) < minimum
    ):
        raise ValueError(
            f"{name} must be an int or a tuple of 2 ints, each >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return pair


def transposed_conv_output_length(
    input_length, kernel_size, stride, padding, output_padding=None
):
    """Output length of a transposed convolution, following Keras exactly.

    * ``padding="valid"``: ``(n - 1) * s + k + p``, with ``p`` defaulting to
      ``max(k, s) - k`` (so ``(n - 1) * s + max(k, s)``).
    * ``padding="same"``: ``n * s`` without ``output_padding``, otherwise
      ``(n - 1) * s + k % 2 + p``.

    ``input_length`` may be an int, a scalar tensor or ``None`` (unknown).
    """
    if input_length is None:
        return None
    if padding == "valid":
        if output_padding is None:
            output_padding = max(kernel_size, stride) - kernel_size
        return (input_length - 1) * stride + kernel_size + output_padding
    if output_padding is None:
        return input_length * stride
    return (input_length - 1) * stride + kernel_size % 2 + output_padding


def _explicit_padding(kernel_size, stride, padding, output_padding):
    """Padding (before, after) of the forward convolution this layer transposes.

    This is TensorFlow's "SAME" rule, ``total = max((n - 1) * s + k - out, 0)``
    with the smaller half before, which for Keras' output lengths does not depend
    on ``n``: it is a Python constant even when the spatial size is dynamic.
    Passing it explicitly (rather than ``padding="SAME"``) also covers the case
    that ``tf.nn.conv2d_transpose(padding="SAME")`` rejects: an even kernel with
    ``output_padding=0``.
    """
    if padding == "valid":
        return (0, 0)
    if output_padding is None:
        total = max(kernel_size - stride, 0)
    else:
        total = max(kernel_size - kernel_size % 2 - output_padding, 0)
    return (total // 2, total - total // 2)


@keras.saving.register_keras_serializable(package="layers")
class TransposedConv2D(keras.layers.Layer):
    """Transposed 2-D convolution ("deconvolution"), channels-last.

    The gradient of a strided convolution with respect to its input, used to
    upsample (Zeiler, Krishnan, Taylor & Fergus, "Deconvolutional Networks",
    CVPR 2010; the DCGAN generator, Radford et al., 2016)::

        y[b, i, j, f] = sum_{m, n, c : i = s_h*m + u - p_top, j = s_w*n + v - p_left}
                        x[b, m, n, c] * kernel[u, v, f, c]  (+ bias[f])

    Built on ``tf.nn.conv2d_transpose``. The kernel has the layout
    ``(kernel_h, kernel_w, filters, in_channels)``, the same as
    ``keras.layers.Conv2DTranspose``, so weights are interchangeable (kernel then
    bias). The output size follows Keras, ``output_padding`` included:

    * ``"valid"``: ``(n - 1) * s + k + output_padding``, where ``output_padding``
      defaults to ``max(k, s) - k``;
    * ``"same"``: ``n * s`` without ``output_padding``, otherwise
      ``(n - 1) * s + k % 2 + output_padding``.

    Batch and spatial sizes may be unknown until run time. Unlike Keras on the
    TensorFlow backend, an even kernel with ``padding="same"`` and
    ``output_padding=0`` works (Keras' call to ``conv2d_transpose`` fails there).

    Args:
        filters: number of output channels, a positive int.
        kernel_size: int or tuple of 2 positive ints.
        strides: int or tuple of 2 positive ints. Defaults to 1.
        padding: ``"valid"`` or ``"same"`` (case-insensitive). Defaults to
            ``"valid"``.
        output_padding: ``None``, or an int or tuple of 2 ints, each
            ``0 <= output_padding < strides``: extra rows/columns added to the
            bottom/right of the output. Defaults to ``None``.
        activation: activation applied to the output. Defaults to ``None``.
        use_bias: whether to add a bias. Defaults to ``True``.
        kernel_initializer, bias_initializer: initializers. Default to
            ``"glorot_uniform"`` and ``"zeros"``.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional
            regularizers.
        kernel_constraint, bias_constraint: optional constraints.
        **kwargs: standard layer keyword arguments (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, height, width, in_channels)``.

    Output shape:
        ``(batch, new_height, new_width, filters)`` by the formula above.

    Example:

    >>> x = keras.random.normal((2, 7, 7, 8))
    >>> TransposedConv2D(4, 5, strides=2, padding="same")(x).shape
    TensorShape([2, 14, 14, 4])
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        output_padding=None,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(
                f"filters must be a positive int. Received: filters={filters!r}"
            )
        kernel_size = _pair(kernel_size, "kernel_size", 1)
        strides = _pair(strides, "strides", 1)
        if not isinstance(padding, str) or padding.lower() not in _PADDINGS:
            raise ValueError(
                f"padding must be one of {_PADDINGS}. Received: padding={padding!r}"
            )
        if output_padding is not None:
            output_padding = _pair(output_padding, "output_padding", 0)
            if any(p >= s for p, s in zip(output_padding, strides, strict=True)):
                raise ValueError(
                    "output_padding must be smaller than strides in every "
                    f"dimension (0 <= output_padding < strides). Received: "
                    f"output_padding={output_padding!r}, strides={strides!r}"
                )
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding.lower()
        self.output_padding = output_padding
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.InputSpec(ndim=4)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(
                "The channel dimension of the input of TransposedConv2D must be "
                f"known. Received: input_shape={input_shape}"
            )
        self.input_spec = keras.InputSpec(ndim=4, axes={-1: in_channels})
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, self.filters, in_channels),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None

    def _output_lengths(self, heights_widths):
        output_padding = self.output_padding or (None, None)
        return [
            transposed_conv_output_length(n, k, s, self.padding, p)
            for n, k, s, p in zip(
                heights_widths,
                self.kernel_size,
                self.strides,
                output_padding,
                strict=True,
            )
        ]

    def call(self, inputs):
        dynamic_shape = tf.shape(inputs)
        batch = dynamic_shape[0]
        spatial = [
            dynamic_shape[axis] if inputs.shape[axis] is None else inputs.shape[axis]
            for axis in (1, 2)
        ]
        height, width = self._output_lengths(spatial)
        output_padding = self.output_padding or (None, None)
        paddings = [
            _explicit_padding(k, s, self.padding, p)
            for k, s, p in zip(
                self.kernel_size, self.strides, output_padding, strict=True
            )
        ]
        outputs = tf.nn.conv2d_transpose(
            inputs,
            tf.cast(self.kernel, inputs.dtype),
            output_shape=tf.stack([batch, height, width, self.filters]),
            strides=(1, *self.strides, 1),
            padding=self._padding_argument(paddings),
        )
        # conv2d_transpose loses the static shape when output_shape is a tensor.
        outputs = tf.ensure_shape(outputs, self.compute_output_shape(inputs.shape))
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _padding_argument(self, paddings):
        """``"VALID"`` or ``"SAME"`` where either means these explicit paddings,
        else the explicit list: the same convolution, but LiteRT's TRANSPOSE_CONV
        (and so the export to LiteRT) knows only the two named paddings. ``"SAME"``
        fits unless the output is a whole stride shorter than ``n * s`` (an even
        kernel with ``output_padding=0``), which TensorFlow's rule rejects."""
        if all(pair == (0, 0) for pair in paddings):
            return "VALID"
        output_padding = self.output_padding or (None, None)
        if self.padding == "same" and all(
            p is None or k % 2 + p >= 1
            for k, p in zip(self.kernel_size, output_padding, strict=True)
        ):
            return "SAME"
        return [[0, 0], list(paddings[0]), list(paddings[1]), [0, 0]]

    def compute_output_shape(self, input_shape):
        height, width = self._output_lengths(input_shape[1:3])
        return (input_shape[0], height, width, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }
