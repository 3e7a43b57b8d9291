"""How much a model computes: multiply-accumulates (MACs) of one forward pass.

The convention of fvcore and timm's tables: the multiply-accumulates of the
convolutions, dense layers, recurrent cells and attention products, counted from
each layer's kernel and output shape; normalisation, pooling, activations and
additions are left out (they are a few percent). One MAC is a multiply and an add
(about two FLOPs).

>>> import apps
>>> model = apps.build("lenet5", classes=10)
>>> multiply_accumulates(model)
416520
"""

from __future__ import annotations

import math

import keras


def multiply_accumulates(model: keras.Model) -> int:
    """MACs of one forward pass of one example at the model's input size.

    Args:
        model: a built functional or sequential model (nested models are counted
            through); its input shape must be fully defined.

    Returns:
        The number of multiply-accumulates, as an int.
    """
    return sum(_layer_macs(layer) for layer in model.layers)


def _layer_macs(layer) -> int:
    if isinstance(layer, keras.Model):
        return multiply_accumulates(layer)
    if isinstance(layer, keras.layers.Bidirectional):
        shape = layer.input.shape
        return _recurrent_macs(layer.forward_layer, shape) + _recurrent_macs(
            layer.backward_layer, shape
        )
    if isinstance(layer, keras.layers.RNN):
        return _recurrent_macs(layer, layer.input.shape)
    if _is_attention(layer):
        return _attention_macs(layer)
    kernel = getattr(layer, "kernel", None)
    if kernel is None or not hasattr(layer, "output"):
        return 0
    if type(layer).__name__ == "TransposedConv2D":  # one kernel per input pixel
        return _positions(layer.input.shape) * math.prod(kernel.shape)
    return _positions(layer.output.shape) * math.prod(kernel.shape)


def _positions(shape) -> int:
    """Output positions a kernel is applied at: every axis but batch and channels."""
    return math.prod(shape[1:-1])


def _recurrent_macs(layer, input_shape) -> int:
    cell = layer.cell
    per_step = math.prod(cell.kernel.shape) + math.prod(cell.recurrent_kernel.shape)
    return input_shape[1] * per_step


def _is_attention(layer) -> bool:
    return hasattr(layer, "query_kernel") and hasattr(layer, "output_kernel")


def _attention_macs(layer) -> int:
    """Four projections plus the two products QK^T and AV, for self-attention or
    the layer's first (query) and second (value) inputs."""
    query_shape = layer.input[0].shape if isinstance(layer.input, list) else None
    value_shape = layer.input[1].shape if isinstance(layer.input, list) else None
    if query_shape is None:
        query_shape = value_shape = layer.input.shape
    query_tokens, value_tokens = query_shape[1], value_shape[1]
    projections = (
        query_tokens * math.prod(layer.query_kernel.shape)
        + value_tokens * math.prod(layer.key_kernel.shape)
        + value_tokens * math.prod(layer.value_kernel.shape)
        + query_tokens * math.prod(layer.output_kernel.shape)
    )
    products = (
        query_tokens
        * value_tokens
        * layer.num_heads
        * (layer.key_dim + getattr(layer, "value_dim", layer.key_dim))
    )
    return projections + products
