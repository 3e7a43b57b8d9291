"""The BatchNorm statistics pass ("precise BN") of the training core.

BatchNormalization layers normalise with the batch's statistics in training and with
moving averages of them at inference. The averages lag the weights: with Keras's
momentum 0.99 (keras.applications' value) they remember ~100 steps, and after a short
run they still describe the early network — ResNet-18 after 300 CPU steps classified
a test batch at 88.7 % in training mode and 7.4 % in inference mode. He et al.'s
released ResNets (and Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021: "precise
BN") therefore recompute the statistics after training with the final weights,
averaging over training batches. `recalibrate` does that:

- every BatchNormalization layer of the functional model gets, as its moving mean and
  variance, the average over `steps` training batches of the batch mean and (biased,
  as Keras normalises with) batch variance of its input, computed in one forward pass
  in training mode (each layer sees its predecessors normalised as in training);
- under MirroredStrategy / MultiWorkerMirroredStrategy each step's statistics are
  those of the *global* batch (sums all-reduced over the replicas and workers), so
  the result does not depend on how the batch was split;
- only the moving statistics change: trainable weights, Dropout's seed generators and
  every other variable are as they were, so a re-run after a kill repeats the pass
  from the same variables and ends with the same statistics.

>>> steps = recalibrate(model, training_batches, steps=100)  # doctest: +SKIP
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from apps.errors import require_positive_int
from apps.loop import shard_by_data


def batch_norm_layers(model: keras.Model) -> list:
    """The BatchNormalization layers of a functional `model` (its own graph, not
    those inside nested models, whose inputs the outer graph cannot reach)."""
    if not _is_functional(model):
        return []
    # A frozen layer normalises with its moving statistics in training too.
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]


def _is_functional(model):
    return isinstance(model, keras.Model) and hasattr(model, "_run_through_graph")


def recalibrate(model: keras.Model, batches, steps: int, strategy=None) -> int:
    """Sets every BN layer's moving statistics to averages over `steps` batches.

    Args:
        model: a built functional model (built in `strategy`'s scope).
        batches: a `tf.data.Dataset` of `(images, labels)` or images, batched with
            the global batch size (a training stream; it is read `steps` times).
        steps: how many batches to average over (>= 1).
        strategy: the strategy the model was built under (default: the current).

    Returns:
        The number of batches averaged (fewer than `steps` if `batches` ran out);
        0 when the model has no BatchNormalization layer (nothing is changed).
    """
    require_positive_int("steps", steps)
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    strategy = strategy or tf.distribute.get_strategy()
    probe = keras.Model(model.input, [layer.input for layer in layers])
    axes = [_reduction_axes(layer) for layer in layers]
    keep = _other_variables(model, layers)
    saved = [variable.numpy() for variable in keep]

    def replica_sums(batch):
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        features = probe(images, training=True)
        features = features if isinstance(features, (list, tuple)) else [features]
        sums = []
        for feature, axis in zip(features, axes, strict=True):
            # float64: E[x^2] - E[x]^2 loses digits in float32 (and bfloat16).
            feature = tf.cast(feature, tf.float64)
            count = tf.cast(
                tf.reduce_prod(tf.gather(tf.shape(feature), axis)), tf.float64
            )
            sums += [
                tf.reduce_sum(feature, axis),
                tf.reduce_sum(tf.square(feature), axis),
                count,
            ]
        return sums

    @tf.function
    def global_sums(batch):
        per_replica = strategy.run(replica_sums, args=(batch,))
        return [
            strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for value in per_replica
        ]

    means = [0.0] * len(layers)
    variances = [0.0] * len(layers)
    distributed = strategy.experimental_distribute_dataset(
        shard_by_data(batches.take(steps))
    )
    seen = 0
    for batch in distributed:
        sums = [value.numpy() for value in global_sums(batch)]
        for index in range(len(layers)):
            total, squares, count = sums[3 * index : 3 * index + 3]
            mean = total / count
            means[index] = means[index] + mean
            variances[index] = variances[index] + np.maximum(
                squares / count - mean**2, 0.0
            )
        seen += 1
    for variable, value in zip(keep, saved, strict=True):
        variable.assign(value)  # the probe's training-mode pass moved these
    if seen:
        for layer, mean, variance in zip(layers, means, variances, strict=True):
            layer.moving_mean.assign(np.asarray(mean / seen, np.float32))
            layer.moving_variance.assign(np.asarray(variance / seen, np.float32))
    return seen


def _reduction_axes(layer):
    """Every axis but the layer's feature axis (or axes), as Keras's BN reduces."""
    rank = len(layer.input.shape)
    feature_axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    feature_axes = {axis % rank for axis in feature_axes}
    return [axis for axis in range(rank) if axis not in feature_axes]


def _other_variables(model, layers):
    """Every variable but the trainable ones and the BN moving statistics (seed
    generators, which a training-mode pass through Dropout advances)."""
    statistics = {
        id(variable)
        for layer in layers
        for variable in (layer.moving_mean, layer.moving_variance)
    }
    trainable = {id(variable) for variable in model.trainable_variables}
    return [
        v for v in model.variables if id(v) not in statistics and id(v) not in trainable
    ]
