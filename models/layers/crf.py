"""A linear-chain CRF over a tagger's per-word scores (Lample et al.'s BiLSTM-CRF).

A softmax per word picks each tag on its own; the CRF scores a whole tag sequence as the sum of
each word's score for its tag and a learned score for each pair of consecutive tags (and for the
first and the last tag), so that it can learn, say, that `I-PER` never follows `O`. Training
maximises the log-likelihood of the gold sequence (the forward algorithm sums over all others);
serving decodes the best sequence (Viterbi) and gives each word the marginal probability of its
tag (the gradient of the log partition by the word scores).

The layer passes its input through unchanged: the model's output stays the per-word scores, and
the layer holds the transition scores that `loss`, `decode` and `marginals` use. Class 0 of the
scores is the padding slot (never a tag) and is left out; target ids are tag ids + 1, 0 pads.
Sentences are left-aligned: a sentence's real words come first.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from models.layers.lm_loss import replica_share_of_tokens
from models.layers.tokens import PAD_ID


class CRF(tf_keras.layers.Layer):
    """[batch, words, 1 + tags] scores -> the same scores; holds the tag transition scores."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")  # transition scores stay float32 under mixed precision
        super().__init__(**kwargs)

    def build(self, input_shape: tf.TensorShape) -> None:
        tags = int(input_shape[-1]) - 1
        self.transitions = self.add_weight(name="transitions", shape=[tags, tags], initializer="zeros")
        self.start = self.add_weight(name="start", shape=[tags], initializer="zeros")
        self.end = self.add_weight(name="end", shape=[tags], initializer="zeros")
        super().build(input_shape)

    def call(self, scores: tf.Tensor) -> tf.Tensor:
        return tf.cast(scores, self.compute_dtype)

    # --- training ---

    def loss(self, target_ids: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
        """Negative log-likelihood of the gold tag sequences, per real word of the batch (as the
        per-word cross-entropy is, so learning rates carry over)."""
        tags, real = _tags_and_mask(target_ids)
        scores = _tag_scores(scores)
        gold = self._sequence_score(scores, tags, real)
        nll = (self.log_partition(scores, real) - gold) * tf.cast(tf.reduce_any(real, axis=1), tf.float32)
        return tf.reduce_sum(nll) / replica_share_of_tokens(target_ids)

    def _sequence_score(self, scores: tf.Tensor, tags: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
        weights = tf.cast(real, tf.float32)
        emitted = tf.reduce_sum(tf.gather(scores, tags, batch_dims=2) * weights, axis=1)
        pairs = tf.stack([tags[:, :-1], tags[:, 1:]], axis=-1)
        moved = tf.reduce_sum(tf.gather_nd(self.transitions, pairs) * weights[:, 1:], axis=1)
        last = tf.maximum(tf.reduce_sum(tf.cast(real, tf.int32), axis=1) - 1, 0)
        return (emitted + moved + tf.gather(self.start, tags[:, 0])
                + tf.gather(self.end, tf.gather(tags, last, batch_dims=1)))

    def log_partition(self, scores: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
        """log of the summed exp-scores of every tag sequence, per sentence (the forward algorithm)."""
        first = self.start[None] + scores[:, 0]

        def step(alpha: tf.Tensor, inputs: tuple) -> tf.Tensor:
            score, is_real = inputs
            moved = tf.reduce_logsumexp(alpha[:, :, None] + self.transitions[None], axis=1) + score
            return tf.where(is_real[:, None], moved, alpha)

        alphas = tf.scan(step, _time_major(scores, real), initializer=first)
        return tf.reduce_logsumexp(tf.concat([first[None], alphas], axis=0)[-1] + self.end[None], axis=1)

    # --- serving ---

    def decode(self, scores: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
        """[batch, words] class ids (tag ids + 1) of the best tag sequence (Viterbi); padding
        words repeat the last real word's."""
        scores = _tag_scores(scores)
        tags = tf.shape(scores)[-1]
        first = self.start[None] + scores[:, 0]
        unmoved = tf.zeros_like(first, tf.int32) + tf.range(tags)[None]

        def step(carry: tuple, inputs: tuple) -> tuple:
            best, _ = carry
            score, is_real = inputs
            candidates = best[:, :, None] + self.transitions[None]  # [batch, previous tag, tag]
            previous = tf.argmax(candidates, axis=1, output_type=tf.int32)
            moved = tf.reduce_max(candidates, axis=1) + score
            return tf.where(is_real[:, None], moved, best), tf.where(is_real[:, None], previous, unmoved)

        bests, previous = tf.scan(step, _time_major(scores, real), initializer=(first, unmoved))
        last = tf.argmax(tf.concat([first[None], bests], axis=0)[-1] + self.end[None], axis=1, output_type=tf.int32)
        earlier = tf.scan(lambda tag, back: tf.gather(back, tag, batch_dims=1), previous, initializer=last, reverse=True)
        return tf.transpose(tf.concat([earlier, last[None]], axis=0)) + 1

    def marginals(self, scores: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
        """[batch, words, tags] each word's probability of each tag over all tag sequences."""
        scores = _tag_scores(scores)
        with tf.GradientTape() as tape:
            tape.watch(scores)
            log_z = tf.reduce_sum(self.log_partition(scores, real))
        return tape.gradient(log_z, scores)


class ViterbiTokenAccuracy(tf_keras.metrics.Mean):
    """Share of real words whose tag in the Viterbi sequence is right (the CRF tagger's
    `token_accuracy`, which picks its kept weights)."""

    def __init__(self, decode: Optional[object] = None, name: str = "token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self._decode = decode  # the CRF's bound method: a layer here would be tracked and reset with the metric

    def update_state(self, y_true, y_pred, sample_weight=None):
        target_ids = tf.cast(y_true, tf.int32)
        real = tf.not_equal(target_ids, PAD_ID)
        hits = tf.cast(tf.equal(self._decode(y_pred, real), target_ids), tf.float32)
        return super().update_state(hits, sample_weight=tf.cast(real, tf.float32))


def crf_layer(model: tf_keras.Model) -> Optional[CRF]:
    """The model's CRF layer, None when it tags with a softmax per word."""
    return next((layer for layer in model.layers if isinstance(layer, CRF)), None)


def _tags_and_mask(target_ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    target_ids = tf.cast(target_ids, tf.int32)
    return tf.maximum(target_ids - 1, 0), tf.not_equal(target_ids, PAD_ID)


def _tag_scores(scores: tf.Tensor) -> tf.Tensor:
    return tf.cast(scores, tf.float32)[:, :, 1:]  # the padding slot is never a tag


def _time_major(scores: tf.Tensor, real: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The words after the first, time first, for `tf.scan`."""
    return tf.transpose(scores[:, 1:], [1, 0, 2]), tf.transpose(real[:, 1:])
