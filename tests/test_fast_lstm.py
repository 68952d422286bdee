"""`models.layers.fast_lstm`: the CPU recurrence equals Keras' LSTM on the same weights (outputs and
gradients), falls back to it where it does not apply, and a language model trained with it
exports and serves as one trained with Keras' layer."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models.layers import fast_lstm
from models.layers.fast_lstm import FastLSTM
from models.families.rnn import RNNConfig, build_rnn_lm
from test_acceleration import REPO, VOCAB, batches, export, train

UNITS, FEATURES, BATCH = 12, 5, 3


def _pair(**settings) -> tuple[tf_keras.layers.LSTM, FastLSTM]:
    """A Keras LSTM and a FastLSTM holding the same weights."""
    reference, fast = tf_keras.layers.LSTM(UNITS, **settings), FastLSTM(UNITS, **settings)
    x = tf.zeros([1, 2, FEATURES])
    reference(x), fast(x)
    fast.set_weights(reference.get_weights())
    return reference, fast


def _outputs_and_gradients(layer, x, length_known: bool, initial_state=None, mask=None) -> list[np.ndarray]:
    """The layer's outputs, and the gradients of a loss that reads all of them by the input, the
    initial state and every weight, from a graph where the length is static or unknown."""
    spec = tf.TensorSpec([x.shape[0], x.shape[1] if length_known else None, x.shape[2]])

    @tf.function(input_signature=[spec])
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            watched = [x]
            if initial_state is not None:
                tape.watch(initial_state)
                watched += initial_state
            outputs = layer(x, initial_state=initial_state, mask=mask)
            outputs = outputs if isinstance(outputs, list) else [outputs]
            loss = sum(tf.reduce_sum(tf.sin(o) * (k + 1.0)) for k, o in enumerate(outputs))
        return outputs + tape.gradient(loss, watched + layer.trainable_variables)

    return [t.numpy() for t in run(x)]


@pytest.mark.parametrize("length_known", [True, False], ids=["unrolled", "while_loop"])
@pytest.mark.parametrize("settings", [
    dict(return_sequences=True),
    dict(return_sequences=True, return_state=True),
    dict(return_sequences=False),
])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_the_fast_recurrence_equals_keras_in_outputs_and_gradients(length_known, settings, with_initial_state):
    tf_keras.utils.set_random_seed(0)
    reference, fast = _pair(**settings)
    x = tf.random.normal([BATCH, 9, FEATURES])
    state = [tf.random.normal([BATCH, UNITS]), tf.random.normal([BATCH, UNITS])] if with_initial_state else None
    expected = _outputs_and_gradients(reference, x, length_known, state)
    got = _outputs_and_gradients(fast, x, length_known, state)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_a_long_static_sequence_takes_the_loop_and_still_equals_keras(monkeypatch):
    monkeypatch.setattr(fast_lstm, "MAX_UNROLLED", 4)
    tf_keras.utils.set_random_seed(1)
    reference, fast = _pair(return_sequences=True)
    x = tf.random.normal([BATCH, 9, FEATURES])
    for e, g in zip(_outputs_and_gradients(reference, x, True), _outputs_and_gradients(fast, x, True)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


MASKED_SETTINGS = [
    dict(return_sequences=True),
    dict(return_sequences=True, zero_output_for_mask=True),
    dict(return_sequences=False, return_state=True),
    dict(return_sequences=False, zero_output_for_mask=True),
    dict(return_sequences=True, return_state=True, go_backwards=True),
    dict(return_sequences=False, go_backwards=True),
]


@pytest.mark.parametrize("length_known", [True, False], ids=["unrolled", "while_loop"])
@pytest.mark.parametrize("settings", MASKED_SETTINGS)
def test_masked_or_reversed_input_equals_keras_in_outputs_and_gradients(length_known, settings):
    """Right padding (as the encoders read it), a row of padding, and a mask with holes."""
    tf_keras.utils.set_random_seed(2)
    x = tf.random.normal([4, 7, FEATURES])
    mask = tf.constant([[1] * 7, [1, 1, 1, 0, 0, 0, 0], [0] * 7, [1, 0, 1, 1, 0, 1, 0]]) > 0
    reference, fast = _pair(**settings)
    assert fast._takes_fast_path(mask, None)
    expected = _outputs_and_gradients(reference, x, length_known, mask=mask)
    got = _outputs_and_gradients(fast, x, length_known, mask=mask)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("settings", [dict(return_sequences=True), dict(return_state=True)])
def test_a_bidirectional_fast_lstm_equals_keras_bidirectional_on_padded_text(settings):
    tf_keras.utils.set_random_seed(3)
    reference = tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(UNITS, **settings))
    fast = tf_keras.layers.Bidirectional(FastLSTM(UNITS, **settings))
    x = tf.random.normal([BATCH, 6, FEATURES])
    reference(x), fast(x)
    fast.set_weights(reference.get_weights())
    mask = tf.sequence_mask([6, 3, 1], 6)
    for e, g in zip(_outputs_and_gradients(reference, x, True, mask=mask),
                    _outputs_and_gradients(fast, x, True, mask=mask)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_a_mask_beside_an_initial_state_is_keras_own_path():
    tf_keras.utils.set_random_seed(4)
    x = tf.random.normal([BATCH, 6, FEATURES])
    mask = tf.sequence_mask([6, 3, 1], 6)
    state = [tf.random.normal([BATCH, UNITS]), tf.random.normal([BATCH, UNITS])]
    reference, fast = _pair(return_sequences=True)
    assert not fast._takes_fast_path(mask, None, state) and fast._takes_fast_path(None, None, state)
    for e, g in zip(_outputs_and_gradients(reference, x, True, state, mask),
                    _outputs_and_gradients(fast, x, True, state, mask)):
        np.testing.assert_array_equal(g, e)


def _train_step_ops(model: tf_keras.Model, ids: np.ndarray) -> set[str]:
    """The op types of one training step's graph (the loss and its gradients)."""
    optimizer = tf_keras.optimizers.Adam()

    @tf.function
    def step(ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(ids, training=True)))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    graph = step.get_concrete_function(tf.constant(ids)).graph
    types = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():  # noqa: SLF001 - the layers' own function bodies
        types |= {node.op for node in function.definition.node_def}
    return types


def test_the_language_model_runs_the_fast_recurrence_by_default_with_the_same_logits():
    tf_keras.utils.set_random_seed(3)
    settings = dict(embedding_dim=8, units=16, layers=2)
    fast = build_rnn_lm(RNNConfig(**settings), VOCAB)
    keras_lstm = build_rnn_lm(RNNConfig(recurrence="keras", **settings), VOCAB)
    keras_lstm.set_weights(fast.get_weights())
    assert isinstance(fast.get_layer("lstm_0"), FastLSTM)
    assert not isinstance(keras_lstm.get_layer("lstm_0"), FastLSTM)
    ids, _ = batches("rnn")
    np.testing.assert_allclose(fast(ids).numpy(), keras_lstm(ids).numpy(), rtol=1e-5, atol=1e-5)
    # unrolled at a length known when the graph is built: no loop runs at all
    assert not {"While", "StatelessWhile"} & _train_step_ops(fast, ids)
    assert {"While", "StatelessWhile"} & _train_step_ops(keras_lstm, ids)


SERVE = """
import json, sys
import tensorflow as tf
from test_acceleration import TEXTS, serialized
outputs = tf.saved_model.load(sys.argv[1]).signatures["serving_default"](examples=serialized(TEXTS[:3]))
print(json.dumps({k: v.numpy().tolist() if v.dtype != tf.string else [s.decode() for s in v.numpy().ravel()]
                  for k, v in outputs.items()}))
"""


def _served_in_a_fresh_process(path: str) -> dict:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    result = subprocess.run([sys.executable, "-c", SERVE, path], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=300, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_model_trained_on_the_fast_path_exports_and_serves_as_keras_lstm_does(tmp_path):
    tf_keras.utils.set_random_seed(4)
    config = RNNConfig(embedding_dim=8, units=16, layers=2)
    model, losses = train("rnn", config, steps=4)
    assert losses[-1] < losses[0]
    assert isinstance(model.get_layer("lstm_1"), FastLSTM)
    reference = build_rnn_lm(RNNConfig(recurrence="keras", embedding_dim=8, units=16, layers=2), VOCAB)
    reference.set_weights(model.get_weights())
    fast_outputs = _served_in_a_fresh_process(export("rnn", model, config, tmp_path / "fast"))
    keras_outputs = _served_in_a_fresh_process(
        export("rnn", reference, RNNConfig(recurrence="keras", embedding_dim=8, units=16, layers=2), tmp_path / "keras")
    )
    assert fast_outputs.keys() == keras_outputs.keys() and fast_outputs
    for name, value in keras_outputs.items():
        if isinstance(value[0], str):
            assert fast_outputs[name] == value, name
        else:
            np.testing.assert_allclose(fast_outputs[name], value, rtol=1e-4, atol=1e-4, err_msg=name)
