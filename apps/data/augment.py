"""Stateless, batched image augmentation: the same seed gives the same batch, always.

Keras's preprocessing layers draw from a stateful seed generator, and inside a parallel
`tf.data` map the draws happen in whatever order the threads run: a seeded run could
not be replayed, and a resumed run could not continue exactly. Here every batch gets
its own seed (derived from the run's seed, the epoch and the batch index) and only
stateless random ops are used, so augmentation is a pure function of
`(images, seed)`.

The augmentations are those of our sources (Krizhevsky et al. 2012 and the course
texts): horizontal flip, random translation (±10 %), zoom (±10 %), rotation (±10°)
and crop with zero padding (1/8 of the side). Translation, zoom and rotation are
composed into one projective transform per image and applied in one op.
"""

from __future__ import annotations

import math

import tensorflow as tf

AUGMENTATIONS = ("flip", "translate", "zoom", "rotate", "crop")
TRANSLATE_FRACTION = 0.1
ZOOM_FRACTION = 0.1
ROTATE_DEGREES = 10.0


def augment_batch(images: tf.Tensor, names, seed: tf.Tensor) -> tf.Tensor:
    """Augments a float batch `(B, H, W, C)` with the named augmentations.

    Args:
        images: float images, already normalised.
        names: a subset of `AUGMENTATIONS`; applied in a fixed order (crop, flip,
            then translate/zoom/rotate as one transform).
        seed: an int64 tensor of shape (2,), e.g. `[run/epoch seed, batch index]`.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5)
    if "crop" in names:
        images = pad_and_crop(images, seeds[0])
    if "flip" in names:
        images = random_flip(images, seeds[1])
    if {"translate", "zoom", "rotate"} & set(names):
        images = random_affine(images, names, seeds[2:])
    return images


def random_flip(images, seed):
    """Mirrors each image left-right with probability 1/2."""
    flip = tf.random.stateless_uniform(tf.shape(images)[:1], seed) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def pad_and_crop(images, seed):
    """Zero-pads each side by 1/8 of the image, then crops back at a random offset.

    Each image gets its own offset; two batched gathers copy the windows exactly.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    pad = tf.maximum(tf.minimum(height, width) // 8, 1)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform(
        (batch, 2), seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32
    )
    rows = offsets[:, :1] + tf.range(height)[None]
    columns = offsets[:, 1:] + tf.range(width)[None]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, columns, axis=2, batch_dims=1)


def random_affine(images, names, seeds):
    """Random translation, zoom and rotation about the centre, as one transform."""
    shape = tf.shape(images)
    batch = shape[0]
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def uniform(seed, limit):
        return tf.random.stateless_uniform((batch,), seed, -limit, limit)

    zeros = tf.zeros((batch,))
    angle = (
        uniform(seeds[0], math.radians(ROTATE_DEGREES)) if "rotate" in names else zeros
    )
    scale = 1.0 + (uniform(seeds[1], ZOOM_FRACTION) if "zoom" in names else zeros)
    shift_x = zeros
    shift_y = zeros
    if "translate" in names:
        pair = tf.random.experimental.stateless_split(seeds[2], num=2)
        shift_x = uniform(pair[0], TRANSLATE_FRACTION) * width
        shift_y = uniform(pair[1], TRANSLATE_FRACTION) * height
    # Output pixel p maps to input pixel A (p - c) + c - shift, A = scale * R(angle).
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    transforms = tf.stack(
        [
            cos,
            -sin,
            centre_x - cos * centre_x + sin * centre_y - shift_x,
            sin,
            cos,
            centre_y - sin * centre_x - cos * centre_y - shift_y,
            zeros,
            zeros,
        ],
        axis=1,
    )
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=shape[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
