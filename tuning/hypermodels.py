"""Keras Tuner hypermodels over the registry's families.

A registered model is tunable when its registry entry has a search space
(``hyperparameters={...}`` with `apps.search_spaces` specs, see
`apps.get_model_info(name).search_space`); :class:`ClassifierHyperModel` turns that
entry into a Keras Tuner search space and calls the registered builder. Every
hypermodel declares, in this order:

- ``learning_rate``: float, log scale, from a tenth to ten times the optimiser's
  default (Adam: 1e-4 to 1e-2, default 1e-3);
- ``dropout``: float in [0, 0.5], step 0.1, default the builder's own default; it
  goes where the builder puts its dropout;
- the family's own, from the registry: ``depth`` (hidden layers of the MLP, 3x3
  convolutions per VGG stage, residual blocks per ResNet stage, stacked recurrent
  layers; LeNet-5's is the paper's and only recorded), ``width``, LeNet-5's
  ``activation`` and ``pool_type``.

The defaults of every hyper-parameter are the builder's defaults where the builder
has one, so ``build(keras_tuner.HyperParameters())`` is the default model.

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
from pathlib import Path

import keras
import keras_tuner

import apps
from apps import runs, search_spaces, training

apps.register_models()  # `python -m tuning` leaves it to us (apps/__init__)

OBJECTIVE = "val_accuracy"
# Every hypermodel's (depth: each tunable family's registry entry has one).
TUNED = ("learning_rate", "dropout", "depth")
DROPOUT_RANGE = (0.0, 0.5, 0.1)
RESULT_FILE = "trial_result.json"


class ClassifierHyperModel(keras_tuner.HyperModel):
    """A registered classifier builder as a search space: its registry entry's.

    Args:
        model_name: a tunable registry name (see :func:`tunable_models`).
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

    def __init__(
        self,
        model_name,
        input_shape,
        classes,
        *,
        options=None,
        name=None,
        **builder_options,
    ):
        self.model_name = model_name
        self.info = apps.get_model_info(model_name)
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
        self.builder_options = {
            **self._search_defaults(),
            **self._check_builder_options(builder_options),
        }
        super().__init__(name=name or model_name, tunable=True)

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
        """Declares the registry's search space; returns the builder's arguments."""
        arguments = {}
        for name, spec in self._tuned().items():
            value = _declare(hp, name, spec)
            argument = spec.builder_argument(name)
            if argument is not None:
                arguments[argument] = spec.builder_value(value)
        return arguments

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
            runs.write_json(run_dir / RESULT_FILE, {"history": history})
        return _as_history(history)

    # Defaults and checks

    def _default_learning_rate(self) -> float:
        return self.options.resolved_learning_rate

    def _default_dropout(self) -> float:
        default = self._builder_default("dropout", 0.0)
        low, high, step = DROPOUT_RANGE
        return min(max(round(round(default / step) * step, 6), low), high)

    def _tuned(self) -> dict:
        """The registry's search space less its `Default` entries, in order."""
        return {
            name: spec
            for name, spec in self.info.search_space.items()
            if not isinstance(spec, search_spaces.Default)
        }

    def _search_defaults(self) -> dict:
        """The builder values the search uses unless a fixed option sets them."""
        return {
            name: spec.value(self.input_shape) if callable(spec.value) else spec.value
            for name, spec in self.info.search_space.items()
            if isinstance(spec, search_spaces.Default)
        }

    def _builder_default(self, argument, fallback):
        parameter = inspect.signature(self.info.builder).parameters.get(argument)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            return fallback
        return parameter.default

    def _check_builder_options(self, builder_options) -> dict:
        parameters = inspect.signature(self.info.builder).parameters
        searched = {
            argument
            for name, spec in self._tuned().items()
            for argument in (spec.builder_argument(name), *spec.excludes)
            if argument is not None
        }
        fixed = {"input_shape", "classes", "name", "dropout", *searched}
        set_here = sorted(key for key in builder_options if key in fixed)
        if set_here:
            raise ValueError(
                f"{self.model_name}'s hypermodel sets {set_here} itself (tuned or "
                f"fixed by the search); leave them out. Received: {set_here}"
            )
        unknown = sorted(key for key in builder_options if key not in parameters)
        if unknown:
            allowed = sorted(set(parameters) - fixed)
            raise ValueError(
                f"{self.model_name} does not take {unknown}. Its fixed options: "
                f"{allowed}"
            )
        return dict(builder_options)


class UnknownHyperModelError(ValueError):
    """``--model`` names nothing the search can tune; the message says what can."""


def tunable_models() -> list[str]:
    """Names `hypermodel_for` accepts: registered models with a search space."""
    return [
        name for name in apps.list_models() if apps.get_model_info(name).search_space
    ]


def resolve_model(name) -> str:
    """The tunable model for ``name``: a tunable model name, or a family with one.

    Raises:
        UnknownHyperModelError: naming what can be tuned, with the closest names,
            or the family's tunable model for a fixed configuration (``vgg16``).
    """
    tunable = tunable_models()
    if name in tunable:
        return name
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
            f"{name!r} is registered but its family ({family!r}) has no search "
            f"space in the registry. Tunable models: {tunable}"
        )
    close = difflib.get_close_matches(str(name), tunable + sorted(families), n=3)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise UnknownHyperModelError(
        f"Unknown model to tune: {name!r}.{hint} Tunable models: {tunable}"
    )


def hypermodel_for(name, input_shape, classes, **kwargs) -> ClassifierHyperModel:
    """The hypermodel of ``name`` (see :func:`resolve_model`) for this data."""
    return ClassifierHyperModel(resolve_model(name), input_shape, classes, **kwargs)


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


def _declare(hp, name, spec):
    """Declares one `apps.search_spaces` spec as ``name`` in ``hp``; its value."""
    if isinstance(spec, search_spaces.Recorded):
        return hp.Fixed(name, spec.value)
    if isinstance(spec, search_spaces.Choice):
        return hp.Choice(name, list(spec.values), default=spec.default)
    if isinstance(spec, search_spaces.Boolean):
        return hp.Boolean(name, default=spec.default)
    declare = hp.Int if isinstance(spec, search_spaces.Int) else hp.Float
    return declare(
        name,
        spec.min_value,
        spec.max_value,
        step=spec.step,
        sampling=spec.sampling,
        default=spec.default,
    )


def _current_strategy():
    import tensorflow as tf

    return tf.distribute.get_strategy()


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
