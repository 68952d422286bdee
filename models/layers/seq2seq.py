"""What the two encoder-decoders (`models.families.rnn_seq2seq`, `models.families.transformer_seq2seq`) share.

A source is its token ids then EOS, right-padded; a target is its ids then EOS. The decoder
reads BOS + target[:-1] (teacher forcing) and predicts the target. Positions after the
source's first EOS are not part of it (padding, or anything a batch left there), so no
encoder output there is ever attended to.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from models.layers.tokens import BOS_ID, EOS_ID, PAD_ID


def source_mask(source_ids: tf.Tensor) -> tf.Tensor:
    """True at a source's real positions: up to and including its first EOS, never at PAD."""
    source_ids = tf.cast(source_ids, tf.int64)
    before_end = tf.cumsum(tf.cast(tf.equal(source_ids, EOS_ID), tf.int32), axis=1, exclusive=True) == 0
    return before_end & tf.not_equal(source_ids, PAD_ID)


def without_trailing_padding(ids: tf.Tensor) -> tf.Tensor:
    """ids [batch, time] cut after the last column in which some row holds a token (at least
    one column): a batch padded to the model's full length costs only its longest text."""
    used = tf.reduce_any(tf.not_equal(ids, PAD_ID), axis=0)
    width = tf.reduce_max(tf.where(used, tf.range(1, tf.shape(ids)[1] + 1), 0))
    return ids[:, : tf.maximum(width, 1)]


def decoder_inputs(target_ids: tf.Tensor) -> tf.Tensor:
    """BOS followed by the target shifted right by one (what the decoder reads at each step)."""
    target_ids = tf.cast(target_ids, tf.int64)
    bos = tf.fill([tf.shape(target_ids)[0], 1], tf.constant(BOS_ID, tf.int64))
    return tf.concat([bos, target_ids[:, :-1]], axis=1)


def with_end(ids: tf.RaggedTensor) -> tf.RaggedTensor:
    """Ragged ids with EOS appended to each row."""
    eos = tf.fill([ids.nrows(), 1], tf.constant(EOS_ID, ids.dtype))
    return tf.concat([ids, eos], axis=1)


def built(model: Any) -> Any:
    """`model` with its weights created, by a call on a one-token source and target."""
    one = tf.ones([1, 1], tf.int64)
    model((one, one))
    return model


def attention_of_output(model: Any, source_ids: tf.Tensor, output_ids: tf.Tensor) -> tf.Tensor:
    """The attention of `model` over the source while it produces `output_ids` (a decoded
    target, EOS then PAD): [batch, target positions, source positions], each row summing to 1
    over the real source positions (for a Transformer, the last layer's cross-attention
    averaged over heads)."""
    _, weights = model.forward(source_ids, decoder_inputs(output_ids), training=False)
    return weights
