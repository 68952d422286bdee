"""How long a Trainer trains: steps from the split's size, the floor and the cap, sizes, and
early stopping that keeps the best weights."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models.families.hvae import HVAEConfig
from models.families.rnn import RNNConfig
from models.families.transformer import TransformerConfig
from models.runtime.sizing import SizeRule
from models.runtime.training import TimeBudget, train_model
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


def test_size_auto_picks_by_the_training_tokens_under_the_rule_and_set_values_win():
    auto, rule = RNNConfig(size="auto", units=100), SizeRule(base_tokens=1000)
    assert auto.embedding_dim is None  # unresolved until the split is counted
    small, base = auto.sized(999, rule), auto.sized(1000, rule)
    assert (small.size, small.embedding_dim, base.size, base.embedding_dim) == ("small", 64, "base", 128)
    assert small.units == base.units == 100  # a value set in the config wins over the size
    assert auto.sized(None, rule).size == "small"  # not counted: small
    assert RNNConfig().size == "small" and RNNConfig().units == 128  # built in code: small


def test_a_translator_of_a_corpus_is_sized_larger_than_its_language_model():
    """The same family and the same number of training tokens: the task's rule decides."""
    from tasks.registry import get

    tokens = 750_000  # about Multi30k's 23,000 training pairs, both sides
    config = TransformerConfig(size="auto")
    language_model = config.sized(tokens, get("language_model").size_rule)
    translator = config.sized(tokens, get("seq2seq").size_rule)
    assert (language_model.size, translator.size) == ("base", "large")
    assert (language_model.width, translator.width) == (128, 256)
    assert translator.learning_rate < language_model.learning_rate  # the large preset's own rate
    vae = HVAEConfig(size="auto").sized(tokens, SizeRule(1, 2))
    assert vae.size == "base"  # a family without large: its largest
    # the VAE's base is the one-code-per-segment model; small keeps one code per text
    assert (vae.latent_per_segment, vae.encoder_summary, vae.word_dropout) == (True, "local", 0.3)
    assert (HVAEConfig().latent_per_segment, HVAEConfig().encoder_summary) == (False, "final")
    with pytest.raises(ValueError, match="at size small.*latent_per_segment needs encoder_summary: local"):
        HVAEConfig(size="auto", latent_per_segment=True).every_size()
    assert [c.size for c in config.every_size(get("seq2seq").size_rule)] == ["small", "base", "large"]
    assert [c.size for c in config.every_size(get("language_model").size_rule)] == ["small", "base"]


def test_the_task_fills_in_the_passes_and_the_budget_the_config_leaves_null():
    from tasks.registry import get

    seq2seq = get("seq2seq")
    filled = TransformerConfig().with_task_length(seq2seq.train_epochs, seq2seq.train_minutes)
    assert (filled.train_epochs, filled.budget_seconds) == (10.0, 1800.0)
    kept = TransformerConfig(train_epochs=2.0, train_minutes=0.0).with_task_length(10.0, 30.0)
    assert (kept.train_epochs, kept.budget_seconds) == (2.0, None)  # set values win; 0: no budget
    assert get("language_model").train_minutes is None


def test_a_family_may_train_a_kind_of_model_for_another_number_of_passes_than_its_task():
    """The Transformer classifier overfits SST-2's phrases after one pass (README): it takes one
    where the RNN classifier and the Transformer language model take their task's three."""
    from models import registry
    from tasks.registry import get

    classifier, language_model = get("classifier"), get("language_model")
    assert registry.get("transformer").passes("classifier", classifier.train_epochs) == 1.0
    assert registry.get("rnn").passes("classifier", classifier.train_epochs) == classifier.train_epochs == 3.0
    assert registry.get("transformer").passes("language_model", language_model.train_epochs) == 3.0
    set_by_user = TransformerConfig(train_epochs=3.0).with_task_length(registry.get("transformer").passes(
        "classifier", classifier.train_epochs), None)
    assert set_by_user.train_epochs == 3.0


def opposite_patterns() -> tuple:
    """A compiled model, training batches of one pattern and eval batches of its opposite, whose
    loss is lowest early and then rises."""
    tf_keras.utils.set_random_seed(3)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int64"))).repeat().batch(16)
    evaluation = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] <= 0).astype("int64"))).repeat().batch(16)
    model = tf_keras.Sequential([tf_keras.layers.Dense(2)])
    model.compile(tf_keras.optimizers.Adam(0.05), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, train, evaluation


def test_early_stopping_keeps_the_weights_of_the_best_eval_loss():
    """Train on one pattern and measure the eval loss on its opposite: the eval loss is lowest
    early and rises, so training stops and the restored weights score the best loss seen."""
    model, train, evaluation = opposite_patterns()
    metrics = train_model(model, train, evaluation, TrainingPlan(400, 4, 20, 4), patience=2, batch_size=16,
                          train_examples=64)
    curve = metrics["eval_loss_curve"]
    assert metrics["stopped_early"] and metrics["steps"] < 400 and len(curve) < 20
    assert metrics["val_loss"] == pytest.approx(min(curve), abs=1e-5)
    assert model.evaluate(evaluation, steps=4, verbose=0) == pytest.approx(min(curve), abs=1e-5)
    assert metrics["best_step"] == (int(np.argmin(curve)) + 1) * 20
    assert metrics["epochs"] == pytest.approx(metrics["steps"] * 16 / 64)


class FakeClock:
    """Time that moves one second per training step (read once per step by `TimeBudget`)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_time_budget_stops_training_and_keeps_the_best_validation_weights():
    """The eval data is the opposite pattern, so its loss is lowest early: the budget stops the
    run in its fourth interval, the step reached is measured, and the best weights come back."""
    model, train, evaluation = opposite_patterns()
    clock = FakeClock()

    class Tick(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.now += 1.0

    budget = TimeBudget(65.0, clock=clock)
    metrics = train_model(model, train, evaluation, TrainingPlan(400, 4, 20, 4), patience=100, batch_size=16,
                          train_examples=64, callbacks=[Tick()], budget=budget)
    assert metrics["stopped_at_budget"] and not TimeBudget(1.0).stopped_at_step
    assert budget.stopped_at_step == 65 and metrics["steps"] == 65 and metrics["curve"]["step"] == [20, 40, 60, 65]
    curve = metrics["eval_loss_curve"]
    assert len(curve) == 4 and metrics["val_loss"] == pytest.approx(min(curve), abs=1e-5)
    assert model.evaluate(evaluation, steps=4, verbose=0) == pytest.approx(min(curve), abs=1e-5)
