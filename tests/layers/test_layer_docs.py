"""Every exported layer is registered, documented and its example runs."""

import doctest

import keras
import pytest

import layers
from layers import attention, lrn, positional, transposed_conv


@pytest.mark.parametrize("name", layers.__all__)
def test_registered_and_documented(name):
    cls = getattr(layers, name)
    assert keras.saving.get_registered_object(f"layers>{name}") is cls
    doc = cls.__doc__
    for section in ("Args:", "Input shape:", "Output shape:", ">>> "):
        assert section in doc, f"{name} docstring lacks {section!r}"
    assert any(year in doc for year in ("2010", "2012", "2015", "2017")), name


@pytest.mark.parametrize("module", [attention, lrn, positional, transposed_conv])
def test_docstring_examples_run(module):
    results = doctest.testmod(module, extraglobs={"keras": keras}, verbose=False)
    assert results.failed == 0
    assert results.attempted > 0
