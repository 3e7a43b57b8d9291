"""Shared checks for the layers in ``layers/``: shape, weights, config, save/load."""

import os

import keras
import numpy as np
import pytest


def _normalise(value):
    """Tuples and lists compare equal after a JSON-like round trip."""
    if isinstance(value, (tuple, list)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def check_layer(
    layer_cls,
    init_kwargs,
    inputs,
    *,
    call_kwargs=None,
    expected_output_shape=None,
    expected_num_weights=None,
    expected_num_trainable_weights=None,
    save_dir=None,
    atol=1e-6,
):
    """Build ``layer_cls(**init_kwargs)``, call it on ``inputs`` and check it.

    * the output shape (``expected_output_shape``), the number of weights;
    * every constructor argument is in ``get_config`` with its value, and
      ``from_config(get_config())`` gives the same config, also through
      ``keras.saving.serialize_keras_object`` (registered name ``layers>Name``);
    * with ``save_dir``: a functional model around the layer (batch size left
      free) survives a ``.keras`` save and load with the same outputs and weights.

    ``inputs`` is a list of NumPy arrays passed positionally. Returns the layer
    and its eager output.
    """
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    outputs = layer(*inputs, **call_kwargs)

    if expected_output_shape is not None:
        assert tuple(outputs.shape) == tuple(expected_output_shape)
    if expected_num_weights is not None:
        assert len(layer.weights) == expected_num_weights
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights

    config = layer.get_config()
    for name, value in init_kwargs.items():
        assert name in config, f"{name} missing from get_config()"
        # Plain values come back as given; objects named by a string ("l2",
        # "glorot_uniform") come back serialised, as a dict.
        plain = value is None or isinstance(value, (bool, int, float, str, tuple))
        if plain and not isinstance(config[name], dict):
            assert _normalise(config[name]) == _normalise(value), name
    clone = layer_cls.from_config(config)
    assert _normalise(clone.get_config()) == _normalise(config)
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"layers>{layer_cls.__name__}"
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is layer_cls
    assert _normalise(revived.get_config()) == _normalise(config)

    if save_dir is not None:
        symbolic = [keras.Input(shape=x.shape[1:], dtype=str(x.dtype)) for x in inputs]
        model = keras.Model(symbolic, layer(*symbolic, **call_kwargs))
        path = os.path.join(str(save_dir), f"{layer_cls.__name__}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(loaded(inputs)),
            keras.ops.convert_to_numpy(model(inputs)),
            atol=atol,
        )
        for ours, theirs in zip(model.weights, loaded.weights, strict=True):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs)
            )
    return layer, outputs


@pytest.fixture
def layer_check(tmp_path):
    """``check_layer`` with ``save_dir`` set to a fresh temporary directory."""

    def run(*args, **kwargs):
        kwargs.setdefault("save_dir", tmp_path)
        return check_layer(*args, **kwargs)

    return run


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
