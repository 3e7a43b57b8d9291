"""Local response normalisation across channels (Krizhevsky et al., 2012)."""

import keras
from keras import ops

_ALPHA_SCALINGS = ("paper", "caffe")


@keras.saving.register_keras_serializable(package="layers")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalisation over neighbouring channels (channels-last).

    The AlexNet formula (Krizhevsky, Sutskever & Hinton, "ImageNet Classification
    with Deep Convolutional Neural Networks", NeurIPS 2012, section 3.3)::

        b[..., i] = a[..., i] / (k + alpha' * S[..., i]) ** beta
        S[..., i] = sum_{j = i - n//2}^{i + n//2} a[..., j] ** 2

    where ``n = size``, the sum is clipped at the first and last channel, and
    ``alpha' = alpha`` with ``alpha_scaling="paper"`` (the default, as in the paper
    and in ``tf.nn.local_response_normalization``) or ``alpha' = alpha / size``
    with ``alpha_scaling="caffe"``. Caffe's ``LRN`` layer divides ``alpha`` by
    ``local_size``, so the paper's ``alpha=1e-4`` is written ``alpha=5e-4`` in
    Caffe's AlexNet prototxt with ``local_size=5`` (Caffe's default ``k`` is also 1,
    the paper's is 2). The two conventions give the same layer when
    ``alpha_caffe = alpha_paper * size``.

    Equivalent to ``tf.nn.local_response_normalization(a, depth_radius=(size - 1)
    // 2, bias=k, alpha=alpha, beta=beta)`` with the paper's scaling, but works for
    inputs of any rank >= 2, under XLA and in mixed precision (the sum of squares
    and the power are computed in float32 when the compute dtype is float16 or
    bfloat16, so that large activations do not overflow).

    Args:
        size: number of channels in the window, a positive odd integer (the window
            is centred on the channel, as in the paper and in Caffe). Defaults to 5.
        k: additive constant (the paper's ``k``, TF's ``bias``). Defaults to 2.0.
        alpha: scale of the sum of squares. Defaults to 1e-4.
        beta: exponent. Defaults to 0.75.
        alpha_scaling: ``"paper"`` (alpha used as given) or ``"caffe"`` (alpha
            divided by ``size``). Defaults to ``"paper"``.
        **kwargs: standard layer keyword arguments (``name``, ``dtype``, ...).

    Input shape:
        Any tensor of rank >= 2, channels last: ``(batch, ..., channels)``.

    Output shape:
        Same as the input.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> LocalResponseNormalization(size=5)(x).shape
    TensorShape([2, 8, 8, 16])
    """

    def __init__(
        self,
        size=5,
        k=2.0,
        alpha=1e-4,
        beta=0.75,
        alpha_scaling="paper",
        **kwargs,
    ):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"size must be a positive odd integer. Received: size={size!r}"
            )
        if size % 2 == 0:
            raise ValueError(
                "size must be a positive odd integer (the window is centred on "
                f"the channel). Received: size={size!r}"
            )
        if alpha_scaling not in _ALPHA_SCALINGS:
            raise ValueError(
                f"alpha_scaling must be one of {_ALPHA_SCALINGS}. "
                f"Received: alpha_scaling={alpha_scaling!r}"
            )
        if k < 0:
            raise ValueError(f"k must be >= 0. Received: k={k!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0. Received: alpha={alpha!r}")
        super().__init__(**kwargs)
        self.size = size
        self.k = float(k)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.alpha_scaling = alpha_scaling
        self.supports_masking = True

    @property
    def effective_alpha(self):
        """The ``alpha`` actually multiplying the sum of squares."""
        if self.alpha_scaling == "caffe":
            return self.alpha / self.size
        return self.alpha

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                "LocalResponseNormalization expects an input of rank >= 2 "
                f"(batch, ..., channels). Received: input_shape={input_shape}"
            )
        self.built = True

    def call(self, inputs):
        x = inputs
        if self.compute_dtype in ("float16", "bfloat16"):
            x = ops.cast(x, "float32")
        half = self.size // 2
        squares = ops.square(x)
        rank = len(x.shape)
        padded = ops.pad(squares, [[0, 0]] * (rank - 1) + [[half, half]])
        channels = ops.shape(x)[-1]
        # A sum of `size` shifted slices: exact, XLA-friendly and cheap for the
        # small windows LRN uses (5 in AlexNet).
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        scale = ops.power(self.k + self.effective_alpha * window_sum, -self.beta)
        return ops.cast(x * scale, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "k": self.k,
            "alpha": self.alpha,
            "beta": self.beta,
            "alpha_scaling": self.alpha_scaling,
        }
