"""The hierarchical VAE's pieces outside its model class (`models.families.hvae_model`): the KL
terms, the sinusoidal code of a segment's index, counting a text's real tokens, and the
callback that re-initialises the decoder when the autoencoder warm-up ends."""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from models.layers.tokens import PAD_ID


def kl_per_latent_unit(mu: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """KL(N(mu, sigma) || N(0, 1)) of each latent unit [batch, latent] (nats)."""
    return 0.5 * (tf.square(mu) + tf.square(sigma) - 1.0 - 2.0 * tf.math.log(sigma))


def kl_to_standard_normal(mu: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """KL(N(mu, sigma) || N(0, 1)) per example, summed over latent units (nats)."""
    return tf.reduce_sum(kl_per_latent_unit(mu, sigma), axis=-1)


class DecoderReset(tf_keras.callbacks.Callback):
    """Calls `TextVAE.reset_decoder` once, before the first training step at or after `step`."""

    def __init__(self, step: int):
        super().__init__()
        self.step, self.done = step, False

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if not self.done and int(self.model.optimizer.iterations.numpy()) >= self.step:
            self.model.reset_decoder()
            self.done = True


def segment_positions(segments: tf.Tensor, width: int = 16) -> tf.Tensor:
    """A sinusoidal code of each segment's index [segments, width]: where a flat readout is."""
    index = tf.cast(tf.range(segments), tf.float32)[:, None]
    angles = index / tf.pow(100.0, tf.range(0, width, 2, dtype=tf.float32) / width)
    return tf.concat([tf.sin(angles), tf.cos(angles)], -1)


def count_real(hits: tf.Tensor, target_ids: tf.Tensor) -> tf.Tensor:
    """Per text, how many real (non-pad) positions `hits` marks."""
    return tf.reduce_sum(tf.cast(hits & (target_ids != PAD_ID), tf.int64), axis=1)
