"""BART's noise for denoising pre-training: text infilling (spans of Poisson length replaced
by one mask token each) and token deletion, on one sequence of ids at a time.

The spans come from a renewal process along the sequence: a gap of unmasked tokens
(geometric length), then a span (Poisson length, at least 1), and so on, so spans never
overlap and the share of masked tokens is `mask_rate` on average, whatever the span length.
Deletion then removes each remaining token with the probability that makes `delete_rate` the
deleted share of all tokens. EOS and padding are never touched. Randomness is stateless (from
`seed`), so the same seed gives the same corruption: the training input pipeline draws a
fresh seed per example each epoch, evaluation derives one from the text.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from models.layers.tokens import EOS_ID, PAD_ID


@dataclasses.dataclass(frozen=True)
class Noise:
    mask_id: int  # the mask piece's id in the vocabulary
    mask_rate: float = 0.3
    span_lambda: float = 3.0
    delete_rate: float = 0.0


def _spans(length: tf.Tensor, seed: tf.Tensor, noise: Noise) -> tuple[tf.Tensor, tf.Tensor]:
    """(masked [length] bool, span_start [length] bool) for one sequence."""
    mean_span = noise.span_lambda + tf.exp(-noise.span_lambda) if noise.span_lambda > 0 else 1.0  # E[max(1, Poisson)]
    mean_gap = mean_span * (1.0 - noise.mask_rate) / noise.mask_rate
    success = 1.0 / (1.0 + mean_gap)  # geometric gaps (failures before a success) with that mean
    uniform = tf.random.stateless_uniform([length], seed, minval=1e-7, maxval=1.0)
    gaps = tf.cast(tf.floor(tf.math.log(uniform) / tf.math.log1p(-success)), tf.int32)
    if noise.span_lambda > 0:
        spans = tf.random.stateless_poisson([length], seed + 1, noise.span_lambda, dtype=tf.int32)
        spans = tf.maximum(spans, 1)
    else:
        spans = tf.ones([length], tf.int32)
    starts = tf.cumsum(gaps + spans, exclusive=True) + gaps  # each span's first position
    positions = tf.range(length)[:, None]
    masked = tf.reduce_any((positions >= starts[None]) & (positions < (starts + spans)[None]), axis=1)
    span_start = tf.reduce_any(positions == starts[None], axis=1)
    return masked, span_start


def corrupt(ids: tf.Tensor, seed: tf.Tensor, noise: Noise) -> tf.Tensor:
    """ids [length] (tokens, EOS, PAD) -> the corrupted ids, right-padded to the same length."""
    ids = tf.cast(ids, tf.int64)
    seed = tf.cast(seed, tf.int64)
    length = tf.shape(ids)[0]
    text = tf.not_equal(ids, PAD_ID) & tf.not_equal(ids, EOS_ID)
    if noise.mask_rate > 0:
        masked, span_start = _spans(length, seed, noise)
    else:
        masked = span_start = tf.zeros([length], tf.bool)
    masked &= text
    span_start &= masked
    delete_given_unmasked = noise.delete_rate / (1.0 - noise.mask_rate)
    deleted = text & ~masked & (tf.random.stateless_uniform([length], seed + 2) < delete_given_unmasked)
    keep = tf.not_equal(ids, PAD_ID) & ~deleted & (~masked | span_start)
    corrupted = tf.boolean_mask(tf.where(span_start, tf.constant(noise.mask_id, tf.int64), ids), keep)
    return tf.pad(corrupted, [[0, length - tf.shape(corrupted)[0]]])


def text_seeds(texts: tf.Tensor) -> tf.Tensor:
    """A stateless seed [batch, 2] from each text: the same text is always corrupted alike."""
    hashed = tf.strings.to_hash_bucket_fast(texts, 2**31 - 1)
    return tf.stack([hashed, tf.zeros_like(hashed)], axis=1)


def corrupt_batch(ids: tf.Tensor, seeds: tf.Tensor, noise: Noise) -> tf.Tensor:
    """`corrupt` on each row of ids [batch, length] with its row of seeds [batch, 2]."""
    return tf.map_fn(lambda row: corrupt(row[0], row[1], noise), (tf.cast(ids, tf.int64), tf.cast(seeds, tf.int64)),
                     fn_output_signature=tf.TensorSpec([None], tf.int64))
