"""Attention layers: scaled dot-product, additive (Bahdanau) and multi-head.

All three share the call convention of ``keras.layers.MultiHeadAttention``::

    layer(query, value, key=None, attention_mask=None,
          return_attention_scores=False, training=None, use_causal_mask=False)

and its masking rules: a boolean ``attention_mask`` of shape ``(B, T, S)`` (or
broadcastable to it) where True means "may attend"; Keras masks carried by the
inputs (``Embedding(mask_zero=True)``) are picked up as ``query_mask`` ``(B, T)``,
``value_mask`` ``(B, S)`` and ``key_mask`` ``(B, S)``; ``use_causal_mask=True``
lets query ``t`` see keys ``s <= t`` only. All of them are combined with a
logical AND. Masked keys get exactly zero weight, and a query that may attend to
nothing gets all-zero weights (so a zero context vector), never NaN. The causal
mask is always built explicitly, so it holds with dropout and when the attention
scores are returned.

The softmax is computed in float32 when the compute dtype is float16 or
bfloat16 (mixed precision), and cast back.
"""

import inspect
import math
import string

import keras
from keras import layers as kl
from keras import ops

_REDUCED_PRECISION = ("float16", "bfloat16")


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")


def _check_rate(dropout):
    if isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"dropout must be a float in [0, 1). Received: dropout={dropout!r}"
        )


def causal_mask(query_length, key_length):
    """Boolean ``(1, T, S)`` mask, True where ``key index <= query index``.

    Aligned at the start of both sequences, as in ``keras.layers.MultiHeadAttention``.
    The lengths may be ints or scalar tensors.
    """
    rows = ops.expand_dims(ops.arange(query_length, dtype="int32"), -1)
    cols = ops.expand_dims(ops.arange(key_length, dtype="int32"), 0)
    return ops.expand_dims(ops.greater_equal(rows, cols), 0)


def compute_attention_mask(
    query,
    value,
    query_mask=None,
    value_mask=None,
    key_mask=None,
    attention_mask=None,
    use_causal_mask=False,
):
    """Merge every source of masking into one boolean mask, or ``None``.

    Mirrors ``keras.layers.MultiHeadAttention._compute_attention_mask``: the query
    mask becomes ``(B, T, 1)``, the value and key masks ``(B, 1, S)``, the causal
    mask ``(1, T, S)``; the result broadcasts to ``(B, T, S)``.
    """
    masks = []
    if query_mask is not None:
        masks.append(ops.expand_dims(ops.cast(query_mask, "bool"), -1))
    if value_mask is not None:
        masks.append(ops.expand_dims(ops.cast(value_mask, "bool"), -2))
    if key_mask is not None:
        masks.append(ops.expand_dims(ops.cast(key_mask, "bool"), -2))
    if use_causal_mask:
        masks.append(causal_mask(ops.shape(query)[-2], ops.shape(value)[-2]))
    if attention_mask is not None:
        masks.append(ops.cast(attention_mask, "bool"))
    if not masks:
        return None
    merged = masks[0]
    for mask in masks[1:]:
        merged = ops.logical_and(merged, mask)
    return merged


def masked_softmax(scores, mask=None):
    """Softmax over the last axis, giving exactly zero weight where ``mask`` is False.

    Rows with no True entry come out all zero rather than uniform or NaN. The
    mask must broadcast to ``scores``; extra leading axes are inserted before its
    last two (the head axis of multi-head scores).
    """
    dtype = keras.backend.standardize_dtype(scores.dtype)
    if dtype in _REDUCED_PRECISION:
        scores = ops.cast(scores, "float32")
    if mask is not None:
        while len(mask.shape) < len(scores.shape):
            mask = ops.expand_dims(mask, -3)
        # A finite large negative value, not -inf: a fully masked row then gives
        # a finite (uniform) softmax that the second `where` zeroes, without NaN.
        scores = ops.where(mask, scores, ops.cast(-1e9, scores.dtype))
    weights = ops.softmax(scores, axis=-1)
    if mask is not None:
        weights = ops.where(mask, weights, ops.zeros_like(weights))
    return ops.cast(weights, dtype)


class _AttentionBase(keras.layers.Layer):
    """Shared masking, dropout and config for the attention layers."""

    def __init__(self, dropout=0.0, seed=None, **kwargs):
        _check_rate(dropout)
        super().__init__(**kwargs)
        self.dropout = dropout
        self.seed = seed
        self.supports_masking = True
        self.dropout_layer = kl.Dropout(
            rate=dropout, seed=seed, dtype=self.dtype_policy, name="dropout"
        )

    def _check_ranks(self, query_shape, value_shape, key_shape):
        key_shape = value_shape if key_shape is None else key_shape
        for name, shape in (
            ("query", query_shape),
            ("value", value_shape),
            ("key", key_shape),
        ):
            if len(shape) != 3:
                raise ValueError(
                    f"{type(self).__name__} expects {name} of rank 3 "
                    f"(batch, length, features). Received: {name}.shape={shape}"
                )
        if value_shape[1] is not None and key_shape[1] is not None:
            if value_shape[1] != key_shape[1]:
                raise ValueError(
                    "key and value must have the same length. Received: "
                    f"value.shape={value_shape}, key.shape={key_shape}"
                )
        return key_shape

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        key = value if key is None else key
        mask = compute_attention_mask(
            query,
            value,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
        )
        outputs, weights = self._context(query, key, value, mask, training)
        if return_attention_scores:
            return outputs, weights
        return outputs

    def _context(self, query, key, value, mask, training):
        """The attention's output and its weights; subclasses with projections
        override it."""
        dropped, weights = self._attend(query, key, value, mask, training)
        return ops.matmul(dropped, value), weights

    def _attend(self, query, key, value, mask, training):
        """``dropout(masked_softmax(scores)) @ value``; ``_scores`` gives the scores."""
        weights = masked_softmax(self._scores(query, key), mask)
        dropped = self.dropout_layer(weights, training=training)
        return dropped, weights

    def _output_dims(self, query_shape, value_shape):
        """The output's last dimensions (after the query's batch and length)."""
        return (value_shape[-1],)

    def _scores_shape(self, query_shape, value_shape):
        return (*query_shape[:-1], value_shape[-2])

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return (*query_shape[:-1], *self._output_dims(query_shape, value_shape))

    def compute_output_spec(self, query, value, *args, **kwargs):
        # Keras passes `call`'s arguments; the shapes depend on the query, the value
        # and whether the scores are returned.
        arguments = inspect.signature(self.call).bind(query, value, *args, **kwargs)
        return_attention_scores = arguments.arguments.get(
            "return_attention_scores", False
        )
        outputs = keras.KerasTensor(
            self.compute_output_shape(query.shape, value.shape),
            dtype=self.compute_dtype,
        )
        if not return_attention_scores:
            return outputs
        scores = keras.KerasTensor(
            self._scores_shape(query.shape, value.shape), dtype=self.compute_dtype
        )
        return outputs, scores

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout, "seed": self.seed}


@keras.saving.register_keras_serializable(package="layers")
class ScaledDotProductAttention(_AttentionBase):
    """Scaled dot-product attention without projections.

    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, eq. 1::

        Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

    with ``Q = query``, ``K = key`` (``value`` when ``key`` is ``None``),
    ``V = value`` and ``d_k`` the last dimension of ``key``. Masked positions get
    zero weight before dropout (see the module docstring for the masking rules);
    dropout is applied to the attention weights.

    Args:
        dropout: dropout rate on the attention weights, in ``[0, 1)``. Defaults
            to 0.
        seed: seed of the dropout. Defaults to ``None``.
        **kwargs: standard layer keyword arguments (``name``, ``dtype``, ...).

    Call arguments:
        query: ``(B, ..., T, d_k)``. value: ``(B, ..., S, d_v)``. key:
        ``(B, ..., S, d_k)``, defaults to ``value``. attention_mask: boolean,
        broadcastable to ``(B, T, S)``. return_attention_scores: also return the
        weights (before dropout). training: dropout switch. use_causal_mask:
        query ``t`` attends to keys ``s <= t`` only.

    Input shape:
        query ``(B, ..., T, d_k)``, value ``(B, ..., S, d_v)``, key
        ``(B, ..., S, d_k)``.

    Output shape:
        ``(B, ..., T, d_v)``, and with ``return_attention_scores=True`` also the
        weights ``(B, ..., T, S)``.

    Example:

    >>> q, v = keras.random.normal((2, 3, 8)), keras.random.normal((2, 5, 8))
    >>> ScaledDotProductAttention()(q, v).shape
    TensorShape([2, 3, 8])
    """

    def __init__(self, dropout=0.0, seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        if len(query_shape) < 3 or len(value_shape) < 3 or len(key_shape) < 3:
            raise ValueError(
                "ScaledDotProductAttention expects inputs of rank >= 3 "
                f"(batch, ..., length, features). Received: query_shape="
                f"{query_shape}, value_shape={value_shape}, key_shape={key_shape}"
            )
        if query_shape[-1] is not None and key_shape[-1] is not None:
            if query_shape[-1] != key_shape[-1]:
                raise ValueError(
                    "query and key must have the same last dimension. Received: "
                    f"query_shape={query_shape}, key_shape={key_shape}"
                )
        self.built = True

    def _scores(self, query, key):
        scale = 1.0 / math.sqrt(float(key.shape[-1]))
        query = ops.multiply(query, ops.cast(scale, query.dtype))
        return ops.matmul(query, ops.swapaxes(key, -1, -2))


@keras.saving.register_keras_serializable(package="layers")
class AdditiveAttention(_AttentionBase):
    """Additive (Bahdanau) attention with learned projections.

    Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning to
    Align and Translate", ICLR 2015, appendix A.1.2::

        e[t, s] = v^T tanh(W1 q_t + W2 k_s (+ b))
        alpha[t, :] = softmax(e[t, :]),    c_t = sum_s alpha[t, s] v_s

    ``W1`` is ``(d_q, units)``, ``W2`` is ``(d_k, units)``, ``v`` is ``(units,)``;
    the values are not projected (in the paper key = value = the encoder
    states). The paper has no bias inside the tanh; ``use_bias=True`` adds one.
    Unlike ``keras.layers.AdditiveAttention`` (which has no projections and
    needs ``d_q == d_k``) the query and key may have different sizes.

    Args:
        units: size of the hidden layer of the alignment model, a positive int.
        use_bias: add a bias ``b`` inside the tanh. Defaults to ``False``.
        dropout: dropout rate on the attention weights, in ``[0, 1)``. Defaults
            to 0.
        kernel_initializer: initializer of ``W1``, ``W2`` and ``v``. Defaults to
            ``"glorot_uniform"``.
        bias_initializer: initializer of ``b``. Defaults to ``"zeros"``.
        kernel_regularizer, bias_regularizer: optional regularizers.
        seed: seed of the dropout. Defaults to ``None``.
        **kwargs: standard layer keyword arguments (``name``, ``dtype``, ...).

    Input shape:
        query ``(B, T, d_q)``, value ``(B, S, d_v)``, key ``(B, S, d_k)``
        (defaults to value).

    Output shape:
        ``(B, T, d_v)``, and with ``return_attention_scores=True`` also the
        weights ``(B, T, S)`` (before dropout).

    Example:

    >>> q, v = keras.random.normal((2, 3, 6)), keras.random.normal((2, 5, 8))
    >>> AdditiveAttention(units=16)(q, v).shape
    TensorShape([2, 3, 8])
    """

    def __init__(
        self,
        units,
        use_bias=False,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        seed=None,
        **kwargs,
    ):
        _check_positive_int(units, "units")
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self.units = units
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = self._check_ranks(query_shape, value_shape, key_shape)
        self.query_kernel = self.add_weight(
            name="query_kernel",
            shape=(query_shape[-1], self.units),
            initializer=_clone(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )
        self.key_kernel = self.add_weight(
            name="key_kernel",
            shape=(key_shape[-1], self.units),
            initializer=_clone(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
            )
        else:
            self.bias = None
        self.score_vector = self.add_weight(
            name="score_vector",
            shape=(self.units,),
            initializer=_clone(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )

    def _scores(self, query, key):
        hidden = ops.expand_dims(ops.matmul(query, self.query_kernel), -2) + (
            ops.expand_dims(ops.matmul(key, self.key_kernel), -3)
        )
        if self.bias is not None:
            hidden = hidden + self.bias
        return ops.einsum("btsu,u->bts", ops.tanh(hidden), self.score_vector)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }


def _clone(initializer):
    """A fresh copy, so that unseeded random initializers draw new values per weight.

    ``keras.layers.MultiHeadAttention`` does the same for each projection.
    """
    return initializer.__class__.from_config(initializer.get_config())


@keras.saving.register_keras_serializable(package="layers")
class MultiHeadAttention(_AttentionBase):
    """Multi-head attention, weight-compatible with ``keras.layers.MultiHeadAttention``.

    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.2.2::

        head_i = softmax((Q W_i^Q + b_i^Q)(K W_i^K + b_i^K)^T / sqrt(key_dim))
                 (V W_i^V + b_i^V)
        MultiHead(Q, K, V) = sum_i head_i W_i^O + b^O

    The weights are, in this order and with these shapes (the same as the Keras
    layer's, so ``ours.set_weights(keras_mha.get_weights())`` gives the same
    outputs): query kernel ``(d_q, num_heads, key_dim)`` and bias
    ``(num_heads, key_dim)``; key kernel ``(d_k, num_heads, key_dim)`` and bias;
    value kernel ``(d_v, num_heads, value_dim)`` and bias
    ``(num_heads, value_dim)``; output kernel
    ``(num_heads, value_dim, *output_shape)`` and bias ``output_shape``. Without
    ``use_bias`` only the four kernels. Dropout acts on the attention weights.
    Differences from Keras: inputs must have rank 3 (no ``attention_axes``);
    the softmax runs in float32 under mixed precision; there is no flash
    attention, sliding window or gate.

    Args:
        num_heads: number of heads, a positive int.
        key_dim: size of each head for query and key, a positive int.
        value_dim: size of each head for value; defaults to ``key_dim``.
        dropout: dropout rate on the attention weights, in ``[0, 1)``.
        use_bias: whether the projections have biases. Defaults to ``True``.
        output_shape: int or tuple of positive ints, the shape of each output
            vector; defaults to the last dimension of ``query``.
        kernel_initializer, bias_initializer: initializers. Default to
            ``"glorot_uniform"`` and ``"zeros"``.
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: optional, as in Keras.
        seed: seed of the dropout. Defaults to ``None``.
        **kwargs: standard layer keyword arguments (``name``, ``dtype``, ...).

    Input shape:
        query ``(B, T, d_q)``, value ``(B, S, d_v)``, key ``(B, S, d_k)``
        (defaults to value).

    Output shape:
        ``(B, T, *output_shape)``, and with ``return_attention_scores=True`` also
        the weights ``(B, num_heads, T, S)`` (before dropout). The output carries
        the query's Keras mask.

    Example:

    >>> x = keras.random.normal((2, 5, 16))
    >>> MultiHeadAttention(num_heads=4, key_dim=8)(x, x).shape
    TensorShape([2, 5, 16])
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        _check_positive_int(num_heads, "num_heads")
        _check_positive_int(key_dim, "key_dim")
        if value_dim is not None:
            _check_positive_int(value_dim, "value_dim")
        if output_shape is not None:
            dims = (output_shape,) if isinstance(output_shape, int) else output_shape
            try:
                dims = tuple(dims)
            except TypeError:
                dims = ()
            if not dims or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims
            ):
                raise ValueError(
                    "output_shape must be None, a positive int or a tuple of "
                    f"positive ints. Received: output_shape={output_shape!r}"
                )
            output_shape = dims
        super().__init__(
            dropout=dropout,
            seed=seed,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim if value_dim is not None else key_dim
        self.use_bias = use_bias
        # Kept private: model.summary() reads a public `output_shape` attribute as
        # the layer's full output shape (keras.layers.MultiHeadAttention does so).
        self._output_shape = output_shape
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    def _projection(self, name, kernel_shape, bias_shape):
        kernel = self.add_weight(
            name=f"{name}_kernel",
            shape=kernel_shape,
            initializer=_clone(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        bias = None
        if self.use_bias:
            bias = self.add_weight(
                name=f"{name}_bias",
                shape=bias_shape,
                initializer=_clone(self.bias_initializer),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        return kernel, bias

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = self._check_ranks(query_shape, value_shape, key_shape)
        heads = self.num_heads
        self.query_kernel, self.query_bias = self._projection(
            "query", (query_shape[-1], heads, self.key_dim), (heads, self.key_dim)
        )
        self.key_kernel, self.key_bias = self._projection(
            "key", (key_shape[-1], heads, self.key_dim), (heads, self.key_dim)
        )
        self.value_kernel, self.value_bias = self._projection(
            "value", (value_shape[-1], heads, self.value_dim), (heads, self.value_dim)
        )
        out_dims = self._output_shape or (query_shape[-1],)
        self.output_kernel, self.output_bias = self._projection(
            "output", (heads, self.value_dim, *out_dims), tuple(out_dims)
        )
        letters = string.ascii_lowercase[-len(out_dims) :]
        self._output_equation = f"btnh,nh{letters}->bt{letters}"

    def _output_dims(self, query_shape, value_shape):
        return self._output_shape or (query_shape[-1],)

    def _scores_shape(self, query_shape, value_shape):
        # keras.layers.MultiHeadAttention gives (B, N, T, T) here, wrong when S != T.
        return (query_shape[0], self.num_heads, query_shape[1], value_shape[1])

    @staticmethod
    def _project(inputs, kernel, bias):
        outputs = ops.einsum("btd,dnh->btnh", inputs, kernel)
        return outputs if bias is None else outputs + bias

    def _scores(self, query, key):
        # query (B, T, N, H), key (B, S, N, H) -> (B, N, T, S); like Keras, the
        # query is scaled before the product.
        scale = 1.0 / math.sqrt(float(self.key_dim))
        query = ops.multiply(query, ops.cast(scale, query.dtype))
        return ops.einsum("bsnh,btnh->bnts", key, query)

    def _context(self, query, key, value, mask, training):
        query = self._project(query, self.query_kernel, self.query_bias)
        key = self._project(key, self.key_kernel, self.key_bias)
        value = self._project(value, self.value_kernel, self.value_bias)
        dropped, weights = self._attend(query, key, value, mask, training)
        context = ops.einsum("bnts,bsnh->btnh", dropped, value)
        outputs = ops.einsum(self._output_equation, context, self.output_kernel)
        if self.output_bias is not None:
            outputs = outputs + self.output_bias
        return outputs, weights

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "use_bias": self.use_bias,
            "output_shape": self._output_shape,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }
