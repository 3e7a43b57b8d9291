"""DCGAN (Radford, Metz & Chintala, 2016), unconditional and class-conditional.

The architecture guidelines of the paper (section 3), as built here:

- generator: z -> dense projection -> reshape to a small ``h0 x w0`` map ->
  fractionally-strided convolutions (our `layers.TransposedConv2D`, 5x5, stride 2)
  doubling the size and halving the filters -> tanh output; BatchNorm + ReLU after
  every layer but the output;
- discriminator: strided 5x5 convolutions (no pooling) doubling the filters,
  LeakyReLU(0.2), BatchNorm on every layer but the first, then one logit from the
  flattened last map (no hidden fully-connected layer);
- weights drawn from N(0, 0.02).

Sizes: an image side is ``h0 * 2**n`` with n >= 1 stages and ``h0 >= 4``, n as
large as possible (28 -> 7 * 2**2, 32 -> 4 * 2**3, 64 -> 4 * 2**4). With the default
``width=64``:

=============  ===============================================  =================
image          generator maps                                   discriminator maps
=============  ===============================================  =================
28x28x1        7x7x128, 14x14x64, 28x28x1                       14x14x64, 7x7x128
32x32x3        4x4x256, 8x8x128, 16x16x64, 32x32x3              16, 8, 4 (64..256)
64x64x3        4x4x512, 8x8x256, 16x16x128, 32x32x64, 64x64x3   32..4 (64..512)
=============  ===============================================  =================

(the paper's 64x64 model is ``width=128``: 4x4x1024 at the start.)

`attention=True` inserts a SAGAN self-attention block (`SelfAttention2D`, Zhang et
al. 2019) on the generator's last hidden map and on the discriminator's first map.
The conditional variant (`cdcgan`; Mirza & Osindero, "Conditional Generative
Adversarial Nets", 2014) concatenates a label embedding to z and, as an extra image
channel, to the discriminator's input.

BatchNorm statistics are synchronised over replicas (``sync_batchnorm``), so that N
replicas compute what one device computes on the global batch.
"""

from __future__ import annotations

import functools

import keras
from keras import layers as kl

import layers
from apps.generative.blocks import SelfAttention2D, fixed_image_shape, with_label
from apps.generative.gan import GAN
from apps.registry import register_model
from apps.vision import blocks

PAPER = (
    'Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep '
    'Convolutional Generative Adversarial Networks", ICLR 2016'
)
CONDITIONAL_PAPER = (
    f'{PAPER}; Mirza & Osindero, "Conditional Generative Adversarial Nets", '
    "arXiv:1411.1784, 2014"
)
DEFAULT_INPUT_SHAPE = (28, 28, 1)
MIN_START_SIZE = 4
MIN_INPUT_SIZE = 2 * MIN_START_SIZE
HYPERPARAMETERS = ("latent_dim", "width", "attention", "kernel_size")


def upsampling_plan(height, width):
    """``(h0, w0, stages)``: the start map and the number of 2x upsamplings.

    Raises:
        ValueError: when no stage fits (a side below 8 or not even).
    """
    stages = 0
    while (
        height % 2 ** (stages + 1) == 0
        and width % 2 ** (stages + 1) == 0
        and height // 2 ** (stages + 1) >= MIN_START_SIZE
        and width // 2 ** (stages + 1) >= MIN_START_SIZE
    ):
        stages += 1
    if stages < 1:
        raise ValueError(
            "DCGAN builds images whose sides are h0 * 2**n with n >= 1 stride-2 "
            f"stages and a start map of at least {MIN_START_SIZE} (28, 32, 64, ...: "
            f"even sides >= {MIN_INPUT_SIZE}). "
            f"Received: input_shape=({height}, {width}, ...)"
        )
    return height // 2**stages, width // 2**stages, stages


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def _check(input_shape, latent_dim, classes, width, kernel_size, attention, name):
    input_shape = fixed_image_shape(input_shape, DEFAULT_INPUT_SHAPE)
    if latent_dim is not None:
        blocks.check_positive_int("latent_dim", latent_dim)
    if classes is not None:
        blocks.check_positive_int("classes", classes)
    blocks.check_positive_int("width", width)
    blocks.check_positive_int("kernel_size", kernel_size)
    blocks.check_bool("attention", attention)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string. Received: name={name!r}")
    return input_shape, upsampling_plan(*input_shape[:2])


def _batchnorm(x, name, sync):
    return kl.BatchNormalization(momentum=0.9, synchronized=sync, name=name)(x)


def dcgan_generator(
    input_shape=None,
    latent_dim=100,
    classes=None,
    width=64,
    kernel_size=5,
    attention=False,
    label_dim=50,
    sync_batchnorm=True,
    name="dcgan_generator",
):
    """The DCGAN generator: z (and a label) to an image in [-1, 1].

    Args:
        input_shape: the image ``(height, width, channels)`` to make; default
            ``(28, 28, 1)``. Sides must be ``h0 * 2**n`` (see the module doc).
        latent_dim: size of z.
        classes: ``None`` (unconditional) or the number of classes: the model
            then takes ``[z, label]`` and concatenates a label embedding to z.
        width: filters of the last hidden map; each earlier one doubles it.
        kernel_size: of the transposed convolutions (the paper: 5).
        attention: a SAGAN self-attention block on the last hidden map.
        label_dim: size of the label embedding (conditional only).
        sync_batchnorm: BatchNorm statistics over all replicas.
        name: model name.

    Returns:
        An uncompiled `keras.Model`.
    """
    input_shape, (h0, w0, stages) = _check(
        input_shape, latent_dim, classes, width, kernel_size, attention, name
    )
    blocks.check_positive_int("label_dim", label_dim)
    blocks.check_bool("sync_batchnorm", sync_batchnorm)

    z = keras.Input((latent_dim,), name="z")
    inputs = [z]
    x = with_label(z, inputs, classes, label_dim, "z_and_label")

    # Project and reshape
    filters = width * 2 ** (stages - 1)
    x = kl.Dense(
        h0 * w0 * filters, use_bias=False, kernel_initializer=_init(), name="project"
    )(x)
    x = kl.Reshape((h0, w0, filters), name="reshape")(x)
    x = _batchnorm(x, "project_bn", sync_batchnorm)
    x = kl.ReLU(name="project_relu")(x)

    # Fractionally-strided convolutions
    for stage in range(1, stages):
        filters //= 2
        x = layers.TransposedConv2D(
            filters,
            kernel_size,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=_init(),
            name=f"deconv{stage}",
        )(x)
        x = _batchnorm(x, f"deconv{stage}_bn", sync_batchnorm)
        x = kl.ReLU(name=f"deconv{stage}_relu")(x)
    if attention:
        x = SelfAttention2D(name="attention")(x)

    # Output
    outputs = layers.TransposedConv2D(
        input_shape[-1],
        kernel_size,
        strides=2,
        padding="same",
        activation="tanh",
        kernel_initializer=_init(),
        name=f"deconv{stages}",
    )(x)
    return keras.Model(inputs if len(inputs) > 1 else z, outputs, name=name)


def dcgan_discriminator(
    input_shape=None,
    classes=None,
    width=64,
    kernel_size=5,
    attention=False,
    sync_batchnorm=True,
    name="dcgan_discriminator",
):
    """The DCGAN discriminator: an image (and a label) to one logit.

    Args:
        input_shape: ``(height, width, channels)``; default ``(28, 28, 1)``.
        classes: ``None`` or the number of classes: the model then takes
            ``[image, label]`` and adds a learned label map as an extra channel.
        width: filters of the first convolution; each later one doubles it.
        kernel_size: of the strided convolutions (the paper: 5).
        attention: a SAGAN self-attention block after the first convolution.
        sync_batchnorm: BatchNorm statistics over all replicas.
        name: model name.

    Returns:
        An uncompiled `keras.Model` giving logits ``(B, 1)``.
    """
    input_shape, (_, _, stages) = _check(
        input_shape, None, classes, width, kernel_size, attention, name
    )
    blocks.check_bool("sync_batchnorm", sync_batchnorm)
    height, width_px, _ = input_shape

    image = keras.Input(input_shape, name="image")
    inputs, x = [image], image
    if classes is not None:
        label = keras.Input((), dtype="int32", name="label")
        label_map = kl.Embedding(classes, height * width_px, name="label_embedding")(
            label
        )
        label_map = kl.Reshape((height, width_px, 1), name="label_map")(label_map)
        x = kl.Concatenate(name="image_and_label")([image, label_map])
        inputs.append(label)

    # Strided convolutions
    filters = width
    for stage in range(1, stages + 1):
        x = kl.Conv2D(
            filters,
            kernel_size,
            strides=2,
            padding="same",
            use_bias=stage == 1,
            kernel_initializer=_init(),
            name=f"conv{stage}",
        )(x)
        if stage > 1:  # not on the first layer (Radford et al., section 3)
            x = _batchnorm(x, f"conv{stage}_bn", sync_batchnorm)
        x = kl.LeakyReLU(negative_slope=0.2, name=f"conv{stage}_lrelu")(x)
        if attention and stage == 1:
            x = SelfAttention2D(name="attention")(x)
        filters *= 2

    # One logit
    x = kl.Flatten(name="flatten")(x)
    outputs = kl.Dense(1, kernel_initializer=_init(), name="logit")(x)
    return keras.Model(inputs if len(inputs) > 1 else image, outputs, name=name)


def _dcgan(
    *,
    input_shape=None,
    latent_dim=100,
    classes=None,
    width=64,
    kernel_size=5,
    attention=False,
    sync_batchnorm=True,
    seed=None,
    name="dcgan",
):
    _check(input_shape, latent_dim, classes, width, kernel_size, attention, name)
    common = {
        "input_shape": input_shape,
        "classes": classes,
        "width": width,
        "kernel_size": kernel_size,
        "attention": attention,
        "sync_batchnorm": sync_batchnorm,
    }
    generator = dcgan_generator(latent_dim=latent_dim, name="generator", **common)
    discriminator = dcgan_discriminator(name="discriminator", **common)
    return GAN(
        generator,
        discriminator,
        latent_dim=latent_dim,
        num_classes=classes,
        seed=seed,
        name=name,
    )


# Both variants register with the family's metadata.
_register = functools.partial(
    register_model,
    family="dcgan",
    task="generation",
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=MIN_INPUT_SIZE,
    hyperparameters=HYPERPARAMETERS,
)


@_register(paper=PAPER)
@blocks.variant(_dcgan, "classes")
def dcgan(name="dcgan", **options):
    """DCGAN: a `GAN` of the DCGAN generator and discriminator (uncompiled).

    Args: see `dcgan_generator`; ``seed`` seeds the GAN's training noise.
    """
    return _dcgan(classes=None, name=name, **options)


@_register(paper=CONDITIONAL_PAPER)
@blocks.variant(_dcgan)
def cdcgan(classes=10, name="cdcgan", **options):
    """Class-conditional DCGAN: label embeddings into G's z and D's input.

    Args: see `dcgan_generator`; ``classes`` is required (default 10).
    """
    if classes is None:
        raise ValueError("cdcgan needs classes (an int). Received: classes=None")
    return _dcgan(classes=classes, name=name, **options)
