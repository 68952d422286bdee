import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models.layers.lm_loss import MaskedTokenAccuracy, masked_token_cross_entropy, token_log_likelihoods
from models.runtime.training import compile_language_model, train_model
from models.runtime.training_length import TrainingPlan
from models.families.rnn import RNNConfig, build_rnn_lm, rnn_optimizer
from models.layers.tokens import BOS_ID, EOS_ID, NUM_RESERVED


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_output_shape_is_batch_time_vocab(cell):
    model = build_rnn_lm(RNNConfig(cell=cell, units=16, embedding_dim=8, layers=2), vocab_size=11)
    logits = model(np.ones((3, 7), dtype="int64"))
    assert logits.shape == (3, 7, 11) and logits.dtype == tf.float32


def test_recurrent_layers_keep_cudnn_compatible_settings():
    model = build_rnn_lm(RNNConfig(units=16, embedding_dim=8), vocab_size=11)
    for layer in [l for l in model.layers if "lstm" in l.name]:
        assert layer.activation.__name__ == "tanh" and layer.recurrent_activation.__name__ == "sigmoid"
        assert layer.recurrent_dropout == 0 and not layer.unroll and layer.use_bias


def test_padding_is_masked_out_of_the_loss():
    rng = np.random.default_rng(0)
    targets = np.array([[5, 6, 7, 0, 0], [5, 0, 0, 0, 0]])
    logits = rng.normal(size=(2, 5, 9)).astype("float32")
    scrambled = logits.copy()
    scrambled[targets == 0] = rng.normal(size=(int((targets == 0).sum()), 9)) * 100  # pad positions only
    loss = float(masked_token_cross_entropy(targets, logits))
    assert loss == pytest.approx(float(masked_token_cross_entropy(targets, scrambled)), rel=1e-6)
    # token-weighted: the mean over the 4 real tokens, not the mean of per-example means
    per_token = -token_log_likelihoods(targets, logits).numpy()
    assert loss == pytest.approx(per_token.sum() / 4, rel=1e-6)
    accuracy = MaskedTokenAccuracy()
    accuracy.update_state(targets, scrambled)
    accuracy_clean = MaskedTokenAccuracy()
    accuracy_clean.update_state(targets, logits)
    assert float(accuracy.result()) == float(accuracy_clean.result())


def _corpus_dataset(texts, seq_len, batch):
    chars = sorted(set("".join(texts)))
    ids = {c: i + NUM_RESERVED for i, c in enumerate(chars)}
    rows = []
    for text in texts:
        tokens = [ids[c] for c in text][: seq_len - 1]
        inputs = ([BOS_ID] + tokens + [0] * seq_len)[:seq_len]
        targets = (tokens + [EOS_ID] + [0] * seq_len)[:seq_len]
        rows.append((inputs, targets))
    x = np.array([r[0] for r in rows], dtype="int64")
    y = np.array([r[1] for r in rows], dtype="int64")
    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch), len(chars) + NUM_RESERVED + 1


def test_loss_falls_on_a_tiny_corpus():
    tf_keras.utils.set_random_seed(1)
    texts = ["to be or not to be", "that is the question", "whether tis nobler in the mind"] * 4
    data, vocab_size = _corpus_dataset(texts, seq_len=32, batch=6)
    model = build_rnn_lm(RNNConfig(units=32, embedding_dim=16, layers=1), vocab_size)
    compile_language_model(model, rnn_optimizer(RNNConfig(learning_rate=1e-2), 60))
    before = model.evaluate(data, steps=2, verbose=0)[0]
    metrics = train_model(model, data, data, TrainingPlan(60, 60, 12, 2), patience=5, batch_size=6, train_examples=12)
    assert metrics["val_loss"] < before * 0.6
    assert metrics["val_token_accuracy"] > 0.3


def test_transformer_loss_falls_on_a_tiny_corpus():
    from models.families.transformer import TransformerConfig, build_transformer_lm, transformer_optimizer

    tf_keras.utils.set_random_seed(1)
    texts = ["to be or not to be", "that is the question", "whether tis nobler in the mind"] * 4
    data, vocab_size = _corpus_dataset(texts, seq_len=32, batch=6)
    config = TransformerConfig(layers=1, heads=2, width=32, ff_width=64, context=32, dropout=0.0,
                               learning_rate=5e-3, warmup_steps=5)
    model = build_transformer_lm(config, vocab_size)
    compile_language_model(model, transformer_optimizer(config, 60))
    before = model.evaluate(data, steps=2, verbose=0)[0]
    metrics = train_model(model, data, data, TrainingPlan(60, 60, 12, 2), patience=5, batch_size=6, train_examples=12)
    assert metrics["val_loss"] < before * 0.6


def test_warmup_cosine_schedule():
    from models.runtime.training import WarmupCosine

    schedule = WarmupCosine(peak=1e-3, floor=1e-4, warmup_steps=10, total_steps=110)
    assert float(schedule(0)) == pytest.approx(1e-4)  # 1/10 of the way up
    assert float(schedule(9)) == pytest.approx(1e-3)
    assert float(schedule(60)) == pytest.approx(5.5e-4)  # half way down the cosine
    assert float(schedule(110)) == pytest.approx(1e-4) and float(schedule(500)) == pytest.approx(1e-4)


def test_the_first_train_step_is_traced_once_because_the_optimizer_state_exists_before_it():
    """Slot variables created inside the first step would make tf.function trace it twice."""
    model = build_rnn_lm(RNNConfig(units=8, embedding_dim=4, layers=1), vocab_size=12)
    compile_language_model(model, rnn_optimizer(RNNConfig(), 10))
    assert len(model.optimizer.variables) > 1  # the step counter and Adam's two slots per variable
    traces, step = [], model.train_step

    def counted(data):
        traces.append(1)
        return step(data)

    model.train_step = counted
    ids = np.random.default_rng(0).integers(NUM_RESERVED, 12, size=(4, 6))
    model.fit(ids, ids, batch_size=4, epochs=2, verbose=0)
    assert len(traces) == 1
