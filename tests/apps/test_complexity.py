"""Multiply-accumulates: exact counts on small models, the paper's figure on
ResNet-50."""

import keras
import pytest

import apps
from apps import complexity
from layers import MultiHeadAttention


def test_lenet5_counts_each_convolution_and_dense_layer():
    # C1 28*28*6*25 + C3 10*10*16*150 + C5 120*400 + F6 84*120 + output 10*84.
    model = apps.build("lenet5", classes=10)
    assert complexity.multiply_accumulates(model) == (
        117_600 + 240_000 + 48_000 + 10_080 + 840
    )


def test_recurrent_and_attention_layers():
    inputs = keras.Input((28, 28))
    x = keras.layers.LSTM(16, return_sequences=True)(inputs)
    x = keras.layers.Bidirectional(keras.layers.GRU(8, return_sequences=True))(x)
    y = MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
    model = keras.Model(inputs, keras.layers.Dense(3)(y))
    lstm = 28 * (28 * 64 + 16 * 64)
    gru = 2 * 28 * (16 * 24 + 8 * 24)
    projections = 28 * 16 * 8 * 3 + 28 * 8 * 16
    products = 28 * 28 * 2 * (4 + 4)
    dense = 28 * 16 * 3
    assert complexity.multiply_accumulates(model) == (
        lstm + gru + projections + products + dense
    )


@pytest.mark.slow  # builds a 25M-parameter model at 224x224
def test_resnet50_matches_the_papers_3_8_gflops():
    # He et al. count multiply-adds: "3.8 x 10^9 FLOPs" for ResNet-50 (v1).
    model = apps.build("resnet50", classes=1000)
    assert 3.8e9 <= complexity.multiply_accumulates(model) <= 3.9e9
