"""The Transformer family's decoder block: pre-layer-norm causal self-attention and a GELU
feed-forward, each on a residual branch (GPT-2 / nanoGPT's block).

Written from tf_keras layers rather than keras-nlp's `TransformerDecoder`, which fails under a
`mixed_bfloat16` policy on Keras 2 (its attention scales the query with a NumPy-style `sqrt`
that symbolic bfloat16 tensors lack). Attention weights are computed in float32 under any
policy, so a float16 softmax never overflows. `call_cached` runs new positions against a
key/value cache for decoding, with plain TensorFlow ops, so TensorFlow Serving can run it.
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf
import tf_keras

_MASKED = -1e9  # the score of a position a query may not attend to (float32)


class CausalSelfAttention(tf_keras.layers.Layer):
    """Multi-head self-attention in which position i attends to positions <= i; one fused
    query/key/value projection."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.width, self.heads, self.dropout_rate = width, heads, dropout
        self.head_dim = width // heads
        self.qkv = tf_keras.layers.Dense(3 * width, name="qkv")
        self.output_projection = tf_keras.layers.Dense(width, name="output")
        self.dropout = tf_keras.layers.Dropout(dropout)

    def _queries_keys_values(self, x: tf.Tensor) -> list[tf.Tensor]:
        """Three tensors [batch, time, heads, head_dim]."""
        qkv = self.qkv(x)
        shape = tf.concat([tf.shape(x)[:2], [3, self.heads, self.head_dim]], axis=0)
        return tf.unstack(tf.reshape(qkv, shape), axis=2)

    def _attend(self, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, allowed: tf.Tensor, training: bool) -> tf.Tensor:
        """Softmax(q k^T / sqrt(d)) v over the key positions `allowed` [queries, keys] marks."""
        scores = tf.einsum("bqhd,bkhd->bhqk", q, k)
        scores = tf.cast(scores, tf.float32) / math.sqrt(self.head_dim)
        scores = tf.where(allowed, scores, _MASKED)
        weights = self.dropout(tf.cast(tf.nn.softmax(scores, axis=-1), v.dtype), training=training)
        attended = tf.einsum("bhqk,bkhd->bqhd", weights, v)
        return self.output_projection(tf.reshape(attended, tf.concat([tf.shape(q)[:2], [self.width]], axis=0)))

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        q, k, v = self._queries_keys_values(x)
        length = tf.shape(x)[1]
        causal = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)
        return self._attend(q, k, v, causal, training)

    def call_cached(self, x: tf.Tensor, cache: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Attention output for `x` at positions index.. and the cache [batch, 2, max_length,
        heads, head_dim] with their keys and values written in."""
        q, k, v = self._queries_keys_values(x)
        new = tf.shape(x)[1]
        written = tf.cast(tf.stack([k, v], axis=1), cache.dtype)
        cache = tf.concat([cache[:, :, :index], written, cache[:, :, index + new :]], axis=2)
        keys, values = tf.unstack(cache, axis=1)
        query_positions = index + tf.range(new)
        key_positions = tf.range(tf.shape(cache)[2])
        allowed = key_positions[None, :] <= query_positions[:, None]
        return self._attend(q, tf.cast(keys, q.dtype), tf.cast(values, q.dtype), allowed, False), cache

    def get_config(self) -> dict:
        return {**super().get_config(), "width": self.width, "heads": self.heads, "dropout": self.dropout_rate}


class DecoderBlock(tf_keras.layers.Layer):
    """x + attention(norm(x)), then + feed_forward(norm(x)); dropout on both branches."""

    def __init__(self, width: int, heads: int, ff_width: int, dropout: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.width, self.heads, self.ff_width, self.dropout_rate = width, heads, ff_width, dropout
        self.attention_norm = tf_keras.layers.LayerNormalization(epsilon=1e-5, name="attention_norm")
        self.attention = CausalSelfAttention(width, heads, dropout, name="attention")
        self.feed_forward_norm = tf_keras.layers.LayerNormalization(epsilon=1e-5, name="feed_forward_norm")
        self.feed_forward_in = tf_keras.layers.Dense(ff_width, activation="gelu", name="feed_forward_in")
        self.feed_forward_out = tf_keras.layers.Dense(width, name="feed_forward_out")
        self.dropout = tf_keras.layers.Dropout(dropout)

    def _feed_forward(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        branch = self.feed_forward_out(self.feed_forward_in(self.feed_forward_norm(x)))
        return x + self.dropout(branch, training=training)

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), training=training), training=training)
        return self._feed_forward(x, training)

    def call_cached(self, x: tf.Tensor, cache: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The block at positions index.. given the earlier positions' keys and values."""
        attended, cache = self.attention.call_cached(self.attention_norm(x), cache, index)
        return self._feed_forward(x + attended, False), cache

    def get_config(self) -> dict:
        return {
            **super().get_config(), "width": self.width, "heads": self.heads,
            "ff_width": self.ff_width, "dropout": self.dropout_rate,
        }
