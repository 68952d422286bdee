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


def _steps(optimizer: tf_keras.optimizers.Optimizer, weights: list[np.ndarray], steps: int, group: slice = slice(0, 0),
           scale: float = 1.0, frozen_steps: int = 0) -> list[np.ndarray]:
    """The weights after `steps` steps, the variables of `group` (by index) in a scaled group."""
    model = _model()
    model.set_weights(weights)
    optimizer.build(model.trainable_variables)
    if group != slice(0, 0):
        optimizer.scale_learning_rate(model.trainable_variables[group], scale, frozen_steps)
    data = np.random.default_rng(0).integers(0, 30, size=(steps, 4, 7))
    for batch in data:
        with tf.GradientTape() as tape:
            logits = model(batch[:, :-1], training=True)
            loss = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(batch[:, 1:], logits, from_logits=True))
        optimizer.minimize(loss, model.trainable_variables, tape=tape)
    return [v.numpy() for v in model.trainable_variables]


def test_a_scaled_group_learns_at_its_rate_and_waits_its_frozen_steps():
    """Fine-tuning's groups: the loaded layers (here the embedding and the layer norm) at a tenth
    of the rate, weight decay included, and not at all for the first steps."""
    weights = _model().get_weights()
    loaded = slice(0, 3)  # embedding table, layer norm gamma and beta; the Dense layer is the new head
    reference = _steps(FusedAdamW(1e-2, weight_decay=0.1), weights, 1)
    scaled = _steps(FusedAdamW(1e-2, weight_decay=0.1), weights, 1, loaded, scale=0.1)
    for index, (start, want, got) in enumerate(zip(weights, reference, scaled)):
        factor = 0.1 if index < 3 else 1.0  # Adam's first step from the same gradient: the rate's share of it
        np.testing.assert_allclose(got - start, factor * (want - start), rtol=1e-4, atol=1e-7)
    frozen = _steps(FusedAdamW(1e-2, weight_decay=0.1), weights, 2, loaded, scale=0.1, frozen_steps=2)
    assert all(np.array_equal(frozen[i], weights[i]) for i in range(3))
    assert not np.allclose(frozen[3], weights[3])  # the head learned meanwhile
    after = _steps(FusedAdamW(1e-2, weight_decay=0.1), weights, 3, loaded, scale=0.1, frozen_steps=2)
    assert not np.allclose(after[0], weights[0])
