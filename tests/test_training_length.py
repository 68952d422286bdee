"""How long a Trainer trains: steps from the split's size, the floor and the cap, sizes, and
early stopping that keeps the best weights."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models.families.rnn import RNNConfig
from models.runtime.sizing import AUTO_BASE_EXAMPLES
from models.runtime.training import train_model
from models.runtime.training_length import TrainingPlan, plan_training


@pytest.mark.parametrize("examples, batch, epochs, floor, cap, steps", [
    (53_917, 64, 3.0, 300, None, 2529),  # 843 steps an epoch, 3 passes
    (53_917, 64, 0.5, 300, None, 422),  # half a pass
    (84, 32, 3.0, 300, None, 300),  # the embedded sample: 3 steps an epoch, the floor rules
    (53_917, 64, 3.0, 300, 1000, 1000),  # the cap rules
    (84, 32, 3.0, 300, 30, 30),  # a cap below the floor still caps
])
def test_steps_follow_the_split_size_the_floor_and_the_cap(examples, batch, epochs, floor, cap, steps):
    config = RNNConfig(train_epochs=epochs, min_train_steps=floor, train_steps=cap)
    assert plan_training(config, examples, 872, batch).steps == steps


def test_the_eval_loss_is_measured_once_an_epoch_within_five_to_ten_times():
    config = RNNConfig(train_epochs=3.0)
    sst2 = plan_training(config, 53_917, 872, 64)
    assert sst2.evaluation_interval == 506 and sst2.evaluations == 5  # 3 epochs: the 5-measurement floor
    assert sst2.eval_batches == 14  # 872 eval texts in batches of 64: the whole split, not 20 batches
    small = plan_training(config, 84, 16, 32)
    assert small.evaluations == 10 and small.evaluation_interval == 30  # 100 tiny epochs: at most 10
    aligned = plan_training(config, 84, 16, 32, cap=25, steps_multiple=2)
    assert aligned.evaluation_interval % 2 == 0 and aligned.eval_batches == 2


def test_size_auto_picks_small_or_base_by_the_training_split_and_set_values_win():
    auto = RNNConfig(size="auto", units=100)
    assert auto.embedding_dim is None  # unresolved until the split is counted
    small, base = auto.sized(AUTO_BASE_EXAMPLES - 1), auto.sized(AUTO_BASE_EXAMPLES)
    assert (small.size, small.embedding_dim, base.size, base.embedding_dim) == ("small", 64, "base", 128)
    assert small.units == base.units == 100  # a value set in the config wins over the size
    assert RNNConfig().size == "small" and RNNConfig().units == 128  # built in code: small


def test_early_stopping_keeps_the_weights_of_the_best_eval_loss():
    """Train on one pattern and measure the eval loss on its opposite: the eval loss is lowest
    early and rises, so training stops and the restored weights score the best loss seen."""
    tf_keras.utils.set_random_seed(3)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int64"))).repeat().batch(16)
    evaluation = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] <= 0).astype("int64"))).repeat().batch(16)
    model = tf_keras.Sequential([tf_keras.layers.Dense(2)])
    model.compile(tf_keras.optimizers.Adam(0.05), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    metrics = train_model(model, train, evaluation, TrainingPlan(400, 4, 20, 4), patience=2, batch_size=16,
                          train_examples=64)
    curve = metrics["eval_loss_curve"]
    assert metrics["stopped_early"] and metrics["steps"] < 400 and len(curve) < 20
    assert metrics["val_loss"] == pytest.approx(min(curve), abs=1e-5)
    assert model.evaluate(evaluation, steps=4, verbose=0) == pytest.approx(min(curve), abs=1e-5)
    assert metrics["best_step"] == (int(np.argmin(curve)) + 1) * 20
    assert metrics["epochs"] == pytest.approx(metrics["steps"] * 16 / 64)
