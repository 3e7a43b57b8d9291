"""VGG networks (Simonyan & Zisserman, 2015), configurations A, B, D and E.

Five stages of 3x3 convolutions (stride 1, pad 1, ReLU), each closed by a 2x2 max
pool, then three fully connected layers (4096, 4096, ``classes``) with dropout 0.5
after the first two. Configuration D is VGG-16, E is VGG-19. Layer names and
structure are keras.applications' (``block1_conv1`` ... ``block5_pool``,
``flatten``, ``fc1``, ``fc2``, ``predictions``), so ``vgg16(dropout=0)`` is
layer-for-layer ``keras.applications.VGG16(weights=None)`` (138,357,544
parameters) and loads its weight files.

The ``_bn`` variants put batch normalisation between each convolution and its
ReLU (``block1_conv1_bn``, ``block1_conv1_relu``) and keep the convolution bias,
as torchvision's ``vgg16_bn`` does, so their trainable parameter counts equal
torchvision's (138,365,992 for vgg16_bn); Keras also counts the moving mean and
variance (non-trainable).

``vgg`` is the depth-configurable family for tuning: the number of convolutions
per stage, the number of stages, the width and the size of the fully connected
layers are arguments.
"""

import functools

import keras
from keras import layers as kl

from apps.recipes import Recipe
from apps.registry import register_model
from apps.search_spaces import Choice, Int
from apps.vision import blocks

PAPER = (
    'Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image '
    'Recognition", ICLR 2015'
)
DEFAULT_INPUT_SHAPE = (224, 224, 3)
MIN_INPUT_SIZE = 32

# Convolutions per stage of the paper's configurations (Table 1).
CONFIGURATIONS = {
    "A": (1, 1, 2, 2, 2),  # vgg11
    "B": (2, 2, 2, 2, 2),  # vgg13
    "D": (2, 2, 3, 3, 3),  # vgg16
    "E": (2, 2, 4, 4, 4),  # vgg19
}
_VARIANT_HYPERPARAMETERS = ("dropout", "batch_norm")
_BN_HYPERPARAMETERS = ("dropout",)


def _vgg(
    convs_per_stage,
    include_top=True,
    input_shape=None,
    classes=1000,
    pooling=None,
    classifier_activation="softmax",
    dropout=0.5,
    weights=None,
    name="vgg",
    width=64,
    fc_units=4096,
    batch_norm=False,
    batch_norm_momentum=blocks.BATCH_NORM_MOMENTUM,
    resize="auto",
):
    """Builds a VGG network; see :func:`vgg` for the arguments. The variants fix
    ``convs_per_stage`` (and the ``_bn`` ones ``batch_norm=True``)."""
    input_shape = blocks.check_common(locals(), DEFAULT_INPUT_SHAPE)
    if isinstance(convs_per_stage, int) and not isinstance(convs_per_stage, bool):
        convs_per_stage = (convs_per_stage,) * len(CONFIGURATIONS["D"])
    convs_per_stage = blocks.check_int_sequence("convs_per_stage", convs_per_stage)
    blocks.check_positive_int("width", width)
    blocks.check_positive_int("fc_units", fc_units)
    blocks.check_bool("batch_norm", batch_norm)
    blocks.check_momentum("batch_norm_momentum", batch_norm_momentum)
    blocks.check_flatten_head(include_top, input_shape, name)
    stages = len(convs_per_stage)
    min_size = 2**stages
    target = blocks.check_resize(
        resize, input_shape, min_size, name, f"{stages} stride-2 max-pools"
    )

    inputs = keras.Input(shape=input_shape)
    x = blocks.fit_input(inputs, target)

    # Blocks 1 to 5: the filters double per stage up to 8 x width (64 ... 512)
    for stage, convs in enumerate(convs_per_stage, start=1):
        filters = min(width * 2 ** (stage - 1), width * 8)
        for index in range(1, convs + 1):
            x = _conv(
                x,
                filters,
                f"block{stage}_conv{index}",
                batch_norm and batch_norm_momentum,
            )
        x = kl.MaxPooling2D(2, strides=2, name=f"block{stage}_pool")(x)

    # Classifier
    if include_top:
        x = kl.Flatten(name="flatten")(x)
        for index in (1, 2):
            x = kl.Dense(fc_units, activation="relu", name=f"fc{index}")(x)
            if dropout:
                x = kl.Dropout(dropout, name=f"fc{index}_dropout")(x)
        x = blocks.predictions(x, classes, classifier_activation)
    else:
        x = blocks.global_pool(x, pooling)

    model = keras.Model(inputs, x, name=name)
    return blocks.load_weights(model, weights)


def _conv(x, filters, name, bn_momentum):
    """3x3 convolution, stride 1, pad 1, ReLU (batch-normalised first, with momentum
    ``bn_momentum``, unless it is False)."""
    if bn_momentum is False:
        return kl.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
    x = kl.Conv2D(filters, 3, padding="same", name=name)(x)
    x = blocks.batch_norm(x, f"{name}_bn", bn_momentum)
    return kl.Activation("relu", name=f"{name}_relu")(x)


# The variants are data: vgg's arguments but the configuration (and batch_norm).
_variant = blocks.variant(_vgg, "convs_per_stage")
_bn_variant = blocks.variant(_vgg, "convs_per_stage", "batch_norm")

# Without BatchNorm, VGG needs a small Adam step to start learning from scratch;
# with it, 1e-3 is still too large (see vgg16_bn's chosen_by).
RECIPES = {
    name: Recipe(
        epochs=30,
        learning_rate=learning_rate,
        augment="flip",
        cpu_budget={"epochs": epochs, "steps_per_epoch": steps_per_epoch},
        input="28x28 upsampled to 32x32 in the model (layer resize)",
        chosen_by=chosen_by,
    )
    # cpu budgets: 2x350 / 2x200 / 2x200 reached 81.06 / 74.26 / 63.06 % in 13-17
    # min with val tracking train (zoo at 3c46182); these took 27-33 min (zoo rows).
    for name, learning_rate, epochs, steps_per_epoch, chosen_by in (
        ("vgg11", 1e-4, 5, 350, "5x350 steps reached 88.37 % (zoo at d3c62be)"),
        (
            "vgg16",
            2e-4,
            7,
            200,
            "one epoch of 200 steps at a constant rate, seed 0: Adam 2e-4 "
            "reached 75.7 % validation, 1e-4 66.3 %, 3e-4 64.6 % (at 1e-4, 5x200 "
            "steps reached 81.19 %, zoo at d3c62be); 7x200 fills ~30 of the 45 min",
        ),
        (
            "vgg16_bn",
            3e-4,
            5,
            200,
            "one epoch of 200 steps at a constant rate, "
            "seed 0: Adam 3e-4 reached 84.0 % validation, 1e-3 42.0 % (and 4x200 "
            "steps at 1e-3 81.23 % test, zoo at c401c5d); 4x200 at 3e-4 reached "
            "91.13 % (zoo at e600435), so the cpu budget is 5x200",
        ),
    )
}


@register_model(
    family="vgg",
    paper=PAPER,
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=MIN_INPUT_SIZE,
    hyperparameters={
        # depth 2 is VGG-13's layout (VGG-11 has 1-1-2-2-2, VGG-16 2-2-3-3-3)
        "depth": Int(1, 3, default=2, argument="convs_per_stage"),
        "width": Choice((16, 32, 64), default=64),
        "dropout": None,
        "fc_units": None,
        "batch_norm": None,
    },
)
@blocks.variant(_vgg)
def vgg(convs_per_stage=CONFIGURATIONS["D"], name="vgg", **options):
    """VGG with a configurable depth: convolutions per stage, width, fc size.

    Args:
        include_top: whether to add fc1, fc2 and the classifier.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``.
        classes: number of classes.
        pooling: with ``include_top=False``, ``None`` (the last block's feature
            map), ``"avg"`` or ``"max"``.
        classifier_activation: activation of ``predictions``; ``None`` for logits.
        dropout: dropout rate after fc1 and fc2, in [0, 1) (the paper: 0.5).
        weights: ``None`` or the path of a weights file to load.
        name: model name.
        convs_per_stage: 3x3 convolutions in each stage, one stage per entry
            (``(2, 2, 3, 3, 3)`` is VGG-16), or one int for five equal stages.
            Each stage ends with a 2x2 max pool, so the minimum input size is
            ``2 ** len(convs_per_stage)``.
        width: filters of the first stage; they double per stage up to
            ``8 * width`` (the paper: 64 ... 512).
        fc_units: units of fc1 and fc2 (the paper: 4096).
        batch_norm: batch normalisation between each convolution and its ReLU.
        batch_norm_momentum: momentum of the BatchNormalization moving
            statistics, in [0, 1) (default 0.9, PyTorch's; keras.applications
            uses 0.99, too slow for short runs: ``blocks.BATCH_NORM_MOMENTUM``).
        resize: ``"auto"`` upsamples inputs smaller than the minimum size (layer
            ``resize``); ``False`` rejects them; an int or ``(height, width)``
            resizes every input.

    Returns:
        An uncompiled ``keras.Model`` mapping images to ``(batch, classes)``.
    """
    return _vgg(convs_per_stage, name=name, **options)


# Every variant registers with the family's metadata.
_register_variant = functools.partial(
    register_model,
    family="vgg",
    paper=PAPER,
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=MIN_INPUT_SIZE,
)


@_register_variant(hyperparameters=_VARIANT_HYPERPARAMETERS, recipe=RECIPES["vgg11"])
@_variant
def vgg11(name="vgg11", **options):
    """VGG-11, configuration A: 8 convolutions and 3 fully connected layers."""
    return _vgg(CONFIGURATIONS["A"], name=name, **options)


@_register_variant(hyperparameters=_VARIANT_HYPERPARAMETERS)
@_variant
def vgg13(name="vgg13", **options):
    """VGG-13, configuration B: 10 convolutions and 3 fully connected layers."""
    return _vgg(CONFIGURATIONS["B"], name=name, **options)


@_register_variant(hyperparameters=_VARIANT_HYPERPARAMETERS, recipe=RECIPES["vgg16"])
@_variant
def vgg16(name="vgg16", **options):
    """VGG-16, configuration D: 13 convolutions and 3 fully connected layers."""
    return _vgg(CONFIGURATIONS["D"], name=name, **options)


@_register_variant(hyperparameters=_VARIANT_HYPERPARAMETERS)
@_variant
def vgg19(name="vgg19", **options):
    """VGG-19, configuration E: 16 convolutions and 3 fully connected layers."""
    return _vgg(CONFIGURATIONS["E"], name=name, **options)


@_register_variant(hyperparameters=_BN_HYPERPARAMETERS)
@_bn_variant
def vgg11_bn(name="vgg11_bn", **options):
    """VGG-11, configuration A, with batch normalisation after each convolution."""
    return _vgg(CONFIGURATIONS["A"], name=name, batch_norm=True, **options)


@_register_variant(hyperparameters=_BN_HYPERPARAMETERS)
@_bn_variant
def vgg13_bn(name="vgg13_bn", **options):
    """VGG-13, configuration B, with batch normalisation after each convolution."""
    return _vgg(CONFIGURATIONS["B"], name=name, batch_norm=True, **options)


@_register_variant(hyperparameters=_BN_HYPERPARAMETERS, recipe=RECIPES["vgg16_bn"])
@_bn_variant
def vgg16_bn(name="vgg16_bn", **options):
    """VGG-16, configuration D, with batch normalisation after each convolution."""
    return _vgg(CONFIGURATIONS["D"], name=name, batch_norm=True, **options)


@_register_variant(hyperparameters=_BN_HYPERPARAMETERS)
@_bn_variant
def vgg19_bn(name="vgg19_bn", **options):
    """VGG-19, configuration E, with batch normalisation after each convolution."""
    return _vgg(CONFIGURATIONS["E"], name=name, batch_norm=True, **options)
