"""Recurrent sequence classifiers: SimpleRNN, LSTM and GRU, stacked, bidirectional.

- SimpleRNN: Elman, "Finding Structure in Time", Cognitive Science 1990.
- LSTM: Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 1997
  (with the forget gate of Gers et al., 2000, as Keras has it).
- GRU: Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for
  Statistical Machine Translation", EMNLP 2014.
- Bidirectional: Schuster & Paliwal, "Bidirectional Recurrent Neural Networks",
  IEEE Trans. Signal Processing 1997.

An image ``(height, width, channels)`` is read as ``height`` time steps of
``width * channels`` features (Fashion-MNIST: 28 rows of 28 pixels), reshaped inside
the model (layer ``rows``); a ``(time, features)`` input is read as it is. The
``depth`` recurrent layers are named ``lstm_1``, ``lstm_2``, ... (``gru_1``,
``rnn_1``; ``bilstm_1`` when bidirectional); all but the last return sequences; the
last one's final state goes to ``predictions``. The four builders take the same
keyword arguments (``units``, ``depth``, ``dropout``, ``recurrent_dropout``, ...),
described on ``_recurrent``.
"""

import functools
import numbers

import keras
from keras import layers as kl

from apps.recipes import Recipe
from apps.registry import register_model
from apps.search_spaces import Choice, Int
from apps.vision import blocks

PAPERS = {
    "rnn": 'Elman, "Finding Structure in Time", Cognitive Science 1990',
    "lstm": (
        'Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 1997'
    ),
    "gru": (
        'Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder '
        'for Statistical Machine Translation", EMNLP 2014'
    ),
    "bidirectional": (
        'Schuster & Paliwal, "Bidirectional Recurrent Neural Networks", IEEE '
        "Trans. Signal Processing 1997"
    ),
}
CELLS = {"rnn": kl.SimpleRNN, "lstm": kl.LSTM, "gru": kl.GRU}
DEFAULT_INPUT_SHAPE = (28, 28, 1)
HYPERPARAMETERS = {
    "depth": Int(1, 3, default=1),
    "width": Choice((32, 64, 128, 256), default=128, argument="units"),
    "dropout": None,
    "recurrent_dropout": None,
}


def check_sequence_shape(input_shape):
    """Returns ``input_shape`` as ``(time, features)`` or ``(height, width, channels)``.

    The number of time steps (``time``, ``height``) may be ``None``; the rest must
    be positive integers.
    """
    error = ValueError(
        "input_shape must be (time, features) or (height, width, channels) with "
        "positive integers (time or height may be None). "
        f"Received: input_shape={input_shape!r}"
    )
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise error from None
    if isinstance(input_shape, str) or len(shape) not in (2, 3):
        raise error
    for index, dim in enumerate(shape):
        if dim is None and index == 0:
            continue
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
            raise error
    return tuple(None if dim is None else int(dim) for dim in shape)


def _recurrent(
    cell,
    *,
    bidirectional=False,
    include_top=True,
    input_shape=None,
    classes=10,
    pooling=None,
    classifier_activation="softmax",
    dropout=0.0,
    weights=None,
    name,
    units=128,
    depth=1,
    recurrent_dropout=0.0,
):
    """The generic recurrent classifier; the public builders fix ``cell`` and
    ``bidirectional`` and take the rest.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        bidirectional: read each layer forwards and backwards, concatenated.
        include_top: whether to add ``predictions``; without it the model returns
            the last recurrent layer's final state.
        input_shape: ``(height, width, channels)`` (read row by row) or
            ``(time, features)``; defaults to ``(28, 28, 1)``.
        classes: number of classes.
        pooling: must be ``None`` (the final state is the summary).
        classifier_activation: activation of ``predictions``; ``None`` for logits.
        dropout: dropout rate after each recurrent layer, in [0, 1).
        weights: ``None`` or the path of a weights file to load.
        name: model name.
        units: state size of each recurrent layer (of each direction).
        depth: number of stacked recurrent layers.
        recurrent_dropout: dropout on the recurrent connections, in [0, 1)
            (Gal & Ghahramani, 2016).

    Returns:
        An uncompiled ``keras.Model`` mapping inputs to ``(batch, classes)``.
    """
    blocks.check_bool("include_top", include_top)
    blocks.check_bool("bidirectional", bidirectional)
    input_shape = check_sequence_shape(
        DEFAULT_INPUT_SHAPE if input_shape is None else input_shape
    )
    if include_top:
        blocks.check_positive_int("classes", classes)
    blocks.check_choice("pooling", pooling, (None,))
    blocks.check_activation("classifier_activation", classifier_activation)
    blocks.check_rate("dropout", dropout)
    blocks.check_rate("recurrent_dropout", recurrent_dropout)
    blocks.check_weights(weights)
    blocks.check_positive_int("units", units)
    blocks.check_positive_int("depth", depth)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string. Received: name={name!r}")

    inputs = keras.Input(shape=input_shape)
    x = inputs
    if len(input_shape) == 3:
        steps, width, channels = input_shape
        x = kl.Reshape((-1 if steps is None else steps, width * channels), name="rows")(
            x
        )

    # Recurrent layers
    prefix = f"bi{cell}" if bidirectional else cell
    for index in range(1, depth + 1):
        layer_name = f"{prefix}_{index}"
        layer = CELLS[cell](
            units,
            return_sequences=index < depth,
            recurrent_dropout=recurrent_dropout,
            name=layer_name if not bidirectional else f"{cell}_{index}",
        )
        if bidirectional:
            layer = kl.Bidirectional(layer, name=layer_name)
        x = layer(x)
        if dropout:
            x = kl.Dropout(dropout, name=f"{layer_name}_dropout")(x)

    # Classifier
    if include_top:
        x = blocks.predictions(x, classes, classifier_activation)

    model = keras.Model(inputs, x, name=name)
    return blocks.load_weights(model, weights)


# The variants are data: the cell and its direction.
_variant = blocks.variant(_recurrent, "cell", "bidirectional")

# Rows as time steps (28 steps of 28 pixels).
RECIPES = {
    name: Recipe(
        epochs=15,
        learning_rate=1e-3,
        input="28 rows of 28 pixels, one row a time step",
        chosen_by=chosen_by,
    )
    for name, chosen_by in (
        ("rnn", "provisional: as the LSTM"),
        ("lstm", "python benchmarks/lstm_fashion_mnist.py: 88.74 % in 15 epochs"),
        ("gru", "provisional: as the LSTM"),
        ("bilstm", "provisional: as the LSTM"),
    )
}


# Every variant registers with the family's metadata.
_register_variant = functools.partial(
    register_model,
    family="recurrent",
    task="sequence_classification",
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=1,
    hyperparameters=HYPERPARAMETERS,
)


@_register_variant(paper=PAPERS["rnn"], recipe=RECIPES["rnn"])
@_variant
def rnn(name="rnn", **options):
    """Elman's simple recurrent network (tanh units), stacked ``depth`` times."""
    return _recurrent("rnn", name=name, **options)


@_register_variant(paper=PAPERS["lstm"], recipe=RECIPES["lstm"])
@_variant
def lstm(name="lstm", **options):
    """Long short-term memory, stacked ``depth`` times."""
    return _recurrent("lstm", name=name, **options)


@_register_variant(paper=PAPERS["gru"], recipe=RECIPES["gru"])
@_variant
def gru(name="gru", **options):
    """Gated recurrent units, stacked ``depth`` times."""
    return _recurrent("gru", name=name, **options)


@_register_variant(paper=PAPERS["bidirectional"], recipe=RECIPES["bilstm"])
@_variant
def bilstm(name="bilstm", **options):
    """Bidirectional LSTM: each layer reads forwards and backwards, concatenated."""
    return _recurrent("lstm", bidirectional=True, name=name, **options)
