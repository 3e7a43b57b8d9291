"""The fully-connected GAN of the original paper (Goodfellow et al., 2014).

The paper's MNIST networks (its code, `pylearn2` yaml): the generator a mixture of
rectifier and sigmoid units, the discriminator maxout units with dropout. Here:

- generator: z -> Dense(1200) ReLU -> Dense(1200) ReLU -> Dense(H*W*C) tanh ->
  reshape (tanh and [-1, 1] images instead of the paper's sigmoid and [0, 1]);
- discriminator: flatten -> dropout(0.2) -> maxout(240 units x 5 pieces) ->
  dropout(0.5) -> maxout(240 x 5) -> dropout(0.5) -> one logit. With
  ``maxout=False``, LeakyReLU(0.2) Dense layers of the same widths.

With ``classes`` the model is conditional (Mirza & Osindero, 2014): a label
embedding is concatenated to z and to the discriminator's flattened input.
"""

from __future__ import annotations

import math

import keras
from keras import layers as kl

from apps.generative.blocks import fixed_image_shape, maxout, with_label
from apps.generative.gan import GAN
from apps.registry import register_model
from apps.vision import blocks

PAPER = (
    "Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville & Bengio, "
    '"Generative Adversarial Nets", NeurIPS 2014'
)
DEFAULT_INPUT_SHAPE = (28, 28, 1)


def _check(input_shape, classes, units, name):
    input_shape = fixed_image_shape(input_shape, DEFAULT_INPUT_SHAPE)
    if classes is not None:
        blocks.check_positive_int("classes", classes)
    units = blocks.check_int_sequence("hidden_units", units)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string. Received: name={name!r}")
    return input_shape, units


def mlp_generator(
    input_shape=None,
    latent_dim=100,
    classes=None,
    hidden_units=(1200, 1200),
    label_dim=50,
    name="mlp_generator",
):
    """The MLP generator: z (and a label) to an image in [-1, 1].

    Args:
        input_shape: the image ``(height, width, channels)``; default 28x28x1.
        latent_dim: size of z.
        classes: ``None`` or the number of classes (conditional).
        hidden_units: widths of the ReLU layers (the paper: 1200, 1200).
        label_dim: size of the label embedding (conditional only).
        name: model name.
    """
    input_shape, hidden_units = _check(input_shape, classes, hidden_units, name)
    blocks.check_positive_int("latent_dim", latent_dim)
    blocks.check_positive_int("label_dim", label_dim)

    z = keras.Input((latent_dim,), name="z")
    inputs = [z]
    x = with_label(z, inputs, classes, label_dim, "z_and_label")

    # Hidden layers
    for index, units in enumerate(hidden_units, start=1):
        x = kl.Dense(units, activation="relu", name=f"fc{index}")(x)

    # Output
    x = kl.Dense(math.prod(input_shape), activation="tanh", name="pixels")(x)
    outputs = kl.Reshape(input_shape, name="image")(x)
    return keras.Model(inputs if len(inputs) > 1 else z, outputs, name=name)


def mlp_discriminator(
    input_shape=None,
    classes=None,
    hidden_units=(240, 240),
    maxout_pieces=5,
    use_maxout=True,
    input_dropout=0.2,
    dropout=0.5,
    label_dim=50,
    name="mlp_discriminator",
):
    """The MLP discriminator: an image (and a label) to one logit.

    Args:
        input_shape: ``(height, width, channels)``; default 28x28x1.
        classes: ``None`` or the number of classes (conditional).
        hidden_units: widths of the hidden layers (the paper: 240, 240).
        maxout_pieces: linear pieces per maxout unit (the paper: 5).
        use_maxout: maxout units; ``False`` for LeakyReLU(0.2) Dense layers.
        input_dropout, dropout: dropout rates on the input and hidden layers.
        label_dim: size of the label embedding (conditional only).
        name: model name.
    """
    input_shape, hidden_units = _check(input_shape, classes, hidden_units, name)
    blocks.check_positive_int("maxout_pieces", maxout_pieces)
    blocks.check_bool("use_maxout", use_maxout)
    blocks.check_rate("input_dropout", input_dropout)
    blocks.check_rate("dropout", dropout)
    blocks.check_positive_int("label_dim", label_dim)

    image = keras.Input(input_shape, name="image")
    inputs = [image]
    x = kl.Flatten(name="flatten")(image)
    x = with_label(x, inputs, classes, label_dim, "image_and_label")
    x = kl.Dropout(input_dropout, name="input_dropout")(x)

    # Hidden layers
    for index, units in enumerate(hidden_units, start=1):
        if use_maxout:
            x = maxout(x, units, maxout_pieces, name=f"maxout{index}")
        else:
            x = kl.Dense(units, name=f"fc{index}")(x)
            x = kl.LeakyReLU(negative_slope=0.2, name=f"fc{index}_lrelu")(x)
        x = kl.Dropout(dropout, name=f"dropout{index}")(x)

    outputs = kl.Dense(1, name="logit")(x)
    return keras.Model(inputs if len(inputs) > 1 else image, outputs, name=name)


@register_model(
    family="gan",
    paper=PAPER,
    task="generation",
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=1,
    hyperparameters=("latent_dim", "use_maxout", "dropout"),
)
def mlp_gan(
    input_shape=None,
    latent_dim=100,
    classes=None,
    generator_units=(1200, 1200),
    discriminator_units=(240, 240),
    use_maxout=True,
    dropout=0.5,
    seed=None,
    name="mlp_gan",
):
    """The GAN of Goodfellow et al. (2014): MLP generator, maxout discriminator.

    Args:
        input_shape: the image shape; default 28x28x1.
        latent_dim: size of z (the paper: 100).
        classes: ``None``, or the number of classes for a conditional GAN.
        generator_units, discriminator_units: hidden widths.
        use_maxout: maxout discriminator (the paper) or LeakyReLU.
        dropout: the discriminator's hidden dropout rate.
        seed: seeds the GAN's training noise.
        name: model name.
    """
    _check(input_shape, classes, generator_units, name)
    generator = mlp_generator(
        input_shape,
        latent_dim=latent_dim,
        classes=classes,
        hidden_units=generator_units,
        name="generator",
    )
    discriminator = mlp_discriminator(
        input_shape,
        classes=classes,
        hidden_units=discriminator_units,
        use_maxout=use_maxout,
        dropout=dropout,
        name="discriminator",
    )
    return GAN(
        generator,
        discriminator,
        latent_dim=latent_dim,
        num_classes=classes,
        seed=seed,
        name=name,
    )
