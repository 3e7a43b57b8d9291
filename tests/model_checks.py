"""Checks every image classifier builder must pass, shared by the family tests.

from model_checks import trains_a_step_and_round_trips
"""

import keras
import numpy as np


def trains_a_step_and_round_trips(model, images, labels, path) -> None:
    """`model` gives a probability per class, one Adam step changes its weights with
    a finite loss, and its `.keras` file at `path` predicts what it predicts."""
    predictions = np.asarray(model(images, training=False))
    assert predictions.shape == (len(images), model.output_shape[-1])
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = [np.copy(w) for w in model.get_weights()]
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss)
    assert any(
        not np.array_equal(old, new)
        for old, new in zip(before, model.get_weights(), strict=True)
    )

    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        np.asarray(loaded(images, training=False)),
        np.asarray(model(images, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
