"""The encoder-decoders: masking, causality, cached decoding, beam search, mixed precision."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models.runtime.acceleration import precision_policy
from models.serving.decoding import (OUTPUT_MARGIN, OUTPUT_PER_SOURCE_TOKEN, beam_search_beams, decode_seq2seq,
                                     decode_seq2seq_beams, decode_seq2seq_in_chunks, repeat_for_beams)
from models.layers.lm_loss import label_smoothed_cross_entropy
from models.families.rnn import RNNConfig
from models.layers.seq2seq import attention_of_output, decoder_inputs, source_mask
from models.families.rnn_seq2seq import build_rnn_seq2seq
from models.families.transformer_seq2seq import build_transformer_seq2seq
from models.layers.tokens import BOS_ID, EOS_ID, PAD_ID
from models.families.transformer import TransformerConfig

VOCAB = 9  # PAD, BOS, EOS and six text tokens
FAMILIES = ["rnn-additive", "rnn-multiplicative-gru", "transformer", "transformer-separate-embeddings"]


def tiny(variant: str, vocab: int = VOCAB):
    tf_keras.utils.set_random_seed(5)
    if variant.startswith("rnn"):
        cell = "gru" if variant.endswith("gru") else "lstm"
        attention = "multiplicative" if "multiplicative" in variant else "additive"
        config = RNNConfig(units=8, embedding_dim=6, layers=2, cell=cell, attention=attention)
        return build_rnn_seq2seq(config, vocab)
    config = TransformerConfig(layers=2, encoder_layers=1, heads=2, width=8, ff_width=16,
                               shared_embeddings=not variant.endswith("separate-embeddings"))
    return build_transformer_seq2seq(config, vocab)


SOURCE = tf.constant([[4, 5, 6, 7, EOS_ID, PAD_ID, PAD_ID], [8, 3, EOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]], tf.int64)
TARGET = tf.constant([[3, 4, 5, 6, 7, EOS_ID], [6, 6, 8, EOS_ID, PAD_ID, PAD_ID]], tf.int64)


def log_probs_after(model, source, prefix):
    """log p(next target token | source, BOS + prefix) from a full forward pass, PAD and BOS excluded."""
    logits = model((source, tf.constant([[BOS_ID] + list(prefix)], tf.int64))).numpy()[0, -1]
    logits[[PAD_ID, BOS_ID]] = -1e9
    return logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()


def test_source_mask_ends_at_the_first_eos():
    ids = tf.constant([[4, 5, EOS_ID, 6, EOS_ID, PAD_ID], [4, PAD_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])
    assert source_mask(ids).numpy().tolist() == [[True, True, True, False, False, False],
                                                 [True, False, False, False, False, False]]


@pytest.mark.parametrize("variant", FAMILIES)
def test_source_padding_and_tokens_past_the_end_change_nothing(variant):
    model = tiny(variant)
    logits = model((SOURCE, decoder_inputs(TARGET))).numpy()
    garbage = SOURCE.numpy().copy()
    garbage[0, 5:] = [3, 8]  # tokens after EOS
    garbage[1, 3:] = [7, EOS_ID, 4, 4]
    longer = np.pad(garbage, [[0, 0], [0, 5]])  # more padding
    for source in (garbage, longer):
        np.testing.assert_allclose(model((tf.constant(source), decoder_inputs(TARGET))).numpy(), logits, atol=1e-5)
    changed_real_token = SOURCE.numpy().copy()
    changed_real_token[0, 1] = 8
    assert not np.allclose(model((tf.constant(changed_real_token), decoder_inputs(TARGET))).numpy()[0], logits[0])


@pytest.mark.parametrize("variant", FAMILIES)
def test_later_target_tokens_do_not_change_earlier_logits(variant):
    model = tiny(variant)
    changed = TARGET.numpy().copy()
    changed[:, 3:] = 7
    before = model((SOURCE, decoder_inputs(TARGET))).numpy()
    after = model((SOURCE, decoder_inputs(tf.constant(changed)))).numpy()
    np.testing.assert_allclose(after[:, :4], before[:, :4], atol=1e-5)  # decoder input t is target t - 1
    assert not np.allclose(after[0, 4:], before[0, 4:])


@pytest.mark.parametrize("variant", FAMILIES)
def test_step_decoding_gives_the_logits_of_the_full_forward_pass(variant):
    model = tiny(variant)
    inputs = decoder_inputs(TARGET)
    step, state = model.decoder(model.encode(SOURCE), 1)
    stepped = []
    for position in range(TARGET.shape[1]):
        logits, state = step(inputs[:, position], state, tf.constant(position))
        stepped.append(logits)
    np.testing.assert_allclose(tf.stack(stepped, 1).numpy(), model((SOURCE, inputs)).numpy(), atol=1e-5)


@pytest.mark.parametrize("variant", FAMILIES)
def test_beam_width_one_is_greedy(variant):
    model = tiny(variant)
    source = SOURCE[:1]
    greedy = []
    while len(greedy) < 6 and (not greedy or greedy[-1] != EOS_ID):
        greedy.append(int(np.argmax(log_probs_after(model, source, greedy))))
    ids, _ = decode_seq2seq(model, source, 6, beam_width=1)
    assert ids.numpy()[0].tolist() == greedy + [PAD_ID] * (6 - len(greedy))
    as_tensor, _ = decode_seq2seq(model, source, tf.constant(6), beam_width=tf.constant(1))
    np.testing.assert_array_equal(as_tensor.numpy(), ids.numpy())


@pytest.mark.parametrize("variant", ["rnn-additive", "transformer"])
def test_a_wide_beam_finds_the_exhaustive_best(variant):
    vocab = 5  # PAD, BOS, EOS, two text tokens
    model = tiny(variant, vocab)
    source, max_length = tf.constant([[3, 4, 4, EOS_ID]], tf.int64), 3
    candidates = []
    for length in range(1, max_length + 1):
        for tokens in itertools.product([EOS_ID, 3, 4], repeat=length):
            if EOS_ID in tokens[:-1] or (length < max_length and tokens[-1] != EOS_ID):
                continue  # a sequence ends at its first EOS, or at the length limit
            score = sum(log_probs_after(model, source, tokens[:i])[t] for i, t in enumerate(tokens))
            candidates.append((score, tokens))
    best_score, best = max(candidates)
    found, score = decode_seq2seq(model, source, max_length, beam_width=16, length_penalty=0.0)
    assert tuple(t for t in found.numpy()[0] if t != PAD_ID) == best
    assert float(score[0]) == pytest.approx(best_score, abs=1e-4)


def uncached_beam_search(model, source, max_length, beam_width):
    """The reference: beam search whose step reruns the full forward pass over the whole output
    so far, against the source as given (no cache, nothing trimmed)."""
    memory = repeat_for_beams(source, beam_width)

    def step(token, prefix, position):
        prefix = tf.concat([prefix, token[:, None]], axis=1)
        return model((memory, prefix))[:, -1], prefix

    batch = source.shape[0]
    return beam_search_beams(step, tf.zeros([batch * beam_width, 0], tf.int64), tf.zeros([batch, 0], tf.int64),
                             tf.zeros([batch], tf.int32), max_length, beam_width)


@pytest.mark.parametrize("variant", FAMILIES)
def test_decoding_a_padded_source_with_a_growing_cache_matches_full_forward_passes(variant):
    model = tiny(variant)
    padded = tf.pad(SOURCE, [[0, 0], [0, 40]])  # as the transform pads a source to its full length
    ids, scores = decode_seq2seq_beams(model, padded, 12, beam_width=3)
    expected_ids, expected_scores = uncached_beam_search(model, SOURCE, 12, 3)
    np.testing.assert_array_equal(ids.numpy(), expected_ids.numpy())
    np.testing.assert_allclose(scores.numpy(), expected_scores.numpy(), atol=1e-4)


def test_an_output_is_bounded_by_twice_its_source_plus_a_margin():
    model = tiny("transformer")  # untrained: it rarely chooses EOS, so it writes up to the bound
    ids, _ = decode_seq2seq(model, tf.pad(SOURCE, [[0, 0], [0, 100]]), 100, beam_width=2)
    assert ids.shape[1] == OUTPUT_PER_SOURCE_TOKEN * 5 + OUTPUT_MARGIN  # the longest source: 4 tokens and EOS
    ids, _ = decode_seq2seq(model, SOURCE, 6, beam_width=2)
    assert ids.shape[1] == 6  # a smaller max_length still rules


@pytest.mark.parametrize("variant", ["rnn-additive", "transformer"])
def test_decoding_in_length_sorted_chunks_gives_each_source_its_own_decoding(variant):
    model = tiny(variant)
    rng = np.random.default_rng(3)
    sources = np.zeros([5, 9], np.int64)
    for row, length in enumerate([6, 2, 8, 3, 5]):
        sources[row, :length] = rng.integers(3, VOCAB, length)
        sources[row, length] = EOS_ID
    ids, scores = decode_seq2seq_in_chunks(model, tf.constant(sources), 10, 2, chunk_size=2)
    assert ids.shape == (5, 10)
    for row in range(5):
        alone, score = decode_seq2seq(model, tf.constant(sources[row:row + 1]), 10, beam_width=2)
        expected = np.pad(alone.numpy()[0], [0, 10 - alone.shape[1]])
        np.testing.assert_array_equal(ids.numpy()[row], expected)
        assert float(scores[row]) == pytest.approx(float(score[0]), abs=1e-4)


@pytest.mark.parametrize("variant", ["rnn-additive", "transformer"])
def test_attention_of_a_decoded_output_covers_the_real_source_only(variant):
    model = tiny(variant)
    ids, _ = decode_seq2seq(model, SOURCE, 5, beam_width=2)
    weights = attention_of_output(model, SOURCE, ids).numpy()
    assert weights.shape == (2, 5, SOURCE.shape[1])
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(weights[~source_mask(SOURCE).numpy()[:, None, :].repeat(5, 1)] < 1e-6)


@pytest.mark.parametrize("variant", ["rnn-additive", "transformer"])
def test_trains_and_decodes_under_mixed_bfloat16(variant):
    with precision_policy("mixed_bfloat16"):
        model = tiny(variant)
    optimizer = tf_keras.optimizers.Adam(1e-2)
    with tf.GradientTape() as tape:
        logits = model((SOURCE, decoder_inputs(TARGET)), training=True)
        loss = label_smoothed_cross_entropy(TARGET, logits, 0.1)
    optimizer.minimize(loss, model.trainable_variables, tape=tape)
    assert logits.dtype == tf.float32 and np.isfinite(float(loss))
    ids, score = decode_seq2seq(model, SOURCE, 4, beam_width=2)
    assert ids.shape == (2, 4) and np.all(np.isfinite(score.numpy()))


def test_label_smoothing_matches_its_definition():
    logits = tf.constant(np.random.default_rng(0).normal(size=(2, 3, VOCAB)), tf.float32)
    targets = tf.constant([[3, 4, EOS_ID], [5, EOS_ID, PAD_ID]], tf.int64)
    log_probs = tf.nn.log_softmax(logits).numpy()
    expected = [
        -(0.9 * log_probs[b, t, targets[b, t]] + 0.1 * log_probs[b, t].mean())
        for b in range(2) for t in range(3) if targets[b, t] != PAD_ID
    ]
    assert float(label_smoothed_cross_entropy(targets, logits, 0.1)) == pytest.approx(np.mean(expected), rel=1e-5)
