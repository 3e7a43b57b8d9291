"""Weight decay as the papers behind each optimiser meant it.

Keras's `weight_decay` argument is *decoupled* on every optimiser: after the step,
`w -= lr * wd * w`. That is AdamW (Loshchilov & Hutter 2019) and what Adam recipes
mean by weight decay, but not what the SGD papers used: AlexNet (Krizhevsky et al.
2012, 5e-4), VGG (5e-4) and ResNet (He et al. 2016, 1e-4) add the L2 penalty's
gradient `wd * w` to the loss gradient, so with momentum m it is carried by the
momentum buffer and, in steady state, acts 1 / (1 - m) = 10x as strongly as the
decoupled shrink at momentum 0.9 (`tests/apps/test_optimizers.py` measures it). So:

- `sgd`, `momentum`, `adagrad`, `rmsprop`: coupled L2, `g <- g + wd * w`, applied to
  the gradient after it is reduced over the replicas (in `update_step`, so the
  penalty is counted once however many replicas there are);
- `adam`: decoupled, i.e. AdamW.

Biases and normalisation scales and offsets (BatchNorm/LayerNorm `gamma`, `beta`)
are not decayed, as in the timm and torchvision recipes: they have no
scale-invariance for decay to regularise, and decaying BN's `gamma` only fights the
network. `decays(variable)` is the rule.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Variable names (the last part of a Keras variable's path) that are never decayed.
NOT_DECAYED = ("bias", "gamma", "beta")


def decays(variable) -> bool:
    """Whether weight decay applies to `variable` (not a bias, BN or LN parameter)."""
    # A Keras variable's name is "bias"; the TensorFlow variable an optimiser
    # updates under a strategy is named "dense/bias:0".
    return variable.name.split("/")[-1].split(":")[0] not in NOT_DECAYED


class _CoupledL2:
    """Adds the L2 penalty's gradient `l2 * w` to each decayed variable's gradient."""

    def __init__(self, *args, l2=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 <= l2 < 1:
            raise ValueError(f"l2 must be in [0, 1). Received: l2={l2!r}")
        self.l2 = l2

    def update_step(self, gradient, variable, learning_rate):
        if self.l2 and decays(variable):
            if isinstance(gradient, tf.IndexedSlices):  # embeddings: dense penalty
                gradient = tf.convert_to_tensor(gradient)
            gradient = gradient + self.l2 * keras.ops.cast(variable, gradient.dtype)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


@keras.saving.register_keras_serializable(package="apps")
class SGDL2(_CoupledL2, keras.optimizers.SGD):
    """`keras.optimizers.SGD` (with or without momentum) with coupled L2 decay."""


@keras.saving.register_keras_serializable(package="apps")
class AdagradL2(_CoupledL2, keras.optimizers.Adagrad):
    """`keras.optimizers.Adagrad` with coupled L2 decay."""


@keras.saving.register_keras_serializable(package="apps")
class RMSpropL2(_CoupledL2, keras.optimizers.RMSprop):
    """`keras.optimizers.RMSprop` with coupled L2 decay."""


def make(
    kind: str,
    learning_rate,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    **keras_options,
):
    """The optimiser `kind` (`sgd`, `momentum`, `adam`, `adagrad`, `rmsprop`) with
    `weight_decay` as its paper meant it (see the module docstring). `keras_options`
    go to the Keras constructor as they are (`name=`, Adam's `beta_1=`)."""
    if kind == "adam":
        if not weight_decay:
            return keras.optimizers.Adam(learning_rate=learning_rate, **keras_options)
        optimizer = keras.optimizers.AdamW(
            learning_rate=learning_rate, weight_decay=weight_decay, **keras_options
        )
        optimizer.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
        return optimizer
    common = {"learning_rate": learning_rate, "l2": weight_decay, **keras_options}
    if kind == "sgd":
        return SGDL2(**common)
    if kind == "momentum":
        return SGDL2(momentum=momentum, nesterov=True, **common)
    if kind == "adagrad":
        return AdagradL2(**common)
    if kind == "rmsprop":
        return RMSpropL2(**common)
    raise ValueError(
        "optimizer must be one of ('sgd', 'momentum', 'adam', 'adagrad', "
        f"'rmsprop'). Received: optimizer={kind!r}"
    )
