"""apps.tasks.classification: the classifier task a notebook calls, without a
command line (tiny real runs on Fashion-MNIST, as tests/apps/test_classify.py's)."""

import json
import re

import keras
import numpy as np
import pytest

from apps.cli import UsageError
from apps.options import TrainOptions
from apps.tasks import classification

TINY = {"epochs": 2, "steps_per_epoch": 3, "batch_size": 16, "seed": 0}


class _EpochsSeen(keras.callbacks.Callback):
    """Records the epochs begun and the training batches ended."""

    def __init__(self):
        super().__init__()
        self.epochs, self.batches = [], 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


@pytest.fixture(scope="module")
def run(fashion_mnist, tmp_path_factory):
    """A two-epoch LeNet-5 run with an extra callback: (run dir, metrics, callback)."""
    run_dir = tmp_path_factory.mktemp("task") / "run"
    config, options, sources = classification.configure(
        model="lenet5",
        dataset="fashion_mnist",
        eval_steps=2,
        steps_per_execution=1,  # batch callbacks after every step
        **TINY,
    )
    seen = _EpochsSeen()
    metrics = classification.train(config, options, run_dir, [seen], recipe=sources)
    return run_dir, metrics, seen


def test_train_calls_the_extra_callback_and_writes_the_run(run):
    run_dir, metrics, seen = run
    assert seen.epochs == [0, 1] and seen.batches == 2 * 3
    assert metrics == json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["test_examples"] == 32
    record = json.loads((run_dir / "run.json").read_text())
    assert record["command"] == classification.COMMAND
    assert record["arguments"]["model"] == "lenet5"
    assert record["recipe"]["learning_rate"] == "recipe"  # LeNet-5's recipe
    assert record["options"]["steps_per_epoch"] == 3


def test_a_finished_run_is_left_alone(run, capsys):
    run_dir, metrics, _ = run
    config = classification.ClassificationConfig("lenet5", "fashion_mnist")
    assert classification.train(config, TrainOptions(**TINY), run_dir) is None
    assert "holds a finished run" in capsys.readouterr().out
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics


def test_evaluate_on_the_saved_model_gives_trains_accuracy(run):
    run_dir, metrics, _ = run
    results = classification.evaluate(
        run_dir / "model.keras", "fashion_mnist", batch_size=16, steps=2
    )
    assert results["test_examples"] == metrics["test_examples"]
    assert results["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert results["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)


def test_predict_ranks_the_classes_of_one_image(run):
    model, spec = classification.load(run[0] / "model.keras")
    pixels = np.full((40, 30, 3), 200, np.uint8)  # colour, another size
    probabilities = classification.predict(model, spec, pixels)
    assert probabilities.shape == (10,) and probabilities.sum() == pytest.approx(1)
    ranked = classification.top_classes(probabilities, spec["class_names"], 3)
    assert len(ranked) == 3 and ranked[0][1] == probabilities.max()


def test_the_recipe_fills_only_what_was_not_given():
    config = classification.ClassificationConfig(
        "lenet5", "fashion_mnist", model_options={"activation": "tanh"}
    )
    config, values, sources = classification.resolve_recipe(config, {"epochs": 1})
    assert values["epochs"] == 1 and sources["epochs"] == "flag"
    assert sources["learning_rate"] == "recipe"
    assert config.model_options["activation"] == "tanh"
    _, values, sources = classification.resolve_recipe(config, {}, use_recipe=False)
    assert values["learning_rate"] is None and "model_options" not in sources


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"model_options": {"kernel": 7}}, "does not take ['kernel']"),
        ({"validation_split": 1.0}, "--validation-split must be in [0, 1)"),
        ({"model": "dcgan"}, "not an image classifier"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, settings, message):
    config, options, _ = classification.configure(
        **{"model": "lenet5", "dataset": "fashion_mnist", **TINY, **settings}
    )
    with pytest.raises(UsageError, match=re.escape(message)):
        classification.train(config, options, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_configure_and_evaluate_name_what_is_wrong(tmp_path):
    with pytest.raises(UsageError, match=r"\['epoch'\]: not a Classification"):
        classification.configure(model="lenet5", dataset="fashion_mnist", epoch=2)
    with pytest.raises(UsageError, match="batch_size must be a positive"):
        classification.configure(model="lenet5", dataset="x", batch_size=0)
    with pytest.raises(UsageError, match="--tta must be one of"):
        classification.evaluate(tmp_path / "model.keras", "fashion_mnist", tta="x")
    with pytest.raises(UsageError, match="does not exist"):
        classification.evaluate(tmp_path / "model.keras", "fashion_mnist")
