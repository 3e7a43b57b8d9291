"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012).

The layer table at a 224x224x3 input:

=====  ==============================================  ==========
layer  operation                                       output
=====  ==============================================  ==========
conv1  96 @ 11x11 stride 4 (input zero-padded by 2)    55x55x96
lrn1   local response normalisation (n=5, k=2)         55x55x96
pool1  max 3x3 stride 2                                27x27x96
conv2  256 @ 5x5, pad 2, two groups                    27x27x256
lrn2   local response normalisation                    27x27x256
pool2  max 3x3 stride 2                                13x13x256
conv3  384 @ 3x3, pad 1 (sees both groups)             13x13x384
conv4  384 @ 3x3, pad 1, two groups                    13x13x384
conv5  256 @ 3x3, pad 1, two groups                    13x13x256
pool5  max 3x3 stride 2                                6x6x256
fc6    4096, dropout 0.5                               4096
fc7    4096, dropout 0.5                               4096
fc8    ``classes``                                     classes
=====  ==============================================  ==========

The paper states a 224x224 input, but 11x11 stride-4 kernels give 55x55 only on a
227x227 image (``(227 - 11) / 4 + 1 = 55``). Here the input is zero-padded by 2 on
each side (layer ``conv1_pad``), so a 224x224 image gives ``(228 - 11) // 4 + 1 =
55`` and the rest of the table follows; the receptive field covers the same image.

Normalisation comes before pooling, as in section 3.5 of the paper ("Response-
normalization layers follow the first and second convolutional layers. Max-pooling
layers follow both response-normalization layers as well as the fifth convolutional
layer"); Caffe's reference model pools first. ``groups=2`` reproduces the two-GPU
split (the paper's 60,965,224 parameters at 1000 classes) with Keras's grouped
convolutions; ``groups=1`` is the single-tower variant (62,378,344).
"""

import keras
from keras import layers as kl

from apps.recipes import Recipe
from apps.registry import register_model
from apps.vision import blocks
from layers import LocalResponseNormalization

PAPER = (
    'Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep '
    'Convolutional Neural Networks", NeurIPS 2012'
)
DEFAULT_INPUT_SHAPE = (224, 224, 3)
MIN_INPUT_SIZE = 63
_MIN_SIZE_WHY = "pool5's 3x3 window must fit after conv1, pool1 and pool2"
NORMALIZATIONS = ("lrn", "batchnorm", "none", None)
GROUPS = (1, 2)


# groups=1: the paper's two towers were a two-GPU memory split; on a CPU Keras runs a
# grouped convolution through a slow fallback (19 vs ~60 images/s here).
RECIPES = {
    "alexnet": Recipe(
        epochs=30,
        learning_rate=1e-4,
        augment="flip",
        model_options={"groups": 1},
        cpu_budget={"epochs": 7, "steps_per_epoch": 400},
        input="28x28 upsampled to 63x63 in the model (layer resize)",
        chosen_by="provisional; 3x400 / 6x400 steps reached 82.42 / 87.76 % in "
        "20 / 39 min with val tracking train (zoo at 3c46182 / d3c62be), so the "
        "cpu budget has one more epoch",
    ),
}


@register_model(
    family="alexnet",
    paper=PAPER,
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=MIN_INPUT_SIZE,
    hyperparameters=("dropout", "groups", "normalization"),
    recipe=RECIPES["alexnet"],
)
def alexnet(
    include_top=True,
    input_shape=None,
    classes=1000,
    pooling=None,
    classifier_activation="softmax",
    dropout=0.5,
    weights=None,
    name="alexnet",
    groups=2,
    normalization="lrn",
    batch_norm_momentum=blocks.BATCH_NORM_MOMENTUM,
    resize="auto",
):
    """AlexNet: five convolutional and three fully connected layers.

    Args:
        include_top: whether to add fc6, fc7 and fc8.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``.
        classes: number of classes.
        pooling: with ``include_top=False``, ``None`` (pool5's feature map),
            ``"avg"`` or ``"max"``.
        classifier_activation: applied to fc8 by the layer ``predictions``;
            ``None`` for logits.
        dropout: dropout rate after fc6 and fc7, in [0, 1) (the paper: 0.5).
        weights: ``None`` or the path of a weights file to load.
        name: model name.
        groups: 2 splits conv2, conv4 and conv5 into two towers as on the paper's
            two GPUs; 1 is the single-tower network.
        normalization: ``"lrn"`` (the paper: ``lrn1``/``lrn2`` after conv1 and
            conv2), ``"batchnorm"`` (batch normalisation after every convolution,
            no LRN, bias-free convolutions) or ``None`` (also spelt ``"none"``,
            which survives ``apps.build``'s dropping of ``None`` options).
        batch_norm_momentum: momentum of the BatchNormalization moving
            statistics, in [0, 1) (default 0.9, PyTorch's; keras.applications
            uses 0.99, too slow for short runs: ``blocks.BATCH_NORM_MOMENTUM``).
        resize: ``"auto"`` upsamples inputs smaller than 63x63 (layer ``resize``);
            ``False`` rejects them; an int or ``(height, width)`` resizes every
            input.

    Returns:
        An uncompiled ``keras.Model`` mapping images to ``(batch, classes)``.
    """
    input_shape = blocks.check_common(locals(), DEFAULT_INPUT_SHAPE)
    blocks.check_choice("groups", groups, GROUPS)
    blocks.check_choice("normalization", normalization, NORMALIZATIONS)
    blocks.check_momentum("batch_norm_momentum", batch_norm_momentum)
    if normalization == "none":
        normalization = None
    blocks.check_flatten_head(include_top, input_shape, name)
    target = blocks.check_resize(
        resize, input_shape, MIN_INPUT_SIZE, name, _MIN_SIZE_WHY
    )

    inputs = keras.Input(shape=input_shape)
    x = blocks.fit_input(inputs, target)

    # conv1: 227-equivalent input
    x = kl.ZeroPadding2D(2, name="conv1_pad")(x)
    bn_momentum = batch_norm_momentum if normalization == "batchnorm" else None
    x = _conv(x, 96, 11, "conv1", bn_momentum, strides=4, padding="valid")
    if normalization == "lrn":
        x = _lrn(x, "lrn1")
    x = kl.MaxPooling2D(3, strides=2, name="pool1")(x)

    # conv2
    x = _conv(x, 256, 5, "conv2", bn_momentum, groups=groups)
    if normalization == "lrn":
        x = _lrn(x, "lrn2")
    x = kl.MaxPooling2D(3, strides=2, name="pool2")(x)

    # conv3 to conv5
    x = _conv(x, 384, 3, "conv3", bn_momentum)
    x = _conv(x, 384, 3, "conv4", bn_momentum, groups=groups)
    x = _conv(x, 256, 3, "conv5", bn_momentum, groups=groups)
    x = kl.MaxPooling2D(3, strides=2, name="pool5")(x)

    # Classifier
    if include_top:
        x = kl.Flatten(name="flatten")(x)
        x = kl.Dense(4096, activation="relu", name="fc6")(x)
        if dropout:
            x = kl.Dropout(dropout, name="fc6_dropout")(x)
        x = kl.Dense(4096, activation="relu", name="fc7")(x)
        if dropout:
            x = kl.Dropout(dropout, name="fc7_dropout")(x)
        x = kl.Dense(classes, dtype="float32", name="fc8")(x)  # see blocks.predictions
        x = kl.Activation(
            classifier_activation or "linear", dtype="float32", name="predictions"
        )(x)
    else:
        x = blocks.global_pool(x, pooling)

    model = keras.Model(inputs, x, name=name)
    return blocks.load_weights(model, weights)


def _conv(x, filters, kernel_size, name, bn_momentum, padding="same", **kwargs):
    """Convolution and ReLU, with batch normalisation (momentum ``bn_momentum``)
    between them unless ``bn_momentum`` is None."""
    if bn_momentum is None:
        return kl.Conv2D(
            filters,
            kernel_size,
            padding=padding,
            activation="relu",
            name=name,
            **kwargs,
        )(x)
    x = kl.Conv2D(
        filters, kernel_size, padding=padding, use_bias=False, name=name, **kwargs
    )(x)
    x = blocks.batch_norm(x, f"{name}_bn", bn_momentum)
    return kl.Activation("relu", name=f"{name}_relu")(x)


def _lrn(x, name):
    """The paper's response normalisation: n=5, k=2, alpha=1e-4, beta=0.75."""
    return LocalResponseNormalization(size=5, k=2.0, alpha=1e-4, beta=0.75, name=name)(
        x
    )
