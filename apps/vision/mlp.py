"""Multilayer perceptron (Rumelhart, Hinton & Williams, 1986).

The input is flattened and goes through fully connected hidden layers
(``hidden_1``, ``hidden_2``, ...) to ``predictions``. With no hidden layer the
model is Rosenblatt's single-layer perceptron (a linear classifier), which cannot
learn XOR; one hidden layer can (Minsky & Papert, 1969; Rumelhart et al., 1986).
"""

import keras
from keras import layers as kl

from apps.recipes import Recipe
from apps.registry import register_model
from apps.search_spaces import Choice, Int
from apps.vision import blocks

PAPER = (
    'Rumelhart, Hinton & Williams, "Learning Representations by Back-Propagating '
    'Errors", Nature 1986'
)
DEFAULT_INPUT_SHAPE = (28, 28, 1)
MIN_INPUT_SIZE = 1
DEFAULT_HIDDEN_UNITS = (256, 128)


RECIPES = {
    "mlp": Recipe(
        epochs=30,
        learning_rate=1e-3,
        model_options={"dropout": 0.2},
        input="28x28 flattened",
    ),
}


@register_model(
    family="mlp",
    paper=PAPER,
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=MIN_INPUT_SIZE,
    hyperparameters={
        "depth": Int(1, 4, default=2, excludes=("hidden_units",)),
        "width": Choice((64, 128, 256, 512), default=128),
        "dropout": None,
        "hidden_units": None,
        "activation": None,
        "batch_norm": None,
    },
    recipe=RECIPES["mlp"],
)
def mlp(
    include_top=True,
    input_shape=None,
    classes=10,
    pooling=None,
    classifier_activation="softmax",
    dropout=0.0,
    weights=None,
    name="mlp",
    hidden_units=None,
    depth=None,
    width=None,
    activation="relu",
    batch_norm=False,
    batch_norm_momentum=blocks.BATCH_NORM_MOMENTUM,
):
    """A multilayer perceptron on the flattened input.

    The hidden layers are ``hidden_units`` (default ``(256, 128)``), or ``depth``
    layers of ``width`` units (``depth=0`` is the single-layer perceptron). Give
    one form or the other, not both.

    Args:
        include_top: whether to add ``predictions``; without it the model returns
            the last hidden layer (or the flattened input when there is none).
        input_shape: any shape; defaults to ``(28, 28, 1)``.
        classes: number of classes.
        pooling: must be ``None``; an MLP has no feature map to pool.
        classifier_activation: activation of ``predictions``; ``None`` for logits.
        dropout: dropout rate after each hidden layer, in [0, 1).
        weights: ``None`` or the path of a weights file to load.
        name: model name.
        hidden_units: units of each hidden layer, a sequence of positive ints
            (may be empty).
        depth: number of hidden layers, with ``width``.
        width: units of each hidden layer, with ``depth`` (default 128).
        activation: activation of the hidden layers.
        batch_norm: batch normalisation before each hidden activation.
        batch_norm_momentum: momentum of the BatchNormalization moving
            statistics, in [0, 1) (default 0.9, PyTorch's; keras.applications
            uses 0.99, too slow for short runs: see ``blocks.BATCH_NORM_MOMENTUM``).

    Returns:
        An uncompiled ``keras.Model`` mapping inputs to ``(batch, classes)``.
    """
    # Validate
    blocks.check_bool("include_top", include_top)
    if input_shape is None:
        input_shape = DEFAULT_INPUT_SHAPE
    try:
        input_shape = tuple(input_shape)
    except TypeError:
        input_shape = None
    if not input_shape or any(
        isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in input_shape
    ):
        raise ValueError(
            "input_shape must be a non-empty tuple of positive integers, such as "
            f"(28, 28, 1) or (2,). Received: input_shape={input_shape!r}"
        )
    if include_top:
        blocks.check_positive_int("classes", classes)
    blocks.check_choice("pooling", pooling, (None,))
    blocks.check_activation("classifier_activation", classifier_activation)
    blocks.check_rate("dropout", dropout)
    blocks.check_weights(weights)
    hidden_units = _hidden_units(hidden_units, depth, width)
    blocks.check_activation("activation", activation, allow_none=False)
    blocks.check_bool("batch_norm", batch_norm)
    blocks.check_momentum("batch_norm_momentum", batch_norm_momentum)

    inputs = keras.Input(shape=input_shape)
    x = kl.Flatten(name="flatten")(inputs) if len(input_shape) > 1 else inputs

    # Hidden layers
    for index, units in enumerate(hidden_units, start=1):
        layer_name = f"hidden_{index}"
        if batch_norm:
            x = kl.Dense(units, use_bias=False, name=layer_name)(x)
            x = blocks.batch_norm(x, f"{layer_name}_bn", batch_norm_momentum)
            x = kl.Activation(activation, name=f"{layer_name}_act")(x)
        else:
            x = kl.Dense(units, activation=activation, name=layer_name)(x)
        if dropout:
            x = kl.Dropout(dropout, name=f"{layer_name}_dropout")(x)

    # Classifier
    if include_top:
        x = blocks.predictions(x, classes, classifier_activation)

    model = keras.Model(inputs, x, name=name)
    return blocks.load_weights(model, weights)


def _hidden_units(hidden_units, depth, width):
    """Resolves ``hidden_units`` or ``depth`` x ``width`` into a tuple of ints."""
    if hidden_units is not None and (depth is not None or width is not None):
        raise ValueError(
            "Give hidden_units or depth/width, not both. Received: "
            f"hidden_units={hidden_units!r}, depth={depth!r}, width={width!r}"
        )
    if depth is None and width is None:
        if hidden_units is None:
            return DEFAULT_HIDDEN_UNITS
        return blocks.check_int_sequence("hidden_units", hidden_units, allow_empty=True)
    if depth is None:
        depth = len(DEFAULT_HIDDEN_UNITS)
    if width is None:
        width = 128
    blocks.check_positive_int("depth", depth, minimum=0)
    blocks.check_positive_int("width", width)
    return (width,) * depth
