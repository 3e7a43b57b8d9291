"""What a hyper-parameter search may tune in a model, and over which range.

A family module states its search space where it registers the model, as the
``hyperparameters=`` mapping of `apps.registry.register_model`: the hyper-parameter's
name (what the trials' table shows) -> one of the specs below, or ``None`` for a
builder argument offered for tuning without a range::

    @register_model(..., hyperparameters={
        "depth": Int(1, 3, default=2, argument="convs_per_stage"),
        "width": Choice((16, 32, 64), default=64),
        "fc_units": None,
    })

`tuning.hypermodels` declares the specs to Keras Tuner in this order (the random
oracle's draws depend on it), after the learning rate and dropout every hypermodel
tunes. No TensorFlow here: the registry and ``--help`` import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Spec:
    """Where a tuned value goes in the builder.

    Attributes:
        argument: the builder keyword it fills, when it is not the hyper-parameter's
            name (``depth`` is VGG's ``convs_per_stage``); ``None``: the same name.
        repeat: pass the value as a tuple of this many copies (ResNet's
            ``blocks_per_stage``, one entry per stage); ``None``: as it is.
        excludes: builder keywords that a fixed option may not set next to it
            (the MLP's ``hidden_units`` replaces ``depth`` and ``width``).
    """

    argument: str | None = dataclasses.field(default=None, kw_only=True)
    repeat: int | None = dataclasses.field(default=None, kw_only=True)
    excludes: tuple[str, ...] = dataclasses.field(default=(), kw_only=True)

    def builder_argument(self, name: str) -> str | None:
        """The builder keyword this spec fills under hyper-parameter ``name``."""
        return self.argument or name

    def builder_value(self, value):
        """The builder's value for a tuned ``value``."""
        return value if self.repeat is None else (value,) * self.repeat


@dataclasses.dataclass(frozen=True)
class Int(Spec):
    """An integer in [min_value, max_value] (Keras Tuner's ``hp.Int``)."""

    min_value: int
    max_value: int
    step: int | None = None
    sampling: str = "linear"
    default: int | None = None


@dataclasses.dataclass(frozen=True)
class Float(Spec):
    """A float in [min_value, max_value], ``linear`` or ``log`` (``hp.Float``)."""

    min_value: float
    max_value: float
    step: float | None = None
    sampling: str = "linear"
    default: float | None = None


@dataclasses.dataclass(frozen=True)
class Choice(Spec):
    """One of ``values`` (``hp.Choice``)."""

    values: tuple
    default: Any = None

    def __post_init__(self):
        object.__setattr__(self, "values", tuple(self.values))


@dataclasses.dataclass(frozen=True)
class Boolean(Spec):
    """True or False (``hp.Boolean``)."""

    default: bool = False


@dataclasses.dataclass(frozen=True)
class Recorded(Spec):
    """A value shown with every trial but not tuned nor passed to the builder
    (``hp.Fixed``): LeNet-5's depth is the paper's, its builder has no argument."""

    value: Any

    def builder_argument(self, name: str) -> None:
        return None


@dataclasses.dataclass(frozen=True)
class Default(Spec):
    """Not tuned: the value the search builds with unless a fixed option sets it
    (ResNet's ``block="basic"``). A callable is called with the input shape."""

    value: Any


def input_smaller_than(size: int) -> Callable[[tuple], bool]:
    """For `Default`: True for image inputs whose height and width are under
    ``size`` (ResNet's small-input stem for 28-32 pixel images)."""

    def smaller(input_shape) -> bool:
        return len(input_shape) == 3 and all(
            d is not None and d < size for d in input_shape[:2]
        )

    return smaller
