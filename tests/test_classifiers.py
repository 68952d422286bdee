"""Classifier mode of the RNN and Transformer families: padding is ignored, and they learn."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from models import registry
from models.families.rnn import RNNConfig
from models.runtime.training import compile_classifier, train_model
from models.runtime.training_length import TrainingPlan
from models.families.transformer import TransformerConfig

VOCAB = 12
CONFIGS = {
    "rnn": RNNConfig(units=16, embedding_dim=8, layers=1, learning_rate=1e-2),
    "transformer": TransformerConfig(layers=1, heads=2, width=16, ff_width=32, dropout=0.0, context=16,
                                     learning_rate=5e-3, warmup_steps=5),
}
CONFIGS["transformer, mean-pooled, embedding dropout"] = dataclasses.replace(
    CONFIGS["transformer"], pooling="mean", embedding_dropout=0.1)


def build(variant):
    return registry.get(variant.split(",")[0]).build_classifier(CONFIGS[variant], VOCAB, 3)


@pytest.mark.parametrize("variant", list(CONFIGS))
def test_right_padding_does_not_change_the_prediction(variant):
    tf.keras.utils.set_random_seed(0)
    model = build(variant)
    ids = np.array([[1, 5, 7, 9, 4, 0, 0, 0]], dtype=np.int64)
    longer = np.array([[1, 5, 7, 9, 4, 0, 0, 0, 0, 0, 0, 0]], dtype=np.int64)
    other = np.array([[1, 5, 7, 3, 4, 0, 0, 0]], dtype=np.int64)
    np.testing.assert_allclose(model(ids).numpy(), model(longer).numpy(), atol=1e-5)
    assert not np.allclose(model(ids).numpy(), model(other).numpy(), atol=1e-5)  # real tokens do count


def _labelled_batches(seed, batch=32, length=10):
    """Class = which of the tokens 3, 4, 5 occurs in the text (once, at a random place), so the
    model must read the whole sequence; lengths vary and the rest is right padding."""
    rng = np.random.default_rng(seed)
    while True:
        ids = np.zeros((batch, length), np.int64)
        labels = rng.integers(0, 3, size=batch)
        for row, label in enumerate(labels):
            n = rng.integers(3, length + 1)
            ids[row, :n] = rng.integers(6, VOCAB, size=n)
            ids[row, rng.integers(0, n)] = 3 + label
        yield ids, labels


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_classifier_learns_a_task_that_needs_the_whole_text(family):
    tf.keras.utils.set_random_seed(1)
    model = build(family)
    compile_classifier(model, registry.get(family).optimizer(CONFIGS[family], 150))
    signature = (tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([None], tf.int64))
    train = tf.data.Dataset.from_generator(lambda: _labelled_batches(2), output_signature=signature)
    val = tf.data.Dataset.from_generator(lambda: _labelled_batches(3), output_signature=signature)
    metrics = train_model(model, train, val, TrainingPlan(150, 150, 30, 4), patience=5, batch_size=16, train_examples=2400)
    assert metrics["val_accuracy"] > 0.9, metrics


@pytest.mark.parametrize("variant", list(CONFIGS))
def test_classifier_saves_and_reloads(variant, tmp_path):
    model = build(variant)
    ids = np.array([[1, 5, 7, 0]], dtype=np.int64)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64)])
    def logits(token_ids):
        return {"logits": model(token_ids, training=False)}

    # As models.serving.export saves: signatures only, no Keras call traces.
    model.save(tmp_path / "m", save_format="tf", signatures={"serving_default": logits.get_concrete_function()},
               save_traces=False)
    reloaded = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"]
    np.testing.assert_allclose(reloaded(tf.constant(ids))["logits"].numpy(), model(ids).numpy(), atol=1e-5)
    padded = np.array([[1, 5, 7, 0, 0, 0, 0]], dtype=np.int64)  # more padding changes nothing, reloaded or not
    np.testing.assert_allclose(reloaded(tf.constant(padded))["logits"].numpy(), model(ids).numpy(), atol=1e-5)
