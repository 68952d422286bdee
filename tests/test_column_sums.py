"""`models.layers.column_sums`: the block sum, and its Dense and LayerNormalization against Keras' own
on the same weights (outputs and every gradient), eagerly, in a graph and under XLA."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models.layers import column_sums
from models.runtime.acceleration import precision_policy


@pytest.mark.parametrize("shape", [(1, 5), (31, 3), (32, 4), (33, 2), (7, 50, 9), (2, 3, 4, 6)])
def test_column_sum_is_the_sum_over_every_axis_but_the_last(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    expected = x.reshape(-1, shape[-1]).astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(column_sum_in_graph(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(column_sums.column_sum(tf.constant(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


def column_sum_in_graph(x: np.ndarray) -> np.ndarray:
    """The sum traced with an unknown row count, as a model's batch dimension is."""
    spec = tf.TensorSpec([None] * (x.ndim - 1) + [x.shape[-1]], tf.float32)
    return tf.function(column_sums.column_sum, input_signature=[spec])(tf.constant(x)).numpy()


def _pair(kind: str, width: int):
    """(Keras' layer, this module's), the second with the first's weights."""
    if kind == "dense":
        keras_layer = tf_keras.layers.Dense(6, activation="gelu")
        ours = column_sums.Dense(6, activation="gelu")
    else:
        keras_layer = tf_keras.layers.LayerNormalization(epsilon=1e-5)
        ours = column_sums.LayerNormalization(epsilon=1e-5)
    keras_layer.build((None, None, width))
    ours.build((None, None, width))
    rng = np.random.default_rng(1)
    for variable in keras_layer.weights:  # gains and shifts away from 1 and 0, so their terms count
        variable.assign(rng.normal(size=variable.shape).astype(np.float32))
    ours.set_weights(keras_layer.get_weights())
    return keras_layer, ours


def _outputs_and_gradients(layer, x: tf.Tensor, upstream: tf.Tensor, jit_compile: bool | None):
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
        return y, tape.gradient(loss, [x, *layer.trainable_weights])

    if jit_compile is not None:
        run = tf.function(run, jit_compile=jit_compile)
    y, gradients = run(x)
    return [t.numpy().astype(np.float32) for t in [y, *gradients]]


@pytest.mark.parametrize("kind", ["dense", "layer_norm"])
@pytest.mark.parametrize("jit_compile", [None, False, True], ids=["eager", "graph", "xla"])
def test_layers_equal_keras_outputs_and_gradients(kind, jit_compile):
    keras_layer, ours = _pair(kind, width=40)
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(5, 37, 40)).astype(np.float32))  # 185 rows: padded to 192
    upstream = tf.constant(rng.normal(size=(5, 37, keras_layer.compute_output_shape((5, 37, 40))[-1])), tf.float32)
    expected = _outputs_and_gradients(keras_layer, x, upstream, jit_compile)
    actual = _outputs_and_gradients(ours, x, upstream, jit_compile)
    assert len(actual) == len(expected) == 4  # output, input gradient, two parameter gradients
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["dense", "layer_norm"])
@pytest.mark.parametrize("jit_compile", [None, True], ids=["eager", "xla"])
def test_layers_under_mixed_bfloat16_match_keras_within_its_rounding(kind, jit_compile):
    with precision_policy("mixed_bfloat16"):
        keras_layer, ours = _pair(kind, width=24)
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(4, 20, 24)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(4, 20, keras_layer.compute_output_shape((4, 20, 24))[-1])), tf.float32)
    expected = _outputs_and_gradients(keras_layer, x, upstream, jit_compile)
    actual = _outputs_and_gradients(ours, x, upstream, jit_compile)
    assert ours.compute_dtype == "bfloat16" and ours.variable_dtype == "float32"
    for got, want in zip(actual, expected):
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, atol=0.02 * scale)  # bfloat16 keeps 8 bits of mantissa


def test_layer_norm_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match="last axis with a gain and a shift"):
        column_sums.LayerNormalization(center=False).build((None, 4, 8))
    with pytest.raises(ValueError, match="last axis"):
        column_sums.LayerNormalization(axis=1).build((None, 4, 8))


def test_layers_round_trip_their_config():
    for layer in (column_sums.Dense(3, activation="gelu", name="d"), column_sums.LayerNormalization(epsilon=1e-5, name="n")):
        config = tf_keras.layers.serialize(layer)
        rebuilt = tf_keras.layers.deserialize(config)
        assert type(rebuilt) is type(layer) and rebuilt.get_config() == layer.get_config()
