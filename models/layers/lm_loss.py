"""Token-level loss and metrics for language models, with padding masked out.

The loss is the mean over real (non-pad) target tokens of the batch, not a mean of per-example
means, so long and short texts weigh by their token counts, as the Evaluator's metric does.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from models.layers.tokens import PAD_ID


def token_log_likelihoods(target_ids: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """log p(target_t | prefix) per position, [batch, time]; pad positions give 0."""
    target_ids = tf.cast(target_ids, tf.int32)
    log_probs = -tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=target_ids, logits=tf.cast(logits, tf.float32)
    )
    return log_probs * _mask(target_ids)


def masked_token_cross_entropy(target_ids: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Cross-entropy per real token (nats), averaged over all real tokens of the batch."""
    total = -tf.reduce_sum(token_log_likelihoods(target_ids, logits))
    return total / replica_share_of_tokens(target_ids)


def replica_share_of_tokens(target_ids: tf.Tensor) -> tf.Tensor:
    """The real tokens of the global batch divided by the number of replicas (at least 1).

    Keras sums the replicas' gradients of loss / replicas; dividing each replica's token sum
    by this makes that the mean over every real token of the global batch, however the
    tokens fall between replicas. With one replica it is the batch's real-token count."""
    tokens = tf.reduce_sum(_mask(target_ids))
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        tokens = context.all_reduce(tf.distribute.ReduceOp.SUM, tokens) / context.num_replicas_in_sync
    return tf.maximum(tokens, 1.0)


class MaskedTokenAccuracy(tf_keras.metrics.Mean):
    """Share of real (non-pad) target tokens whose arg-max prediction is right."""

    def __init__(self, name: str = "token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, tf.int64)
        hits = tf.cast(tf.equal(y_true, tf.argmax(y_pred, axis=-1)), tf.float32)
        return super().update_state(hits, sample_weight=_mask(y_true))


def _mask(target_ids: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.not_equal(target_ids, PAD_ID), tf.float32)


def label_smoothed_cross_entropy(target_ids: tf.Tensor, logits: tf.Tensor, smoothing: float) -> tf.Tensor:
    """Cross-entropy per real token against targets smoothed as in "Attention Is All You Need":
    1 - `smoothing` on the right token, `smoothing` spread evenly over the vocabulary."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    right = tf.gather(log_probs, tf.cast(target_ids, tf.int32), batch_dims=2)
    per_token = -(1.0 - smoothing) * right - smoothing * tf.reduce_mean(log_probs, axis=-1)
    return tf.reduce_sum(per_token * _mask(target_ids)) / replica_share_of_tokens(target_ids)
