"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998).

The classic table, at the 32x32 input of the paper:

=====  ===========================  ==========
layer  operation                    output
=====  ===========================  ==========
input                               32x32x1
c1     6 convolutions 5x5           28x28x6
s2     subsampling 2x2              14x14x6
c3     16 convolutions 5x5          10x10x16
s4     subsampling 2x2              5x5x16
c5     120 convolutions 5x5         1x1x120
f6     fully connected 84           84
output fully connected ``classes``  classes
=====  ===========================  ==========

Departures from the paper, as in most re-implementations: C3 connects every S2
map (the paper's partial connection table is not reproduced), subsampling is plain
average (or max) pooling without the trainable coefficient and bias, the squashing
function is a plain activation (tanh by default) and the output layer is a dense
layer (softmax by default) instead of Euclidean RBF units.
"""

import keras
from keras import layers as kl

from apps.recipes import Recipe
from apps.registry import register_model
from apps.search_spaces import Choice, Recorded
from apps.vision import blocks

PAPER = (
    'LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to '
    'Document Recognition", Proc. IEEE 1998'
)
DEFAULT_INPUT_SHAPE = (28, 28, 1)
MIN_INPUT_SIZE = 32
_MIN_SIZE_WHY = "C5's 5x5 kernel must fit after C1, S2, C3 and S4"
POOL_TYPES = ("average", "max")


# The README's main command (`make demo`): 90.92 % test accuracy in 84 s.
RECIPES = {
    "lenet5": Recipe(
        epochs=20,
        learning_rate=2e-3,
        augment="flip",
        model_options={"activation": "relu", "pool_type": "max"},
        input="28x28 zero-padded to the paper's 32x32 in the model",
        chosen_by="python benchmarks/time_to_accuracy.py: 90.92 % (seed 0); the "
        "paper's tanh / average pooling reached 88.07 % in 10 epochs",
    ),
}


@register_model(
    family="lenet",
    paper=PAPER,
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=MIN_INPUT_SIZE,
    hyperparameters={
        "depth": Recorded(3),  # C1, C3, C5: the paper's, no builder argument
        "activation": Choice(("tanh", "relu"), default="tanh"),
        "pool_type": Choice(("average", "max"), default="average"),
        "dropout": None,
    },
    recipe=RECIPES["lenet5"],
)
def lenet5(
    include_top=True,
    input_shape=None,
    classes=10,
    pooling=None,
    classifier_activation="softmax",
    dropout=0.0,
    weights=None,
    name="lenet5",
    activation="tanh",
    pool_type="average",
    resize="auto",
):
    """LeNet-5: C1-S2-C3-S4-C5-F6-output (LeCun et al., 1998).

    Inputs smaller than 32x32 (MNIST's 28x28) are zero-padded to 32x32 inside the
    model (layer ``pad``), as the paper centred its 28x28 digits in a 32x32 field.

    Args:
        include_top: whether to add F6 and the output layer.
        input_shape: ``(height, width, channels)``; defaults to ``(28, 28, 1)``.
        classes: number of classes (the paper: 10).
        pooling: with ``include_top=False``, ``None`` (C5's feature map), ``"avg"``
            or ``"max"`` (global pooling).
        classifier_activation: activation of the output layer; ``None`` for logits.
        dropout: dropout rate after F6, in [0, 1); the paper used none.
        weights: ``None`` or the path of a weights file to load.
        name: model name.
        activation: squashing function of C1, C3, C5 and F6 (``"tanh"``,
            ``"sigmoid"``, ``"relu"``, ...).
        pool_type: S2/S4 subsampling, ``"average"`` (the paper) or ``"max"``.
        resize: ``"auto"`` zero-pads inputs smaller than 32x32 to 32x32; ``False``
            rejects them; an int or ``(height, width)`` resizes every input.

    Returns:
        An uncompiled ``keras.Model`` mapping images to ``(batch, classes)``.
    """
    input_shape = blocks.check_common(locals(), DEFAULT_INPUT_SHAPE)
    blocks.check_activation("activation", activation, allow_none=False)
    blocks.check_choice("pool_type", pool_type, POOL_TYPES)
    blocks.check_flatten_head(include_top, input_shape, name)
    pad_to = None
    if isinstance(resize, str) and resize == "auto":
        pad_to = blocks.check_resize(
            resize, input_shape, MIN_INPUT_SIZE, name, _MIN_SIZE_WHY
        )
        resize_to = None
    else:
        resize_to = blocks.check_resize(
            resize, input_shape, MIN_INPUT_SIZE, name, _MIN_SIZE_WHY
        )
    pool = kl.AveragePooling2D if pool_type == "average" else kl.MaxPooling2D

    inputs = keras.Input(shape=input_shape)
    x = inputs
    if pad_to is not None:
        x = kl.ZeroPadding2D(_padding(input_shape[:2], pad_to), name="pad")(x)
    x = blocks.fit_input(x, resize_to)

    # Feature extractor
    x = kl.Conv2D(6, 5, activation=activation, name="c1")(x)
    x = pool(2, name="s2")(x)
    x = kl.Conv2D(16, 5, activation=activation, name="c3")(x)
    x = pool(2, name="s4")(x)
    x = kl.Conv2D(120, 5, activation=activation, name="c5")(x)

    # Classifier
    if include_top:
        x = kl.Flatten(name="flatten")(x)
        x = kl.Dense(84, activation=activation, name="f6")(x)
        if dropout:
            x = kl.Dropout(dropout, name="f6_dropout")(x)
        x = blocks.predictions(x, classes, classifier_activation)
    else:
        x = blocks.global_pool(x, pooling)

    model = keras.Model(inputs, x, name=name)
    return blocks.load_weights(model, weights)


def _padding(size, target):
    """Symmetric zero padding ((top, bottom), (left, right)) from size to target."""
    pads = []
    for have, want in zip(size, target, strict=True):
        extra = 0 if have is None else max(want - have, 0)
        pads.append((extra // 2, extra - extra // 2))
    return tuple(pads)
