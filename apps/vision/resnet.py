"""Residual networks, version 1 (He, Zhang, Ren & Sun, 2016).

At a 224x224 input (Table 1 of the paper):

=======  ===========================================  ==========
stage    operation                                    output
=======  ===========================================  ==========
conv1    7x7, 64, stride 2                            112x112
pool1    3x3 max, stride 2                            56x56
conv2_x  blocks of 64 filters (x4 for bottlenecks)    56x56
conv3_x  blocks of 128 filters, first one stride 2    28x28
conv4_x  blocks of 256 filters, first one stride 2    14x14
conv5_x  blocks of 512 filters, first one stride 2    7x7
avg_pool global average pool, ``predictions``         classes
=======  ===========================================  ==========

Basic blocks (two 3x3 convolutions) make ResNet-18 and -34, bottleneck blocks (1x1,
3x3, 1x1 with 4x expansion) ResNet-50, -101 and -152. Shortcuts are identities
except where the shape changes, where a strided 1x1 projection is used (the paper's
option B). In bottlenecks the stride sits on the first 1x1 convolution, as in the
paper and keras.applications (torchvision's "v1.5" puts it on the 3x3; the
parameter count is the same).

**Parameter convention.** Every convolution is followed by batch normalisation, so
by default convolutions have no bias (``conv_bias=False``), as in torchvision:
the trainable parameters equal torchvision's published counts (resnet18
11,689,512; resnet34 21,797,672; resnet50 25,557,032; resnet101 44,549,160;
resnet152 60,192,808). ``conv_bias=True`` gives keras.applications' convention,
where ``resnet50(conv_bias=True)`` is layer-for-layer
``keras.applications.ResNet50(weights=None)`` (25,636,712 parameters counting
the batch-norm moving statistics) and loads its weight files. One difference is
deliberate: the BatchNorm momentum defaults to 0.9 (PyTorch's), not
keras.applications' 0.99, whose moving averages lag too far behind a short run's
weights; ``batch_norm_momentum=0.99`` restores it. Layer names are
keras.applications' (``conv1_conv``, ``conv2_block1_1_conv``, ``conv5_block3_out``,
``avg_pool``, ``predictions``).

``small_inputs=True`` replaces the stem by a 3x3 stride-1 convolution without
max-pooling, for 28-32 pixel images (CIFAR, Fashion-MNIST).
"""

import functools

import keras
from keras import layers as kl

from apps.recipes import Recipe
from apps.registry import register_model
from apps.search_spaces import Choice, Default, Int, input_smaller_than
from apps.vision import blocks

PAPER = (
    'He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016'
)
DEFAULT_INPUT_SHAPE = (224, 224, 3)
MIN_INPUT_SIZE = 32
MIN_INPUT_SIZE_SMALL = 8
BLOCKS = ("basic", "bottleneck")
BN_EPSILON = 1.001e-5  # keras.applications' value, so that its weights load
_VARIANT_HYPERPARAMETERS = ("dropout",)


def _resnet(
    block,
    blocks_per_stage,
    include_top=True,
    input_shape=None,
    classes=1000,
    pooling=None,
    classifier_activation="softmax",
    dropout=0.0,
    weights=None,
    name="resnet",
    width=64,
    small_inputs=False,
    conv_bias=False,
    batch_norm_momentum=blocks.BATCH_NORM_MOMENTUM,
    resize="auto",
):
    """Builds a ResNet v1; see :func:`resnet` for the arguments. The variants
    (``resnet18`` ... ``resnet152``) fix ``block`` and ``blocks_per_stage``."""
    input_shape = blocks.check_common(locals(), DEFAULT_INPUT_SHAPE)
    blocks.check_choice("block", block, BLOCKS)
    blocks_per_stage = blocks.check_int_sequence("blocks_per_stage", blocks_per_stage)
    blocks.check_positive_int("width", width)
    blocks.check_bool("small_inputs", small_inputs)
    blocks.check_bool("conv_bias", conv_bias)
    blocks.check_momentum("batch_norm_momentum", batch_norm_momentum)
    if small_inputs:
        min_size = MIN_INPUT_SIZE_SMALL
        why = "the small-input stem and three stride-2 stages"
    else:
        min_size = MIN_INPUT_SIZE
        why = "the stride-4 stem and three stride-2 stages"
    target = blocks.check_resize(resize, input_shape, min_size, name, why)
    block_fn = _bottleneck_block if block == "bottleneck" else _basic_block
    expansion = 4 if block == "bottleneck" else 1

    inputs = keras.Input(shape=input_shape)
    x = blocks.fit_input(inputs, target)

    # Stem
    if small_inputs:
        x = kl.Conv2D(width, 3, padding="same", use_bias=conv_bias, name="conv1_conv")(
            x
        )
    else:
        x = kl.ZeroPadding2D(3, name="conv1_pad")(x)
        x = kl.Conv2D(width, 7, strides=2, use_bias=conv_bias, name="conv1_conv")(x)
    x = blocks.batch_norm(x, "conv1_bn", batch_norm_momentum, epsilon=BN_EPSILON)
    x = kl.Activation("relu", name="conv1_relu")(x)
    if not small_inputs:
        x = kl.ZeroPadding2D(1, name="pool1_pad")(x)
        x = kl.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    # Stages conv2_x, conv3_x, ...: the first block of each stage after the first
    # halves the feature map; the filters double per stage.
    channels = width
    for stage, stage_blocks in enumerate(blocks_per_stage):
        filters = width * 2**stage
        for index in range(1, stage_blocks + 1):
            stride = 2 if index == 1 and stage > 0 else 1
            x = block_fn(
                x,
                filters,
                stride=stride,
                projection=stride != 1 or channels != filters * expansion,
                conv_bias=conv_bias,
                momentum=batch_norm_momentum,
                name=f"conv{stage + 2}_block{index}",
            )
            channels = filters * expansion

    # Classifier
    if include_top:
        x = kl.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = kl.Dropout(dropout, name="dropout")(x)
        x = blocks.predictions(x, classes, classifier_activation)
    else:
        x = blocks.global_pool(x, pooling)

    model = keras.Model(inputs, x, name=name)
    return blocks.load_weights(model, weights)


def _conv_bn(x, filters, kernel_size, name, conv_bias, momentum, strides=1, relu=True):
    """Convolution, batch normalisation and (optionally) ReLU, keras-named."""
    x = kl.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=conv_bias,
        name=f"{name}_conv",
    )(x)
    x = blocks.batch_norm(x, f"{name}_bn", momentum, epsilon=BN_EPSILON)
    if relu:
        x = kl.Activation("relu", name=f"{name}_relu")(x)
    return x


def _shortcut(x, filters, stride, projection, conv_bias, momentum, name):
    """Identity, or the paper's option B projection (strided 1x1 conv + BN)."""
    if not projection:
        return x
    return _conv_bn(
        x, filters, 1, f"{name}_0", conv_bias, momentum, strides=stride, relu=False
    )


def _basic_block(x, filters, stride, projection, conv_bias, momentum, name):
    """Two 3x3 convolutions and a shortcut (ResNet-18/34)."""
    shortcut = _shortcut(x, filters, stride, projection, conv_bias, momentum, name)
    x = _conv_bn(x, filters, 3, f"{name}_1", conv_bias, momentum, strides=stride)
    x = _conv_bn(x, filters, 3, f"{name}_2", conv_bias, momentum, relu=False)
    x = kl.Add(name=f"{name}_add")([shortcut, x])
    return kl.Activation("relu", name=f"{name}_out")(x)


def _bottleneck_block(x, filters, stride, projection, conv_bias, momentum, name):
    """1x1 (stride), 3x3, 1x1 (x4) convolutions and a shortcut (ResNet-50+)."""
    shortcut = _shortcut(x, 4 * filters, stride, projection, conv_bias, momentum, name)
    x = _conv_bn(x, filters, 1, f"{name}_1", conv_bias, momentum, strides=stride)
    x = _conv_bn(x, filters, 3, f"{name}_2", conv_bias, momentum)
    x = _conv_bn(x, 4 * filters, 1, f"{name}_3", conv_bias, momentum, relu=False)
    x = kl.Add(name=f"{name}_add")([shortcut, x])
    return kl.Activation("relu", name=f"{name}_out")(x)


# The variants are data: resnet's arguments but the two that make the depth.
_variant = blocks.variant(_resnet, "block", "blocks_per_stage")

# small_inputs: a 3x3 stride-1 stem for 28x28 images (the paper's CIFAR ResNets).
RECIPES = {
    name: Recipe(
        epochs=30,
        learning_rate=1e-3,
        augment="flip,translate",
        model_options={"small_inputs": True},
        cpu_budget=cpu_budget,
        input="28x28 as it is (small_inputs=True stem)",
        chosen_by="provisional; ResNet-18 with Adam 1e-3 reached 88.00 % after 3x100 "
        "steps of 64 (python benchmarks/batch_norm.py), 86.89 % after 2x200 of 128 "
        "(zoo at 3c46182) and 90.99 % after 4x200 (zoo at c401c5d, 44 images/s on "
        "a loaded machine); idle, 5x220 reached 91.48 % in 34 min (zoo at 74ad85a, "
        "82 images/s, 92.60 % validation, 91.1 % training under augmentation) and "
        "6x220 without augmentation 93.14 % in 41 min (zoo at 4a2f3af, 95.9 % "
        "training, 93.82 % validation)",
    )
    for name, cpu_budget in (
        # Augmented, 5x220 underfit (91.1 % training < 92.6 % validation).
        ("resnet18", {"epochs": 6, "steps_per_epoch": 220, "augment": "none"}),
        ("resnet34", {"epochs": 1, "steps_per_epoch": 200}),
        ("resnet50", {"epochs": 1, "steps_per_epoch": 200}),
    )
}


@register_model(
    family="resnet",
    paper=PAPER,
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=MIN_INPUT_SIZE,
    hyperparameters={
        # basic blocks, depth 2 a stage: ResNet-18 (1: ResNet-10, 3: ResNet-26)
        "block": Default("basic"),
        "small_inputs": Default(input_smaller_than(64)),
        "depth": Int(1, 3, default=2, argument="blocks_per_stage", repeat=4),
        "width": Choice((16, 32, 64), default=64),
        "dropout": None,
    },
)
@blocks.variant(_resnet)
def resnet(block="bottleneck", blocks_per_stage=(3, 4, 6, 3), name="resnet", **options):
    """ResNet v1 with a configurable depth: block type and blocks per stage.

    Args:
        include_top: whether to add the global average pool and ``predictions``.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``.
        classes: number of classes.
        pooling: with ``include_top=False``, ``None`` (the last stage's feature
            map), ``"avg"`` or ``"max"``.
        classifier_activation: activation of ``predictions``; ``None`` for logits.
        dropout: dropout rate before ``predictions``, in [0, 1); the paper used
            none (the default 0 adds no layer).
        weights: ``None`` or the path of a weights file to load.
        name: model name.
        block: ``"basic"`` (two 3x3 convolutions) or ``"bottleneck"``.
        blocks_per_stage: blocks in each stage, one stage per entry
            (``(3, 4, 6, 3)`` with bottlenecks is ResNet-50). Depth is
            ``2 + 2 * sum`` for basic blocks and ``2 + 3 * sum`` for bottlenecks.
        width: filters of the first stage, doubled per stage (the paper: 64).
        small_inputs: a 3x3 stride-1 stem without max-pooling for 28-32 pixel
            images (minimum input 8 instead of 32).
        conv_bias: give the convolutions a bias (keras.applications' convention);
            by default they have none, as batch normalisation follows each one.
        batch_norm_momentum: momentum of the BatchNormalization moving
            statistics, in [0, 1) (default 0.9, PyTorch's; keras.applications
            uses 0.99, too slow for short runs: ``blocks.BATCH_NORM_MOMENTUM``).
        resize: ``"auto"`` upsamples inputs smaller than the minimum (layer
            ``resize``); ``False`` rejects them; an int or ``(height, width)``
            resizes every input.

    Returns:
        An uncompiled ``keras.Model`` mapping images to ``(batch, classes)``.
    """
    return _resnet(block, blocks_per_stage, name=name, **options)


# Every variant registers with the family's metadata.
_register_variant = functools.partial(
    register_model,
    family="resnet",
    paper=PAPER,
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=MIN_INPUT_SIZE,
    hyperparameters=_VARIANT_HYPERPARAMETERS,
)


@_register_variant(recipe=RECIPES["resnet18"])
@_variant
def resnet18(name="resnet18", **options):
    """ResNet-18: basic blocks, (2, 2, 2, 2)."""
    return _resnet("basic", (2, 2, 2, 2), name=name, **options)


@_register_variant(recipe=RECIPES["resnet34"])
@_variant
def resnet34(name="resnet34", **options):
    """ResNet-34: basic blocks, (3, 4, 6, 3)."""
    return _resnet("basic", (3, 4, 6, 3), name=name, **options)


@_register_variant(recipe=RECIPES["resnet50"])
@_variant
def resnet50(name="resnet50", **options):
    """ResNet-50: bottleneck blocks, (3, 4, 6, 3)."""
    return _resnet("bottleneck", (3, 4, 6, 3), name=name, **options)


@_register_variant()
@_variant
def resnet101(name="resnet101", **options):
    """ResNet-101: bottleneck blocks, (3, 4, 23, 3)."""
    return _resnet("bottleneck", (3, 4, 23, 3), name=name, **options)


@_register_variant()
@_variant
def resnet152(name="resnet152", **options):
    """ResNet-152: bottleneck blocks, (3, 8, 36, 3)."""
    return _resnet("bottleneck", (3, 8, 36, 3), name=name, **options)
