"""`models.runtime.fused_adam`: the fused update trains the same weights as Keras' Adam and AdamW (with a
schedule, weight decay, global-norm clipping and a sparse embedding gradient), in fewer ops."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models.runtime.fused_adam import FusedAdam, FusedAdamW

STEPS = 25


def _model() -> tf_keras.Model:
    """Embedding (sparse gradient) -> LayerNorm -> Dense: every kind of variable the families have."""
    tf_keras.utils.set_random_seed(3)
    model = tf_keras.Sequential([
        tf_keras.layers.Embedding(30, 8), tf_keras.layers.LayerNormalization(), tf_keras.layers.Dense(30)])
    model.build([None, 6])
    return model


def _train(optimizer: tf_keras.optimizers.Optimizer, weights: list[np.ndarray], jit_compile: bool = False):
    """The weights after STEPS steps from `weights` on fixed random batches, and the ops of one step."""
    model = _model()
    model.set_weights(weights)
    data = np.random.default_rng(0).integers(0, 30, size=(STEPS, 4, 7))
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def step(batch):
        with tf.GradientTape() as tape:
            logits = model(batch[:, :-1], training=True)
            loss = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(batch[:, 1:], logits, from_logits=True))
        optimizer.minimize(loss, model.trainable_variables, tape=tape)
        return loss

    for batch in data:
        step(tf.constant(batch))
    ops = len(step.get_concrete_function(tf.constant(data[0])).graph.get_operations())
    return [v.numpy() for v in model.trainable_variables], ops


def _schedule():
    return tf_keras.optimizers.schedules.CosineDecay(1e-2, STEPS, warmup_target=3e-2, warmup_steps=5)


@pytest.mark.parametrize("reference, fused", [
    (lambda: tf_keras.optimizers.AdamW(_schedule(), weight_decay=0.1, beta_2=0.99, global_clipnorm=1.0),
     lambda: FusedAdamW(_schedule(), weight_decay=0.1, beta_2=0.99, global_clipnorm=1.0)),
    (lambda: tf_keras.optimizers.Adam(2e-2, global_clipnorm=1.0), lambda: FusedAdam(2e-2, global_clipnorm=1.0)),
], ids=["adamw_schedule", "adam"])
def test_fused_update_trains_the_same_weights_as_keras_in_fewer_ops(reference, fused):
    weights = _model().get_weights()
    expected, reference_ops = _train(reference(), weights)
    actual, fused_ops = _train(fused(), weights)
    for want, got in zip(expected, actual):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(expected[-1], weights[-1])  # the steps did move the weights
    assert fused_ops < 0.75 * reference_ops, (fused_ops, reference_ops)


def test_fused_update_compiles_with_xla():
    weights = _model().get_weights()
    expected, _ = _train(tf_keras.optimizers.AdamW(1e-2, weight_decay=0.1), weights)
    actual, _ = _train(FusedAdamW(1e-2, weight_decay=0.1), weights, jit_compile=True)
    for want, got in zip(expected, actual):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_fused_update_refuses_what_it_does_not_implement():
    with pytest.raises(ValueError, match="amsgrad"):
        FusedAdam(1e-3, amsgrad=True)
