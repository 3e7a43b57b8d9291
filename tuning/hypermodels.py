"""Keras Tuner hypermodels over the registry's families.

Every hypermodel tunes one registered builder and declares the same three
hyper-parameters, under exactly these names:

- ``learning_rate``: float, log scale, from a tenth to ten times the optimiser's
  default (Adam: 1e-4 to 1e-2, default 1e-3);
- ``dropout``: float in [0, 0.5], step 0.1, default the builder's own default; it
  goes where the builder puts its dropout (see each class);
- ``depth``: int, whose meaning depends on the family:

  ==============  ==========================================  =========  =======
  model           ``depth`` is                                range      default
  ==============  ==========================================  =========  =======
  mlp             hidden layers (``width`` units each)        1-4        2
  vgg             3x3 convolutions in each of the 5 stages    1-3        2
  resnet          basic residual blocks in each of 4 stages   1-3        2
  lenet5          convolution layers, fixed by the paper      3 (fixed)  3
  lstm, gru, rnn  stacked recurrent layers (``width`` units)  1-3        1
  ==============  ==========================================  =========  =======

  ``depth`` 2 is VGG-13's layout for ``vgg`` (2 convolutions a stage) and ResNet-18
  for ``resnet``. LeNet-5's depth is the paper's and its builder has no depth
  argument, so ``depth`` is declared ``Fixed`` (the table of trials still shows it);
  its search tunes ``activation`` (tanh, relu) and ``pool_type`` (average, max).

Some families also tune ``width`` (hidden units, first-stage filters, recurrent
units). The defaults of every hyper-parameter are the builder's defaults where the
builder has one, so ``build(keras_tuner.HyperParameters())`` is the default model.

A hypermodel's constructor takes the fixed structure: input shape, classes, the
`apps.training.TrainOptions` every trial trains with, and fixed builder options
(``fc_units=512`` for VGG); ``fit`` trains through `apps.training.fit`, the one
training core, in a run directory of its own per trial.

>>> hypermodel = hypermodel_for("mlp", input_shape=(28, 28, 1), classes=10)
>>> model = hypermodel.build(keras_tuner.HyperParameters())
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import os
from pathlib import Path

import keras
import keras_tuner

import apps
from apps import training

apps.register_models()  # `python -m tuning` leaves it to us (apps/__init__)

OBJECTIVE = "val_accuracy"
TUNED = ("learning_rate", "dropout", "depth")
DROPOUT_RANGE = (0.0, 0.5, 0.1)
RESULT_FILE = "trial_result.json"


class ClassifierHyperModel(keras_tuner.HyperModel):
    """A registered classifier builder as a search space; subclasses set the family.

    Subclasses set ``model_name`` (the registry name of the builder they tune) and
    implement :meth:`architecture`, which declares ``depth`` and any family-specific
    hyper-parameters and returns the builder's keyword arguments.

    Args:
        input_shape: the model's input shape, e.g. ``(28, 28, 1)``.
        classes: number of classes (>= 2).
        options: the `apps.training.TrainOptions` of every trial (epochs, steps,
            batch size, optimiser, strategy, seed); the learning rate is tuned.
        name: the hypermodel's name (default: the model's).
        **builder_options: fixed builder arguments, e.g. ``fc_units=512``; names the
            search tunes are not allowed.

    Raises:
        ValueError: for a bad input shape, class count or builder option.
    """

    model_name: str = ""
    #: builder arguments this hypermodel tunes (beyond ``dropout``), for checks.
    tuned_arguments: tuple[str, ...] = ()

    def __init__(
        self, input_shape, classes, *, options=None, name=None, **builder_options
    ):
        self.info = apps.get_model_info(self.model_name)
        self.input_shape = _check_input_shape(input_shape)
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(
                f"classes must be an integer >= 2. Received: classes={classes!r}"
            )
        self.classes = classes
        if options is None:
            options = training.TrainOptions()
        if not isinstance(options, training.TrainOptions):
            raise ValueError(
                "options must be an apps.training.TrainOptions. "
                f"Received: options={options!r}"
            )
        self.options = options
        self.builder_options = self._check_builder_options(builder_options)
        super().__init__(name=name or self.model_name, tunable=True)

    # Search space

    def build(self, hp):
        """Declares the hyper-parameters, builds the registered model, compiles it."""
        default_rate = self._default_learning_rate()
        learning_rate = hp.Float(
            "learning_rate",
            default_rate / 10,
            default_rate * 10,
            sampling="log",
            default=default_rate,
        )
        low, high, step = DROPOUT_RANGE
        dropout = hp.Float(
            "dropout", low, high, step=step, default=self._default_dropout()
        )
        architecture = self.architecture(hp)

        model = apps.build(
            self.model_name,
            input_shape=self.input_shape,
            classes=self.classes,
            dropout=round(dropout, 6),  # 0.30000000000000004 -> 0.3
            **architecture,
            **self.builder_options,
        )
        training.compile_classifier(
            model, self.trial_options(learning_rate), self.info.loss_weights
        )
        return model

    def architecture(self, hp) -> dict:
        """Declares ``depth`` (and family knobs); returns the builder's arguments."""
        raise NotImplementedError

    def trial_options(self, learning_rate, epochs=None) -> training.TrainOptions:
        """The TrainOptions of one trial: the search's, with its learning rate."""
        changes = {"learning_rate": float(learning_rate)}
        if epochs is not None:
            changes["epochs"] = int(epochs)
        return dataclasses.replace(self.options, **changes)

    # Training

    def fit(
        self,
        hp,
        model,
        train,
        validation=None,
        *,
        run_dir,
        callbacks=(),
        epochs=None,
        initial_epoch=0,
        **kwargs,
    ):
        """Trains one trial through `apps.training.fit`; returns its whole History.

        Args:
            hp: the trial's hyper-parameters.
            model: the compiled model from :meth:`build`.
            train, validation: as `apps.training.fit` takes them (a stream factory
                or endless dataset, and a finite dataset).
            run_dir: the trial's run directory; re-running with it resumes the
                trial from its last saved state, and a finished trial is not
                trained again.
            callbacks: Keras Tuner's callbacks (best-epoch checkpoint, ...), run
                by the training loop with its own.
            epochs, initial_epoch: Hyperband's budget for this trial (cumulative
                epochs, and those its weights already had); otherwise the
                options' epochs.
            **kwargs: passed through to `apps.training.fit` (``strategy``).

        Returns:
            A ``keras.callbacks.History`` of every epoch of the trial, resumed
            sessions included; Keras Tuner scores its best ``val_accuracy``.

        Raises:
            keras_tuner.errors.FailedTrialError: the loss became NaN (retrying the
                same hyper-parameters would not help).
        """
        run_dir = Path(run_dir)
        if epochs is not None:
            epochs = max(int(epochs) - int(initial_epoch), 1)
        options = self.trial_options(hp.get("learning_rate"), epochs)
        finished = _finished_history(run_dir, options.epochs)
        if finished is not None:  # killed after training, before the oracle knew
            return _as_history(finished)
        try:
            training.fit(
                model,
                train,
                validation,
                run_dir,
                options,
                extra_callbacks=list(callbacks),
                monitor=OBJECTIVE,
                **kwargs,
            )
        except training.TrainingError as error:
            raise keras_tuner.errors.FailedTrialError(str(error)) from error
        history = training.read_history(run_dir)
        if OBJECTIVE not in history:
            raise keras_tuner.errors.FatalValueError(
                f"the trial reported no {OBJECTIVE}: the search needs validation "
                "data (a validation split > 0)."
            )
        if training.is_chief(kwargs.get("strategy") or _current_strategy()):
            _write_json(run_dir / RESULT_FILE, {"history": history})
        return _as_history(history)

    # Defaults and checks

    def _default_learning_rate(self) -> float:
        return self.options.resolved_learning_rate

    def _default_dropout(self) -> float:
        default = self._builder_default("dropout", 0.0)
        low, high, step = DROPOUT_RANGE
        return min(max(round(round(default / step) * step, 6), low), high)

    def _builder_default(self, argument, fallback):
        parameter = inspect.signature(self.info.builder).parameters.get(argument)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            return fallback
        return parameter.default

    def _check_builder_options(self, builder_options) -> dict:
        parameters = inspect.signature(self.info.builder).parameters
        fixed = {"input_shape", "classes", "name", "dropout", *self.tuned_arguments}
        tuned = sorted(key for key in builder_options if key in fixed)
        if tuned:
            raise ValueError(
                f"{self.model_name}'s hypermodel sets {tuned} itself (tuned or "
                f"fixed by the search); leave them out. Received: {tuned}"
            )
        unknown = sorted(key for key in builder_options if key not in parameters)
        if unknown:
            allowed = sorted(set(parameters) - fixed)
            raise ValueError(
                f"{self.model_name} does not take {unknown}. Its fixed options: "
                f"{allowed}"
            )
        return dict(builder_options)


class MLPHyperModel(ClassifierHyperModel):
    """The multilayer perceptron (``mlp``).

    ``depth``: hidden layers, 1 to 4 (default 2); ``width``: units of each, 64 to 512
    (default 128, the builder's); ``dropout`` follows each hidden layer.
    """

    model_name = "mlp"
    tuned_arguments = ("hidden_units", "depth", "width")

    def architecture(self, hp) -> dict:
        depth = hp.Int("depth", 1, 4, default=2)
        width = hp.Choice("width", [64, 128, 256, 512], default=128)
        return {"depth": depth, "width": width}


class VGGHyperModel(ClassifierHyperModel):
    """VGG with a configurable depth (``vgg``).

    ``depth``: 3x3 convolutions in each of the five stages, 1 to 3 (default 2,
    VGG-13's layout; VGG-11 has 1-1-2-2-2, VGG-16 2-2-3-3-3); ``width``: filters of
    the first stage, doubled per stage up to 8x (16, 32 or 64, default 64 as in the
    paper); ``dropout`` follows fc1 and fc2 (default 0.5, the paper's). Fix the size
    of fc1/fc2 with ``fc_units`` (4096 by default: pass ``fc_units=512`` for 28-32
    pixel images on a CPU).
    """

    model_name = "vgg"
    tuned_arguments = ("convs_per_stage", "width")

    def architecture(self, hp) -> dict:
        depth = hp.Int("depth", 1, 3, default=2)
        width = hp.Choice("width", [16, 32, 64], default=64)
        return {"convs_per_stage": depth, "width": width}


class ResNetHyperModel(ClassifierHyperModel):
    """ResNet v1 with a configurable depth (``resnet``).

    ``depth``: residual blocks in each of the four stages, 1 to 3 (default 2:
    ResNet-18 with basic blocks; 1 is ResNet-10, 3 ResNet-26); ``width``: filters
    of the first stage, doubled per stage (16, 32 or 64, default 64, the paper's);
    ``dropout`` sits before ``predictions``. Blocks are ``basic`` unless
    ``block="bottleneck"`` is given; inputs smaller than 64 pixels get the 3x3
    stride-1 stem (``small_inputs=True``) unless ``small_inputs`` is given.
    """

    model_name = "resnet"
    tuned_arguments = ("blocks_per_stage", "width")
    STAGES = 4

    def __init__(self, input_shape, classes, **kwargs):
        kwargs.setdefault("block", "basic")
        shape = _check_input_shape(input_shape)
        small = len(shape) == 3 and all(d is not None and d < 64 for d in shape[:2])
        kwargs.setdefault("small_inputs", small)
        super().__init__(shape, classes, **kwargs)

    def architecture(self, hp) -> dict:
        depth = hp.Int("depth", 1, 3, default=2)
        width = hp.Choice("width", [16, 32, 64], default=64)
        return {"blocks_per_stage": (depth,) * self.STAGES, "width": width}


class LeNetHyperModel(ClassifierHyperModel):
    """LeNet-5 (``lenet5``).

    ``depth`` is fixed at 3 (C1, C3, C5: the paper's network, which has no depth
    argument); the search tunes ``activation`` (``tanh``, the paper's, or ``relu``)
    and ``pool_type`` (``average``, the paper's, or ``max``); ``dropout`` follows
    F6.
    """

    model_name = "lenet5"
    tuned_arguments = ("activation", "pool_type")
    CONVOLUTIONS = 3

    def architecture(self, hp) -> dict:
        hp.Fixed("depth", self.CONVOLUTIONS)
        activation = hp.Choice("activation", ["tanh", "relu"], default="tanh")
        pool_type = hp.Choice("pool_type", ["average", "max"], default="average")
        return {"activation": activation, "pool_type": pool_type}


class RecurrentHyperModel(ClassifierHyperModel):
    """Recurrent classifiers (``rnn``, ``lstm``, ``gru``); images are read row by row.

    ``depth``: stacked recurrent layers, 1 to 3 (default 1, the builder's);
    ``width``: units of each (32 to 256, default 128, the builder's); ``dropout``
    follows each recurrent layer.
    """

    model_name = "lstm"
    tuned_arguments = ("units", "depth")

    def architecture(self, hp) -> dict:
        depth = hp.Int("depth", 1, 3, default=1)
        width = hp.Choice("width", [32, 64, 128, 256], default=128)
        return {"depth": depth, "units": width}


class SimpleRNNHyperModel(RecurrentHyperModel):
    """Elman's simple recurrent network (``rnn``); see `RecurrentHyperModel`."""

    model_name = "rnn"


class GRUHyperModel(RecurrentHyperModel):
    """The gated recurrent unit (``gru``); see `RecurrentHyperModel`."""

    model_name = "gru"


HYPERMODELS = {
    cls.model_name: cls
    for cls in (
        MLPHyperModel,
        VGGHyperModel,
        ResNetHyperModel,
        LeNetHyperModel,
        SimpleRNNHyperModel,
        RecurrentHyperModel,
        GRUHyperModel,
    )
}


class UnknownHyperModelError(ValueError):
    """``--model`` names nothing the search can tune; the message says what can."""


def tunable_models() -> list[str]:
    """Names `hypermodel_for` accepts: hypermodels whose builder is registered."""
    registered = set(apps.list_models())
    return sorted(name for name in HYPERMODELS if name in registered)


def unavailable_models() -> list[str]:
    """Hypermodels whose builder this checkout does not register (yet)."""
    return sorted(set(HYPERMODELS) - set(tunable_models()))


def resolve_model(name) -> str:
    """The tunable model for ``name``: a tunable model name, or a family with one.

    Raises:
        UnknownHyperModelError: naming what can be tuned, with the closest names,
            or the family's tunable model for a fixed configuration (``vgg16``).
    """
    tunable = tunable_models()
    if name in tunable:
        return name
    if name in HYPERMODELS:
        raise UnknownHyperModelError(
            f"{name!r} has a hypermodel but its builder is not registered in this "
            f"checkout (apps.list_models() lacks it). Tunable models: {tunable}"
        )
    families = {}
    for model in tunable:
        families.setdefault(apps.get_model_info(model).family, []).append(model)
    if name in families and len(families[name]) == 1:
        return families[name][0]
    if name in families:
        raise UnknownHyperModelError(
            f"{name!r} is a family of several tunable models; choose one of "
            f"{families[name]}."
        )
    if isinstance(name, str) and name in apps.list_models():
        family = apps.get_model_info(name).family
        if family in families:
            raise UnknownHyperModelError(
                f"{name!r} is a fixed configuration of the {family!r} family; tune "
                f"the family's configurable model instead: --model "
                f"{families[family][0]}."
            )
        raise UnknownHyperModelError(
            f"{name!r} is registered but no hypermodel covers its family "
            f"({family!r}). Tunable models: {tunable}"
        )
    close = difflib.get_close_matches(str(name), tunable + sorted(families), n=3)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise UnknownHyperModelError(
        f"Unknown model to tune: {name!r}.{hint} Tunable models: {tunable}"
    )


def hypermodel_for(name, input_shape, classes, **kwargs) -> ClassifierHyperModel:
    """The hypermodel of ``name`` (see :func:`resolve_model`) for this data."""
    return HYPERMODELS[resolve_model(name)](input_shape, classes, **kwargs)


# Helpers


def read_trial_result(run_dir) -> dict | None:
    """The recorded result of a finished trial in ``run_dir``, or None."""
    path = Path(run_dir) / RESULT_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finished_history(run_dir: Path, epochs: int) -> dict | None:
    """The history of a trial whose training finished in ``run_dir``, or None.

    Finished: its result was recorded, or the training core saved the final model
    and cleared the run state (a kill can fall between that and the record).
    """
    result = read_trial_result(run_dir)
    if result is not None:
        return result["history"]
    if not (run_dir / "model.keras").is_file() or (run_dir / "state").exists():
        return None
    history = training.read_history(run_dir)
    return history if len(history.get(OBJECTIVE, ())) >= epochs else None


def _as_history(history: dict) -> keras.callbacks.History:
    record = keras.callbacks.History()
    record.history = {key: list(values) for key, values in history.items()}
    return record


def _current_strategy():
    import tensorflow as tf

    return tf.distribute.get_strategy()


def _write_json(path, data) -> None:
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(temporary, path)


def _check_input_shape(input_shape) -> tuple:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if not shape or any(
        not (d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0))
        for d in shape
    ):
        raise ValueError(
            "input_shape must be a non-empty tuple of positive integers, such as "
            f"(28, 28, 1). Received: input_shape={input_shape!r}"
        )
    return shape
