"""Training recipes: how each registered model is trained by default.

A recipe is to a model what timm's ``pretrained_cfg`` and big_vision's configs are:
the input size and how a 28x28 Fashion-MNIST image reaches it, the optimiser, its
learning rate and schedule (with warm-up where the model needs it), weight decay,
batch size, epochs, augmentation and label smoothing, plus the model options
(``small_inputs=True``) the model is trained with. A model registers its recipe
with :func:`apps.registry.register_model`; ``python -m apps.classify train --model
NAME`` starts from it, every flag overrides it, and ``run.json`` records the
resolved values and where each came from.

Recipes are chosen on Fashion-MNIST, not copied from the ImageNet papers: each says
in ``chosen_by`` which measurement it rests on (``benchmarks/zoo.py`` measures them
all), or that it is provisional.

Budgets: ``full`` is the recipe itself (meant for a GPU); ``cpu`` cuts it to what a
2-core CPU trains in about 45 minutes (``cpu_budget``: epochs and steps per epoch,
the augmentation where a run that short learns more without it, and the share held
out for validation where the cut trains on all the training images).

>>> recipe = Recipe(epochs=20, learning_rate=2e-3, augment="flip")
>>> resolved, sources = resolve(recipe, {"epochs": 3, "batch_size": None})
>>> resolved["epochs"], sources["epochs"], sources["learning_rate"]
(3, 'flag', 'recipe')
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping

BUDGETS = ("cpu", "full")

# What `classify train` uses for a model without a recipe, and for every field a
# recipe leaves unset (the values `classify train` always had).
DEFAULTS = types.MappingProxyType(
    {
        "epochs": 10,
        "batch_size": 128,
        "optimizer": "adam",
        "learning_rate": None,  # the optimiser's default rate
        "lr_schedule": "cosine",
        "warmup_epochs": 0,
        "weight_decay": 0.0,
        "label_smoothing": 0.0,
        "augment": "none",
        "image_size": None,  # the dataset's
    }
)
TRAINING_FIELDS = tuple(DEFAULTS)
CPU_BUDGET_KEYS = ("epochs", "steps_per_epoch", "augment", "validation_split")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A model's default training on Fashion-MNIST (fields left ``None``: DEFAULTS).

    Attributes:
        epochs, batch_size (per replica), optimizer, learning_rate, lr_schedule,
        warmup_epochs, weight_decay, label_smoothing, augment: as the flags of
            ``python -m apps.classify train`` of the same names.
        image_size: ``(height, width)`` the pipeline resizes images to, or ``None``
            for the dataset's own size (the model may still upsample inside, see
            ``input``).
        model_options: builder keyword arguments (``{"small_inputs": True}``).
        cpu_budget: ``{"epochs": E, "steps_per_epoch": S}`` of the ``cpu`` budget
            (empty: the recipe fits in it as it is), optionally with ``"augment"``
            (``"none"``: a model that underfits in a few epochs of augmented data)
            and ``"validation_split"`` (``0.0``: the cut trains on the whole
            training split, its schedule having been chosen on a held-out one).
        input: how a 28x28 image reaches the network, in words.
        chosen_by: the measurement the recipe rests on, or "provisional: ...".
    """

    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    lr_schedule: str | None = None
    warmup_epochs: int | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    augment: str | None = None
    image_size: tuple[int, int] | None = None
    model_options: Mapping = dataclasses.field(default_factory=dict)
    cpu_budget: Mapping = dataclasses.field(default_factory=dict)
    input: str = "28x28 as it is"
    chosen_by: str = "provisional: not measured yet"

    def __post_init__(self):
        _check_positive("epochs", self.epochs)
        _check_positive("batch_size", self.batch_size)
        _check_positive("learning_rate", self.learning_rate, integer=False)
        if self.warmup_epochs is not None and self.warmup_epochs < 0:
            raise ValueError(
                f"warmup_epochs must be >= 0. Received: {self.warmup_epochs!r}"
            )
        for name in ("weight_decay", "label_smoothing"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1). Received: {value!r}")
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(self.image_size))
            if len(self.image_size) != 2:
                raise ValueError(
                    f"image_size must be (height, width). Received: {self.image_size}"
                )
            for side in self.image_size:
                _check_positive("image_size", side)
        self._check_cpu_budget()
        # Frozen all the way down.
        for name in ("model_options", "cpu_budget"):
            value = types.MappingProxyType(dict(getattr(self, name)))
            object.__setattr__(self, name, value)

    def _check_cpu_budget(self):
        unknown = sorted(set(self.cpu_budget) - set(CPU_BUDGET_KEYS))
        if unknown:
            raise ValueError(
                f"cpu_budget takes {', '.join(map(repr, CPU_BUDGET_KEYS))}. "
                f"Received: {unknown}"
            )
        for key, value in self.cpu_budget.items():
            if key == "augment":
                from apps.data.images import parse_augment

                if not isinstance(value, str):
                    raise ValueError(
                        f"cpu_budget['augment'] must be a string. Received: {value!r}"
                    )
                parse_augment(value)
            elif key == "validation_split":
                if not isinstance(value, (int, float)) or not 0 <= value < 1:
                    raise ValueError(
                        "cpu_budget['validation_split'] must be in [0, 1). "
                        f"Received: {value!r}"
                    )
            else:
                _check_positive(f"cpu_budget[{key!r}]", value)

    def training(self) -> dict:
        """The training fields the recipe sets (those left ``None`` omitted)."""
        return {
            name: getattr(self, name)
            for name in TRAINING_FIELDS
            if getattr(self, name) is not None
        }

    def budget(self, name: str) -> dict:
        """Epochs and steps per epoch of a budget: ``"full"`` is the recipe's whole
        schedule (``steps_per_epoch`` None: every batch), ``"cpu"`` the cut (with
        ``"augment"`` where the cut trains with other augmentation, and
        ``"validation_split"`` where it holds out another share)."""
        if name not in BUDGETS:
            raise ValueError(f"budget must be one of {BUDGETS}. Received: {name!r}")
        full = {
            "epochs": self.epochs or DEFAULTS["epochs"],
            "steps_per_epoch": None,
        }
        return {**full, **self.cpu_budget} if name == "cpu" else full


def resolve(recipe: Recipe | None, flags: Mapping) -> tuple[dict, dict]:
    """The training values a run uses: a flag that was given (not ``None``) wins
    over the recipe, the recipe over :data:`DEFAULTS`.

    Args:
        recipe: the model's recipe, or ``None``.
        flags: command-line values by field name; ``None`` means "not given".
            Names outside :data:`TRAINING_FIELDS` are ignored.

    Returns:
        ``(values, sources)``: every training field's value, and for each whether it
        came from the ``"flag"``, the ``"recipe"`` or the ``"default"``.
    """
    from_recipe = recipe.training() if recipe is not None else {}
    values, sources = {}, {}
    for name in TRAINING_FIELDS:
        if flags.get(name) is not None:
            values[name], sources[name] = flags[name], "flag"
        elif name in from_recipe:
            values[name], sources[name] = from_recipe[name], "recipe"
        else:
            values[name], sources[name] = DEFAULTS[name], "default"
    return values, sources


def describe(recipe: Recipe) -> str:
    """One line for listings: ``adam 2e-3 cosine, 20 epochs of 128, flip``."""
    values, _ = resolve(recipe, {})
    rate = values["learning_rate"]
    parts = [
        f"{values['optimizer']} {rate:g}" if rate else values["optimizer"],
        values["lr_schedule"],
        f"{values['epochs']} epoch{'' if values['epochs'] == 1 else 's'} of "
        f"{values['batch_size']}",
    ]
    if values["warmup_epochs"]:
        parts.append(f"{values['warmup_epochs']} warm-up")
    if values["weight_decay"]:
        parts.append(f"wd {values['weight_decay']:g}")
    if values["label_smoothing"]:
        parts.append(f"smoothing {values['label_smoothing']:g}")
    if values["augment"] != "none":
        parts.append(values["augment"])
    return ", ".join(parts)


def _check_positive(name, value, integer=True):
    if value is None:
        return
    kind = int if integer else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kind)
        or not math.isfinite(value)
        or value <= 0
    ):
        what = "a positive integer" if integer else "a positive, finite number"
        raise ValueError(f"{name} must be {what}. Received: {value!r}")
