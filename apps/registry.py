"""The model registry: one place that knows every model and its metadata.

Builders register themselves with :func:`register_model`; command lines, tuning and
benchmarks look them up here and nowhere else.

>>> import apps
>>> apps.list_models("resnet*")[:2]
['resnet', 'resnet101']
>>> model = apps.build("lenet5", classes=10)
>>> apps.registry.get_model_info("lenet5").default_input_shape
(28, 28, 1)
"""

import dataclasses
import difflib
import fnmatch
import inspect
import re
import types
from collections.abc import Callable, Mapping
from typing import Any

from apps import search_spaces
from apps.recipes import Recipe

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_SUGGESTIONS = 3

# name -> ModelInfo, filled by @register_model as the family modules are imported.
_REGISTRY: dict[str, "ModelInfo"] = {}


class UnknownModelError(ValueError):
    """Raised for a model name that is not registered; lists the closest names.

    Attributes:
        name: the name that was asked for.
        suggestions: registered names close to it, best first (may be empty).
    """

    def __init__(self, name, suggestions=()):
        self.name = name
        self.suggestions = tuple(suggestions)
        if self.suggestions:
            hint = "Did you mean " + " or ".join(repr(s) for s in self.suggestions)
            hint += "?"
        else:
            hint = "Call apps.list_models() to see the registered names."
        super().__init__(f"Unknown model name: {name!r}. {hint}")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model.

    Attributes:
        name: registry name, lowercase (``"vgg16"``).
        builder: the function returning an uncompiled ``keras.Model``.
        family: architecture family (``"vgg"``, ``"resnet"``, ...).
        paper: the reference, authors, title, venue and year.
        task: what the model does; ``"image_classification"`` unless stated.
        default_input_shape: the input shape the builder uses when given none
            (``(224, 224, 3)`` for the ImageNet networks), or ``None``.
        min_input_size: smallest height/width the network itself accepts at its
            default options; image builders upsample (or, for LeNet, zero-pad)
            smaller inputs inside the model unless ``resize=False``.
        hyperparameters: the builder keyword arguments meant for tuning
            (``("dropout", "convs_per_stage", "width")``).
        search_space: what a search tunes and over which range, hyper-parameter
            name -> `apps.search_spaces` spec, in the order it is declared (empty:
            the model is not tunable); see :func:`register_model`.
        loss_weights: per-output loss weights for models with several outputs
            (GoogLeNet's auxiliary classifiers), keyed by output layer name, or
            ``None``. Only the outputs the built model has apply.
        description: one line for listings.
        recipe: how ``python -m apps.classify train`` trains it by default
            (:class:`apps.recipes.Recipe`), or ``None`` for the command's defaults.
    """

    name: str
    builder: Callable[..., Any]
    family: str
    paper: str
    task: str = "image_classification"
    default_input_shape: tuple | None = None
    min_input_size: int | None = None
    hyperparameters: tuple[str, ...] = ()
    search_space: Mapping[str, search_spaces.Spec] = dataclasses.field(
        default_factory=dict
    )
    loss_weights: Mapping[str, float] | None = None
    description: str = ""
    recipe: Recipe | None = None

    def __post_init__(self):
        # Frozen all the way down: tuples and a read-only mapping.
        if self.default_input_shape is not None:
            object.__setattr__(
                self, "default_input_shape", tuple(self.default_input_shape)
            )
        object.__setattr__(self, "hyperparameters", tuple(self.hyperparameters))
        object.__setattr__(
            self, "search_space", types.MappingProxyType(dict(self.search_space))
        )
        if self.loss_weights is not None:
            object.__setattr__(
                self, "loss_weights", types.MappingProxyType(dict(self.loss_weights))
            )


def register_model(
    name=None,
    *,
    family,
    paper,
    task="image_classification",
    default_input_shape=None,
    min_input_size=None,
    hyperparameters=(),
    loss_weights=None,
    description=None,
    recipe=None,
):
    """Decorator registering a model builder under ``name`` (default: its name).

    Args:
        name: registry name, lowercase letters, digits and ``_``; defaults to the
            decorated function's ``__name__``.
        family, paper, task, default_input_shape, min_input_size, loss_weights,
        recipe: the metadata, see :class:`ModelInfo`; a recipe's model options
            must be arguments the builder takes.
        hyperparameters: the builder arguments meant for tuning, as names, or as a
            mapping hyper-parameter name -> `apps.search_spaces` spec (the range
            a search tunes it over) or ``None`` (a builder argument without a
            range). A mapping with specs makes the model tunable (`tuning`).
        description: one line; defaults to the first line of the docstring.

    Returns:
        The decorator, which returns the builder unchanged.

    Raises:
        ValueError: for a badly formed or already registered name, or a search
            space naming what the builder does not take.
    """

    def decorator(builder):
        model_name = builder.__name__ if name is None else name
        if not isinstance(model_name, str) or not _NAME_PATTERN.match(model_name):
            raise ValueError(
                "A model name must be lowercase letters, digits and '_', starting "
                f"with a letter. Received: name={model_name!r}"
            )
        if model_name in _REGISTRY:
            previous = _REGISTRY[model_name].builder
            raise ValueError(
                f"Model {model_name!r} is already registered (by "
                f"{previous.__module__}.{previous.__qualname__}); names must be "
                "unique."
            )
        _check_recipe(model_name, builder, recipe)
        names, search_space = _split_hyperparameters(
            model_name, builder, hyperparameters
        )
        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY[model_name] = ModelInfo(
            name=model_name,
            builder=builder,
            family=family,
            paper=paper,
            task=task,
            default_input_shape=default_input_shape,
            min_input_size=min_input_size,
            hyperparameters=names,
            search_space=search_space,
            loss_weights=loss_weights,
            description=description if description is not None else (doc or [""])[0],
            recipe=recipe,
        )
        return builder

    return decorator


def _check_recipe(name, builder, recipe):
    if recipe is None:
        return
    if not isinstance(recipe, Recipe):
        raise ValueError(
            f"{name}: recipe must be an apps.recipes.Recipe. Received: {recipe!r}"
        )
    parameters = inspect.signature(builder).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(recipe.model_options) - set(parameters))
    if unknown:
        raise ValueError(
            f"{name}: the recipe's model_options {unknown} are not arguments of "
            f"{builder.__qualname__}. Its arguments: {sorted(parameters)}"
        )


def _split_hyperparameters(name, builder, hyperparameters):
    """`(builder argument names, search space)` from `register_model`'s
    ``hyperparameters``: names, or a mapping name -> spec or None."""
    if not isinstance(hyperparameters, Mapping):
        return tuple(hyperparameters), {}
    names, space = [], {}
    for key, spec in hyperparameters.items():
        if spec is not None and not isinstance(spec, search_spaces.Spec):
            raise ValueError(
                f"{name}: hyperparameters[{key!r}] must be an apps.search_spaces "
                f"spec or None. Received: {spec!r}"
            )
        argument = key if spec is None else spec.builder_argument(key)
        if argument is not None and argument not in names:
            names.append(argument)
        if spec is not None:
            space[key] = spec
    parameters = inspect.signature(builder).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(names) - set(parameters))
        if unknown:
            raise ValueError(
                f"{name}: the hyperparameters {unknown} are not arguments of "
                f"{builder.__qualname__}. Its arguments: {sorted(parameters)}"
            )
    return tuple(names), space


def list_models(pattern="*", task=None):
    """Registered model names matching a shell-style ``pattern``, sorted.

    Args:
        pattern: an ``fnmatch`` pattern (``"resnet*"``); ``"*"`` lists all.
        task: keep only the models of this task (``"image_classification"``).

    Returns:
        A sorted list of names.
    """
    return sorted(
        name
        for name, info in _REGISTRY.items()
        if fnmatch.fnmatchcase(name, pattern) and (task is None or info.task == task)
    )


def _normalise(name):
    return str(name).lower().replace("-", "").replace("_", "")


def _suggestions(name):
    names = list(_REGISTRY)
    found = difflib.get_close_matches(str(name), names, n=_MAX_SUGGESTIONS)
    # Also match spellings such as "ResNet-50" or "vgg16bn" after normalising.
    by_normal = {}
    for registered in names:
        by_normal.setdefault(_normalise(registered), registered)
    for match in difflib.get_close_matches(
        _normalise(name), list(by_normal), n=_MAX_SUGGESTIONS
    ):
        if by_normal[match] not in found:
            found.append(by_normal[match])
    return found[:_MAX_SUGGESTIONS]


def get_model_info(name):
    """The :class:`ModelInfo` of a registered model.

    Raises:
        UnknownModelError: (a ``ValueError``) naming the closest registered names.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownModelError(name, _suggestions(name)) from None


def build(name, /, **kwargs):
    """Builds the registered model ``name`` with the builder's keyword arguments.

    Keyword arguments whose value is ``None`` are dropped, so that command-line
    flags left unset (``None``) fall back to the builder's defaults. To get logits
    from an image classifier through ``build``, pass
    ``classifier_activation="linear"`` (``None`` would be dropped). ``name`` is
    positional-only, so ``build("vgg16", name="my_vgg")`` names the model.

    >>> model = build("resnet18", classes=10, input_shape=(28, 28, 1))

    Returns:
        An uncompiled ``keras.Model``.

    Raises:
        UnknownModelError: for an unregistered name, with suggestions.
        ValueError: from the builder, for invalid arguments.
    """
    info = get_model_info(name)
    options = {key: value for key, value in kwargs.items() if value is not None}
    return info.builder(**options)
