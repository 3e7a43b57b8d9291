"""Recurrent classifiers: Fashion-MNIST-sized input, a training step, save/load.

Parametrised over the registry, so a newly registered sequence classifier is tested
at once. ViT, an image classifier, is tested in tests/apps/test_vision_vit.py.
"""

import inspect

import keras
import numpy as np
import pytest
from model_checks import trains_a_step_and_round_trips
from tiny import tiny_flags

import apps
import apps.sequence  # noqa: F401  (registers the sequence models)
from apps import classify, cli

SEQUENCE_CLASSIFIERS = apps.list_models(task="sequence_classification")
CLASSES = 10
BATCH = 8


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, size=(BATCH, 28, 28, 1)).astype("float32")
    return images, np.arange(BATCH) % CLASSES


def test_the_recurrent_family_is_registered():
    assert {"rnn", "lstm", "gru", "bilstm"} <= set(SEQUENCE_CLASSIFIERS)


@pytest.mark.parametrize("name", SEQUENCE_CLASSIFIERS)
def test_builds_trains_a_step_and_round_trips(name, tmp_path):
    keras.utils.set_random_seed(0)
    images, labels = _batch()
    model = apps.build(name, input_shape=(28, 28, 1), classes=CLASSES)
    trains_a_step_and_round_trips(model, images, labels, tmp_path / f"{name}.keras")


def test_recurrent_options_shape_the_network():
    model = apps.build("gru", units=8, depth=3, dropout=0.2)
    assert [layer.name for layer in model.layers[1:]] == [
        "rows",
        "gru_1",
        "gru_1_dropout",
        "gru_2",
        "gru_2_dropout",
        "gru_3",
        "gru_3_dropout",
        "predictions",
    ]
    assert tuple(model.get_layer("rows").output.shape) == (None, 28, 28)
    bilstm = apps.build("bilstm", units=8, include_top=False)
    assert tuple(bilstm.output.shape) == (None, 16)  # both directions
    sequence = apps.build("rnn", input_shape=(None, 5), units=4, classes=3)
    assert tuple(sequence.output.shape) == (None, 3)
    assert np.asarray(sequence(np.zeros((2, 7, 5), "float32"))).shape == (2, 3)


@pytest.mark.parametrize("name", SEQUENCE_CLASSIFIERS)
def test_variants_take_the_family_options_but_the_cell(name):
    info = apps.get_model_info(name)
    parameters = inspect.signature(info.builder).parameters
    assert {"units", "depth", "recurrent_dropout", "dropout"} <= set(parameters)
    assert not {"cell", "bidirectional"} & set(parameters)
    assert parameters["name"].default == name
    with pytest.raises(cli.UsageError, match=r"does not take \['cell'\]. Its opt"):
        cli.check_builder_options(info, {"cell": "gru"})


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("lstm", {"units": 0}, "units must be a positive integer"),
        ("gru", {"depth": 0}, "depth must be a positive integer"),
        ("rnn", {"recurrent_dropout": 1.0}, r"recurrent_dropout must be a number"),
        ("lstm", {"dropout": -0.1}, r"dropout must be a number in \[0, 1\)"),
        ("lstm", {"pooling": "avg"}, r"pooling must be one of \(None,\)"),
        ("bilstm", {"input_shape": (28,)}, "input_shape must be"),
        ("lstm", {"input_shape": (28, None, 1)}, "input_shape must be"),
        ("gru", {"classes": 0}, "classes must be a positive integer"),
        ("rnn", {"classifier_activation": "nope"}, "classifier_activation must be"),
        ("lstm", {"weights": "imagenet"}, "no pretrained weights"),
    ],
)
def test_bad_options(name, options, message):
    with pytest.raises(ValueError, match=message):
        apps.build(name, **options)


def test_classify_trains_an_lstm_on_fashion_mnist(fashion_mnist, tmp_path, capsys):
    argv = ["train", "--model", "lstm", "--model-option", "units=16"]
    argv += tiny_flags(validation_split=0, output=tmp_path)
    assert classify.main(argv) == 0
    assert "lstm on fashion_mnist: test accuracy" in capsys.readouterr().out
    assert (tmp_path / "metrics.json").exists()
