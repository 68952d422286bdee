"""Pooling a classifier's sequence over the text's real positions (padding never wins a max), or
taking its last real position (where a causal model has read the whole text)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tf_keras


def masked_max_pool_layer(name: str = "max_pool") -> "tf_keras.layers.Layer":
    """A layer mapping ([batch, time, features], token ids) to the max over real positions."""
    import tensorflow as tf
    import tf_keras

    from models.layers.tokens import PAD_ID

    class MaskedMaxPool(tf_keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True  # consumes the implicit mask; the explicit one decides

        def call(self, inputs: list) -> tf.Tensor:
            sequence, ids = inputs
            real = tf.not_equal(ids, PAD_ID)[:, :, None]
            return tf.reduce_max(tf.where(real, sequence, tf.cast(-1e4, sequence.dtype)), axis=1)

        def compute_mask(self, inputs: list, mask=None) -> None:
            return None

    return MaskedMaxPool(name=name)


def last_position_layer(name: str = "last_position") -> "tf_keras.layers.Layer":
    """A layer mapping ([batch, time, features], token ids) to the features at each text's last
    real position: GPT's classifier reads the state after the whole text."""
    import tensorflow as tf
    import tf_keras

    from models.layers.tokens import PAD_ID

    class LastPosition(tf_keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs: list) -> tf.Tensor:
            sequence, ids = inputs
            last = tf.maximum(tf.reduce_sum(tf.cast(tf.not_equal(ids, PAD_ID), tf.int32), axis=1) - 1, 0)
            return tf.gather(sequence, last, batch_dims=1)

        def compute_mask(self, inputs: list, mask=None) -> None:
            return None

    return LastPosition(name=name)
