"""What every image classifier shares: argument checks, input fitting, head, weights,
and the signature of a family's variants (:func:`variant`).

The builders follow keras.applications: validate everything first, then build.
"""

import inspect
import math
import numbers
import os

import keras
from keras import layers as kl

from apps.errors import require_positive_int

POOLINGS = (None, "avg", "max")
# The moving-average momentum of every BatchNormalization layer of the image builders
# (Keras's convention: moving = momentum * moving + (1 - momentum) * batch). 0.9 is
# PyTorch's default (its momentum=0.1); keras.applications uses 0.99, whose averages
# (a ~100-step memory) still describe the early weights after a short CPU run:
# ResNet-18 after 300 steps evaluates near chance with 0.99 (see
# `benchmarks/batch_norm.py` and the README's BatchNorm section for the measurement).
BATCH_NORM_MOMENTUM = 0.9
WEIGHT_SUFFIXES = (".weights.h5", ".keras", ".h5", ".hdf5")


def check_bool(argument, value):
    """Raises unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise ValueError(
            f"{argument} must be True or False. Received: {argument}={value!r}"
        )


def check_choice(argument, value, allowed):
    """Raises unless ``value`` is one of ``allowed`` (``True`` is not ``1``)."""
    if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
        raise ValueError(
            f"{argument} must be one of {tuple(allowed)}. "
            f"Received: {argument}={value!r}"
        )


# The builders' integer check is the library's one (same message everywhere).
check_positive_int = require_positive_int


def check_rate(argument, value, why=""):
    """Raises unless ``value`` is a number in [0, 1) (a dropout rate; a momentum,
    with ``why`` saying what 1 would do)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0 <= value < 1
    ):
        raise ValueError(
            f"{argument} must be a number in [0, 1){why}. "
            f"Received: {argument}={value!r}"
        )


def check_momentum(argument, value):
    """Raises unless ``value`` is a number in [0, 1) (a moving-average momentum)."""
    check_rate(argument, value, " (1 would freeze the moving statistics)")


def batch_norm(x, name, momentum=BATCH_NORM_MOMENTUM, **kwargs):
    """A BatchNormalization layer named ``name`` with the given ``momentum``."""
    return kl.BatchNormalization(momentum=momentum, name=name, **kwargs)(x)


def check_activation(argument, value, allow_none=True):
    """Raises unless ``value`` names a Keras activation (or is None/callable)."""
    if value is None and allow_none:
        return
    error = ValueError(
        f"{argument} must be {'None, ' if allow_none else ''}a callable or the name "
        "of a Keras activation such as 'softmax', 'sigmoid', 'linear', 'relu'. "
        f"Received: {argument}={value!r}"
    )
    if callable(value):
        return
    if not isinstance(value, str):
        raise error
    try:
        keras.activations.get(value)
    except (ValueError, TypeError):
        raise error from None


def check_int_sequence(argument, value, minimum=1, allow_empty=False):
    """Returns ``value`` as a tuple of ints >= ``minimum``; raises otherwise."""
    try:
        items = tuple(value)
    except TypeError:
        items = None
    if (
        items is None
        or isinstance(value, str)
        or (not items and not allow_empty)
        or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum
            for v in items
        )
    ):
        raise ValueError(
            f"{argument} must be a {'' if allow_empty else 'non-empty '}sequence of "
            f"integers >= {minimum}. Received: {argument}={value!r}"
        )
    return tuple(int(v) for v in items)


def check_common(arguments, default_input_shape, pooling_choices=POOLINGS):
    """Validates the keras.applications-style arguments; returns the input shape.

    Args:
        arguments: the builder's arguments, ``locals()`` as its first statement:
            include_top, input_shape, classes, pooling, classifier_activation,
            dropout, weights, name (the rest are the builder's own business).
        default_input_shape: used when ``input_shape`` is None.
        pooling_choices: the allowed ``pooling`` values.

    Returns:
        ``input_shape`` as a tuple ``(height, width, channels)``.
    """
    include_top, input_shape, classes, pooling, classifier_activation, dropout = (
        arguments[key]
        for key in (
            "include_top",
            "input_shape",
            "classes",
            "pooling",
            "classifier_activation",
            "dropout",
        )
    )
    weights, name = arguments["weights"], arguments["name"]
    check_bool("include_top", include_top)
    if input_shape is None:
        input_shape = default_input_shape
    input_shape = check_image_shape(input_shape)
    if include_top:
        check_positive_int("classes", classes)
    check_choice("pooling", pooling, pooling_choices)
    check_activation("classifier_activation", classifier_activation)
    check_rate("dropout", dropout)
    check_weights(weights)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string. Received: name={name!r}")
    return input_shape


def variant(generic, *fixed):
    """Decorator giving a family's variant the signature of what it really takes.

    A variant is data passed to its family's generic builder::

        @variant(_resnet, "block", "blocks_per_stage")
        def resnet50(name="resnet50", **options):
            return _resnet("bottleneck", (3, 4, 6, 3), name=name, **options)

    Its own signature (``**options``) would say it takes anything, so the variant
    gets the generic builder's (as ``__signature__``), keyword-only, without the
    arguments it fixes (``fixed``) and with the defaults it declares itself (its
    ``name``). ``inspect.signature`` then tells the command lines' option check,
    the registry's recipe check and the tuner which options the variant takes.
    """

    def decorator(builder):
        own = inspect.signature(builder).parameters
        builder.__signature__ = inspect.Signature(
            [
                parameter.replace(
                    kind=parameter.KEYWORD_ONLY,
                    default=own[argument].default
                    if argument in own
                    else parameter.default,
                )
                for argument, parameter in inspect.signature(generic).parameters.items()
                if argument not in fixed
            ]
        )
        return builder

    return decorator


def predictions(x, classes, classifier_activation, name="predictions"):
    """The classifier's output layer, computed in float32 under a mixed-precision
    policy too (Keras's advice): softmax and the loss stay accurate, and metrics such
    as top-5 accuracy (`in_top_k`) reject bfloat16/float16 predictions."""
    return kl.Dense(
        classes, activation=classifier_activation, dtype="float32", name=name
    )(x)


def check_image_shape(input_shape):
    """Returns ``input_shape`` as ``(height, width, channels)`` or raises.

    Height and width may be ``None`` (any size); channels must be known.
    """
    error = ValueError(
        "input_shape must be (height, width, channels) with positive integers "
        "(height and width may be None). "
        f"Received: input_shape={input_shape!r}"
    )
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise error from None
    if len(shape) != 3:
        raise error
    for index, dim in enumerate(shape):
        if dim is None and index < 2:
            continue
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
            raise error
    return tuple(None if dim is None else int(dim) for dim in shape)


def check_weights(weights):
    """Raises unless ``weights`` is None or the path of an existing weights file."""
    if weights is None:
        return
    allowed = (
        "weights must be None (random initialisation) or the path to an existing "
        f"weights file ({', '.join(WEIGHT_SUFFIXES)}); no pretrained weights are "
        "downloaded."
    )
    if not isinstance(weights, str | os.PathLike):
        raise ValueError(f"{allowed} Received: weights={weights!r}")
    path = os.fspath(weights)
    if not path.endswith(WEIGHT_SUFFIXES):
        raise ValueError(f"{allowed} Received: weights={weights!r}")
    if not os.path.isfile(path):
        raise ValueError(f"{allowed} No such file: weights={weights!r}")


def check_resize(resize, input_shape, min_size, model_name, why, auto_size=None):
    """Validates ``resize`` against the input size; returns the (h, w) target or None.

    Args:
        resize: ``"auto"`` (bring a too-small input up to ``min_size``), ``False``
            (never; a too-small input is an error) or an int / ``(height, width)``
            to resize every input to.
        input_shape: the validated ``(height, width, channels)``.
        min_size: the smallest height/width the network accepts.
        model_name: for the messages.
        why: a few words saying where the minimum comes from.
        auto_size: the size ``"auto"`` brings too-small inputs to, when it is not
            ``min_size`` (at least ``min_size``).

    Returns:
        ``(height, width)`` to bring the input to, or ``None`` to leave it.
    """
    height, width = input_shape[:2]
    if resize is False:
        target = None
    elif isinstance(resize, str) and resize == "auto":
        auto_size = min_size if auto_size is None else max(auto_size, min_size)
        too_small = any(d is not None and d < auto_size for d in (height, width))
        if not too_small:
            return None
        # Only a side that is too small grows; resizing needs both sides, so an
        # unknown (None) side is fixed at the minimum.
        return tuple(
            auto_size if d is None or d < auto_size else d for d in (height, width)
        )
    elif isinstance(resize, numbers.Integral) and not isinstance(resize, bool):
        target = (int(resize), int(resize))
    elif (
        isinstance(resize, tuple | list)
        and len(resize) == 2
        and all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in resize
        )
    ):
        target = (int(resize[0]), int(resize[1]))
    else:
        raise ValueError(
            "resize must be 'auto', False, an integer or (height, width). "
            f"Received: resize={resize!r}"
        )
    if target is not None:
        if min(target) < min_size:
            raise ValueError(
                f"resize is too small for {model_name}: height and width must be at "
                f"least {min_size} ({why}). Received: resize={resize!r}"
            )
        return target
    for dim in (height, width):
        if dim is not None and dim < min_size:
            raise ValueError(
                f"input_shape is too small for {model_name}: height and width must "
                f"be at least {min_size} ({why}). Received: "
                f"input_shape={input_shape!r}. Pass resize='auto' to upsample "
                "inside the model."
            )
    return None


def check_flatten_head(include_top, input_shape, model_name):
    """A flattening classifier needs a known height and width."""
    if include_top and (input_shape[0] is None or input_shape[1] is None):
        raise ValueError(
            f"{model_name} with include_top=True flattens its feature map, so "
            "height and width must be known. Received: "
            f"input_shape={input_shape!r}"
        )


def fit_input(x, target):
    """Upsamples ``x`` to ``target`` (height, width) with a layer named ``resize``.

    Bilinear resizing keeps the image's content at the network's scale; the input
    channels are kept (a 1-channel image gives a 1-channel first convolution).
    """
    if target is None:
        return x
    return kl.Resizing(target[0], target[1], interpolation="bilinear", name="resize")(x)


def conv_output_size(size, kernel, stride, padding):
    """Spatial size after a convolution or pooling (``padding`` as in Keras)."""
    if size is None:
        return None
    if padding == "same":
        return math.ceil(size / stride)
    return (size - kernel) // stride + 1


def global_pool(x, pooling):
    """Keras-applications ``pooling`` for ``include_top=False``."""
    if pooling == "avg":
        return kl.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return kl.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def load_weights(model, weights):
    """Loads ``weights`` (checked by :func:`check_weights`) into ``model``.

    ``.weights.h5`` files load by position (Keras's own format: the same
    architecture); ``.keras`` files and legacy ``.h5``/``.hdf5`` files load by
    layer name, so a model that lacks some of the saved layers (GoogLeNet without
    its auxiliary heads) takes the weights of the layers it has.
    """
    if weights is None:
        return model
    path = os.fspath(weights)
    if path.endswith(".weights.h5"):
        model.load_weights(path)
    elif path.endswith(".keras"):
        source = keras.saving.load_model(path, compile=False)
        transfer_weights(source, model)
    else:
        model.load_weights(path, by_name=True)
    return model


def transfer_weights(source, target):
    """Copies weights from ``source`` to ``target`` layer by layer, by layer name.

    Every layer of ``target`` that has weights must exist in ``source`` with
    weights of the same shapes; layers only ``source`` has (auxiliary heads) are
    ignored.

    Args:
        source: a ``keras.Model`` to copy from.
        target: a ``keras.Model`` to copy into.

    Returns:
        The names of the layers copied.

    Raises:
        ValueError: naming the first layer missing from ``source`` or whose
            weight shapes differ.
    """
    copied = []
    source_layers = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        if not layer.weights:
            continue
        if layer.name not in source_layers:
            raise ValueError(
                f"Layer {layer.name!r} of {target.name!r} has weights but no layer "
                f"of that name exists in {source.name!r}."
            )
        values = source_layers[layer.name].get_weights()
        expected = [tuple(w.shape) for w in layer.weights]
        received = [tuple(v.shape) for v in values]
        if expected != received:
            raise ValueError(
                f"Layer {layer.name!r}: weight shapes differ. {target.name!r} has "
                f"{expected}, {source.name!r} has {received}."
            )
        layer.set_weights(values)
        copied.append(layer.name)
    return copied
