"""BART-style corruption: the configured noise on average, EOS and padding kept, a fresh draw
every epoch in the training input, the same draw for the same text in evaluation."""

import numpy as np
import pytest
import tensorflow as tf

from tasks.pair import noising
from models.layers.denoising import Noise, corrupt, corrupt_batch, text_seeds
from models.layers.tokens import EOS_ID

MASK = 5
TEXT = np.arange(10, 70)  # 60 distinct token ids


def sequence(length=60, padding=6):
    return tf.constant(np.concatenate([TEXT[:length], [EOS_ID], np.zeros(padding, np.int64)]), tf.int64)


def shares(noise, draws=400):
    """(share of the text's tokens gone from the output, masks per gone token), over many draws.
    A masked token is gone (its span shows one mask); a deleted one is gone without a trace."""
    gone = masks = 0
    for i in range(draws):
        out = corrupt(sequence(), tf.constant([i, 3]), noise).numpy()
        assert out.shape == (67,) and list(out).count(EOS_ID) == 1
        gone += 60 - len(set(out.tolist()) & set(TEXT.tolist()))
        masks += int(np.sum(out == MASK))
    return gone / (60 * draws), masks / max(gone, 1)


@pytest.mark.parametrize("mask_rate, span_lambda", [(0.3, 3.0), (0.15, 0.0), (0.4, 1.0)])
def test_masking_hides_the_configured_share_of_tokens_in_spans(mask_rate, span_lambda):
    masked, masks_per_token = shares(Noise(mask_id=MASK, mask_rate=mask_rate, span_lambda=span_lambda))
    assert masked == pytest.approx(mask_rate, abs=0.03)
    mean_span = span_lambda + np.exp(-span_lambda) if span_lambda else 1.0  # spans of max(1, Poisson) tokens
    assert masks_per_token == pytest.approx(1 / mean_span, rel=0.1)  # one mask per span


def test_deletion_removes_the_configured_share_of_tokens():
    deleted, masks = shares(Noise(mask_id=MASK, mask_rate=0.0, delete_rate=0.2))
    assert masks == 0
    assert deleted == pytest.approx(0.2, abs=0.02)


def test_the_same_seed_gives_the_same_corruption_and_texts_their_own():
    noise = Noise(mask_id=MASK)
    seeds = text_seeds(tf.constant(["the same text", "the same text", "another text"]))
    out = corrupt_batch(tf.stack([sequence()] * 3), seeds, noise).numpy()
    assert (out[0] == out[1]).all() and not (out[0] == out[2]).all()


def test_the_training_input_draws_fresh_noise_every_epoch():
    tf.random.set_seed(0)
    examples = tf.data.Dataset.from_tensors({"source_ids": sequence(), "target_ids": sequence()}).repeat(2)
    first, second = [e["source_ids"].numpy() for e in examples.map(noising(Noise(mask_id=MASK), fresh=True))]
    assert not (first == second).all()
    again, _ = [e["source_ids"].numpy() for e in examples.map(noising(Noise(mask_id=MASK), fresh=False))]
    same, _ = [e["source_ids"].numpy() for e in examples.map(noising(Noise(mask_id=MASK), fresh=False))]
    assert (again == same).all()
