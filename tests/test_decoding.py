"""Decoding: greedy, sampling filters, beam search, and the families' step functions."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models.serving.decoding import beam_search, filter_logits, sample
from models.families.rnn import RNNConfig, build_rnn_lm, rnn_decoder
from models.layers.tokens import BOS_ID, EOS_ID, PAD_ID
from models.families.transformer import TransformerConfig, build_transformer_lm, transformer_decoder

VOCAB = 7  # PAD, BOS, EOS and four text tokens


def tiny(family):
    tf_keras.utils.set_random_seed(3)
    if family == "rnn":
        return build_rnn_lm(RNNConfig(units=8, embedding_dim=4, layers=2), VOCAB), rnn_decoder
    config = TransformerConfig(layers=2, heads=2, width=8, ff_width=16, context=16)
    return build_transformer_lm(config, VOCAB), transformer_decoder


def log_probs_of(model, prefix):
    """log p(next token | BOS + prefix) from a full forward pass, PAD and BOS excluded."""
    logits = model(tf.constant([[BOS_ID] + list(prefix)], tf.int64)).numpy()[0, -1]
    logits[[PAD_ID, BOS_ID]] = -1e9
    return logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_step_decoder_matches_the_full_forward_pass(family):
    model, decoder = tiny(family)
    ids = tf.constant(np.random.default_rng(0).integers(3, VOCAB, (2, 6)), tf.int64)
    step, state = decoder(model, 2, 6)
    stepped = []
    for position in range(6):
        logits, state = step(ids[:, position], state, position)
        stepped.append(logits)
    np.testing.assert_allclose(tf.stack(stepped, 1).numpy(), model(ids).numpy(), atol=1e-5)


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_causality_later_tokens_do_not_change_earlier_logits(family):
    model, _ = tiny(family)
    ids = np.random.default_rng(1).integers(3, VOCAB, (1, 10))
    changed = ids.copy()
    changed[0, 6:] = (changed[0, 6:] + 1 - 3) % (VOCAB - 3) + 3
    before, after = model(tf.constant(ids)).numpy(), model(tf.constant(changed)).numpy()
    np.testing.assert_allclose(before[0, :6], after[0, :6], atol=1e-5)
    assert not np.allclose(before[0, 6:], after[0, 6:])


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_greedy_follows_the_argmax_and_equals_beam_width_one(family):
    model, decoder = tiny(family)
    prompt, lengths = tf.constant([[4, 5]], tf.int64), tf.constant([2])
    greedy = sample(*decoder(model, 1, 6), prompt, lengths, 4, temperature=0.0).numpy()[0]
    assert list(greedy[:2]) == [4, 5]
    for t in range(2, 6):
        if EOS_ID in greedy[2:t]:  # finished: only padding follows
            assert greedy[t] == PAD_ID
        else:
            assert greedy[t] == int(np.argmax(log_probs_of(model, greedy[:t])))
    beam, _ = beam_search(*decoder(model, 1, 6), prompt, lengths, 4, beam_width=1)
    np.testing.assert_array_equal(beam.numpy()[0], greedy)


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_beam_as_wide_as_the_vocabulary_finds_the_exhaustive_best(family):
    model, decoder = tiny(family)
    prompt = [3]
    candidates = []
    for first in range(2, VOCAB):  # EOS or a text token; PAD and BOS are never generated
        first_lp = log_probs_of(model, prompt)[first]
        if first == EOS_ID:
            candidates.append((first_lp, (first, PAD_ID)))
            continue
        for second in range(2, VOCAB):
            candidates.append((first_lp + log_probs_of(model, prompt + [first])[second], (first, second)))
    best_score, best = max(candidates)
    found, score = beam_search(*decoder(model, VOCAB, 3), tf.constant([prompt], tf.int64), tf.constant([1]), 2,
                               beam_width=VOCAB, length_penalty=0.0)
    assert tuple(found.numpy()[0, 1:]) == best
    assert float(score[0]) == pytest.approx(best_score, abs=1e-4)


def test_beam_score_is_the_continuation_log_probability_over_the_gnmt_penalty():
    model, decoder = tiny("rnn")
    found, score = beam_search(*decoder(model, 3, 5), tf.constant([[3]], tf.int64), tf.constant([1]), 4,
                               beam_width=3, length_penalty=1.0)
    tokens = [int(t) for t in found.numpy()[0]]
    continuation = [t for t in tokens[1:] if t != PAD_ID]
    log_prob = sum(log_probs_of(model, tokens[: i + 1])[t] for i, t in enumerate(continuation))
    assert float(score[0]) == pytest.approx(log_prob / ((5 + len(continuation)) / 6), abs=1e-4)


def test_top_k_never_keeps_a_token_outside_the_k_best():
    logits = tf.constant(np.random.default_rng(2).normal(size=(64, 50)), tf.float32)
    kept = filter_logits(logits, top_k=5).numpy() > -1e8
    top5 = np.argsort(-logits.numpy(), axis=1)[:, :5]
    assert kept.sum(axis=1).tolist() == [5] * 64
    assert all(set(np.flatnonzero(row)) == set(best) for row, best in zip(kept, top5))
    draws = tf.random.stateless_categorical(filter_logits(logits, top_k=5), 200, seed=[1, 2]).numpy()
    assert all(set(d) <= set(best) for d, best in zip(draws, top5))


def test_top_p_keeps_exactly_the_nucleus():
    logits = tf.constant(np.random.default_rng(3).normal(size=(32, 40)) * 2, tf.float32)
    kept = filter_logits(logits, top_p=0.8).numpy() > -1e8
    probs = tf.nn.softmax(logits).numpy()
    for row_probs, row_kept in zip(probs, kept):
        order = np.argsort(-row_probs)
        needed = int(np.searchsorted(np.cumsum(row_probs[order]), 0.8) + 1)  # fewest reaching 0.8
        assert set(np.flatnonzero(row_kept)) == set(order[:needed])


def test_sampling_is_deterministic_for_a_seed_and_stops_after_eos():
    model, decoder = tiny("transformer")
    prompt, lengths = tf.constant([[4, 5, 6], [3, 0, 0]], tf.int64), tf.constant([3, 1])
    run = lambda seed: sample(*decoder(model, 2, 11), prompt, lengths, 8, temperature=1.0, top_k=4, seed=seed).numpy()
    first, again = run(11), run(11)
    np.testing.assert_array_equal(first, again)
    assert not all(np.array_equal(first, run(s)) for s in range(12, 16))
    assert list(first[0, :3]) == [4, 5, 6] and first[1, 0] == 3
    for row in first:
        if EOS_ID in row:
            assert set(row[list(row).index(EOS_ID) + 1:]) <= {PAD_ID}
