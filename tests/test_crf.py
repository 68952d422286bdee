"""The tagger's CRF layer against brute force over every tag sequence of short sentences: its log
partition, loss, Viterbi decode and marginals; and a CRF tagger compiled and trained by the registry."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from models import registry
from models.layers.crf import CRF, crf_layer

TAGS = 3
LENGTHS = [4, 2, 1]  # real words of each sentence, padded to 4


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    crf = CRF()
    crf.build(tf.TensorShape([None, None, TAGS + 1]))
    for weight in crf.weights:
        weight.assign(rng.normal(size=weight.shape))
    scores = rng.normal(size=(len(LENGTHS), 4, TAGS + 1)).astype(np.float32)
    real = np.array([[i < n for i in range(4)] for n in LENGTHS])
    return crf, scores, real


def sequence_scores(crf, scores, sentence):
    """Every tag sequence of the sentence's real words, and each one's score, by the definition."""
    transitions, start, end = (w.numpy() for w in (crf.transitions, crf.start, crf.end))
    sequences = list(itertools.product(range(TAGS), repeat=LENGTHS[sentence]))
    values = [start[s[0]] + end[s[-1]] + sum(scores[sentence, i, 1 + t] for i, t in enumerate(s))
              + sum(transitions[a, b] for a, b in zip(s, s[1:])) for s in sequences]
    return sequences, np.array(values)


def test_log_partition_decode_and_marginals_equal_brute_force(case):
    crf, scores, real = case
    log_z = crf.log_partition(tf.constant(scores[:, :, 1:]), tf.constant(real)).numpy()
    decoded = crf.decode(tf.constant(scores), tf.constant(real)).numpy()
    marginals = crf.marginals(tf.constant(scores), tf.constant(real)).numpy()
    for sentence, length in enumerate(LENGTHS):
        sequences, values = sequence_scores(crf, scores, sentence)
        assert log_z[sentence] == pytest.approx(np.log(np.exp(values).sum()), rel=1e-5)
        best = sequences[int(values.argmax())]
        assert list(decoded[sentence, :length]) == [t + 1 for t in best]  # class ids: tag + 1
        probability = np.exp(values - values.max()) / np.exp(values - values.max()).sum()
        expected = np.zeros((length, TAGS))
        for sequence, p in zip(sequences, probability):
            expected[np.arange(length), sequence] += p
        np.testing.assert_allclose(marginals[sentence, :length], expected, atol=1e-5)
        assert not marginals[sentence, length:].any()  # padding words have no tag


def test_the_loss_is_the_gold_sequences_negative_log_likelihood_per_word(case):
    crf, scores, real = case
    gold = [(0, 2, 2, 1), (1, 0), (2,)]
    targets = np.zeros((len(LENGTHS), 4), np.int64)
    expected = 0.0
    for sentence, tags in enumerate(gold):
        targets[sentence, : len(tags)] = np.array(tags) + 1
        sequences, values = sequence_scores(crf, scores, sentence)
        expected += np.log(np.exp(values).sum()) - values[sequences.index(tags)]
    loss = crf.loss(tf.constant(targets), tf.constant(scores)).numpy()
    assert loss == pytest.approx(expected / sum(LENGTHS), rel=1e-5)


def test_a_crf_tagger_trains_on_the_crfs_likelihood_and_decodes_what_it_learned():
    """After the first word, every word is the same word, its tag alternating A B A B ... from
    the first word's tag: the order of the tags is what there is to learn."""
    config = registry.get("rnn").config_class(size="small", units=8, layers=1, crf=True)
    model = registry.build_model("rnn", "tagger", config, vocab_size=10, num_classes=TAGS + 1)
    assert crf_layer(model) is not None
    registry.compile_model("rnn", "tagger", model, config, total_steps=200)
    rng = np.random.default_rng(0)
    first = rng.integers(0, 2, size=64)
    ids = np.full((64, 6), 5)
    ids[:, 0] = 3 + first  # id 3: the sentence starts with A, id 4: with B
    tags = (first[:, None] + np.arange(6)[None]) % 2 + 1  # class ids 1 (A) and 2 (B)
    chars = np.zeros((64, 6, 2), np.int64)
    chars[:, :, 0] = ids
    history = model.fit({"input_ids": ids, "char_ids": chars}, tags, epochs=60, batch_size=32, verbose=0)
    assert history.history["token_accuracy"][-1] == 1.0
    decoded = crf_layer(model).decode(model({"input_ids": ids, "char_ids": chars}), tf.constant(ids > 0)).numpy()
    np.testing.assert_array_equal(decoded, tags)
