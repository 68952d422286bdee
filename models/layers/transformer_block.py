"""The Transformer family's blocks: pre-layer-norm self-attention (causal in a decoder,
bidirectional over the real tokens in an encoder), cross-attention to an encoder's output (in a
seq2seq decoder) and a GELU feed-forward, each on a residual branch (GPT-2 / nanoGPT's block,
and the encoder-decoder of "Attention Is All You Need" with the norms moved first).

Written from tf_keras layers rather than keras-nlp's `TransformerDecoder`, which fails under a
`mixed_bfloat16` policy on Keras 2 (its attention scales the query with a NumPy-style `sqrt`
that symbolic bfloat16 tensors lack). Attention weights are computed in float32 under any
policy, so a float16 softmax never overflows. `call_cached` runs new positions against a
key/value cache for decoding, with plain TensorFlow ops, so TensorFlow Serving can run it. A
seq2seq decoder's `step` runs one position of every row as a [rows, width] matrix against keys
and values that grow with the decoded text, and the encoder output's keys and values are
computed once per decoded text (`CrossAttention.memory`).
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf
import tf_keras

from models.layers.column_sums import Dense, LayerNormalization

_MASKED = -1e9  # the score of a position a query may not attend to (float32)


def attend(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, allowed: tf.Tensor, dropout: tf_keras.layers.Layer,
           training: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """softmax(q k^T / sqrt(d)) v over the key positions `allowed` marks (a boolean broadcast to
    [batch, heads, queries, keys]); q, k, v are [batch, time, heads, head_dim]. Returns the
    attended values [batch, queries, heads, head_dim] and the float32 weights."""
    if q.shape[1] == 1:  # one decoding step: a few element-wise ops, no oneDNN call (0.1-0.2 ms each here)
        return _attend_one_query(q, k, v, allowed, dropout, training)
    scores = tf.einsum("bqhd,bkhd->bhqk", q, k)
    scores = tf.cast(scores, tf.float32) / math.sqrt(q.shape[-1])
    weights = tf.nn.softmax(tf.where(allowed, scores, _MASKED), axis=-1)
    attended = tf.einsum("bhqk,bkhd->bqhd", dropout(tf.cast(weights, v.dtype), training=training), v)
    return attended, weights


def _attend_one_query(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, allowed: tf.Tensor, dropout: tf_keras.layers.Layer,
                      training: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """`attend` for a single query position, computed over [batch, keys, heads]: the same sums
    without the transposes and batched matrix products that cost a decoding step most of its time."""
    scores = tf.cast(tf.reduce_sum(q * k, axis=-1), tf.float32) / math.sqrt(q.shape[-1])  # [batch, keys, heads]
    per_key = tf.reshape(allowed, tf.stack([-1, tf.shape(allowed)[-1], 1]))  # [batch or 1, keys, 1]
    weights = tf.nn.softmax(tf.where(per_key, scores, _MASKED), axis=1)
    dropped = dropout(tf.cast(weights, v.dtype), training=training)
    attended = tf.reduce_sum(dropped[..., None] * v, axis=1)[:, None]  # [batch, 1, heads, head_dim]
    return attended, tf.transpose(weights, [0, 2, 1])[:, :, None]


def key_padding(key_mask: tf.Tensor) -> tf.Tensor:
    """A [batch, keys] mask of real tokens as `attend`'s [batch, 1 (heads), 1 (queries), keys]."""
    return key_mask[:, None, None, :]


def _split_heads(x: tf.Tensor, parts: int, heads: int, head_dim: int) -> list[tf.Tensor]:
    """[batch, time, parts * heads * head_dim] -> `parts` tensors [batch, time, heads, head_dim]."""
    shape = tf.concat([tf.shape(x)[:2], [parts, heads, head_dim]], axis=0)
    return tf.unstack(tf.reshape(x, shape), axis=2)


def _heads_of_rows(x: tf.Tensor, parts: int, heads: int, head_dim: int) -> list[tf.Tensor]:
    """[rows, parts * heads * head_dim] (one position per row) -> `parts` tensors [rows, heads, 1, head_dim]."""
    return tf.unstack(tf.reshape(x, [-1, parts, heads, 1, head_dim]), axis=1)


def attend_one_position(q: tf.Tensor, keys: tf.Tensor, values: tf.Tensor,
                        bias: tf.Tensor | None = None) -> tf.Tensor:
    """One query per row, q [rows, heads, 1, head_dim], against keys and values [rows, heads, keys,
    head_dim], with `bias` [rows, 1, keys] added to the scores (0, or `_MASKED` where a key may not
    be attended to): the attended values [rows, heads * head_dim]. A decoding step's attention as
    element-wise products and sums over the keys' axis, the last one of the scores (a softmax
    over another axis transposes twice): with one query, batched matrix products and their
    transposes are most of a step's ops and time."""
    scores = tf.cast(tf.reduce_sum(q * keys, axis=-1), tf.float32) * (1.0 / math.sqrt(q.shape[-1]))
    weights = tf.nn.softmax(scores if bias is None else scores + bias)  # [rows, heads, keys]
    attended = tf.reduce_sum(tf.cast(weights, values.dtype)[..., None] * values, axis=2)
    return tf.reshape(attended, [-1, q.shape[1] * q.shape[-1]])


def growing_keys_values(rows: tf.Tensor, heads: int, head_dim: int, dtype: tf.DType) -> tuple[tf.Tensor, tf.Tensor]:
    """The empty keys and values [rows, heads, 0, head_dim] a decoder's `step` appends to."""
    empty = tf.zeros([rows, heads, 0, head_dim], dtype)
    return empty, empty


class CausalSelfAttention(tf_keras.layers.Layer):
    """Multi-head self-attention in which position i attends to positions <= i (or, with
    `causal=False`, to every real position); one fused query/key/value projection."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0, causal: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.width, self.heads, self.dropout_rate, self.causal = width, heads, dropout, causal
        self.head_dim = width // heads
        self.qkv = Dense(3 * width, name="qkv")
        self.output_projection = Dense(width, name="output")
        self.dropout = tf_keras.layers.Dropout(dropout)

    def _merge(self, attended: tf.Tensor) -> tf.Tensor:
        return self.output_projection(tf.reshape(attended, tf.concat([tf.shape(attended)[:2], [self.width]], axis=0)))

    def call(self, x: tf.Tensor, training: bool = False, key_mask: tf.Tensor | None = None) -> tf.Tensor:
        """`key_mask` [batch, time] marks the real tokens (an encoder's padding is never attended to)."""
        q, k, v = _split_heads(self.qkv(x), 3, self.heads, self.head_dim)
        length = tf.shape(x)[1]
        allowed = tf.ones([length, length], tf.bool)
        if self.causal:
            allowed = tf.linalg.band_part(allowed, -1, 0)
        if key_mask is not None:
            allowed = allowed & key_padding(key_mask)
        return self._merge(attend(q, k, v, allowed, self.dropout, training)[0])

    def _attend_cache(self, q: tf.Tensor, cache: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        """The merged attention of queries at positions index.. over the cache's keys/values up to each."""
        keys, values = tf.unstack(cache, axis=1)
        query_positions = index + tf.range(tf.shape(q)[1])
        allowed = tf.range(tf.shape(cache)[2])[None, :] <= query_positions[:, None]
        attended, _ = attend(q, tf.cast(keys, q.dtype), tf.cast(values, q.dtype), allowed, self.dropout, False)
        return self._merge(attended)

    def call_cached(self, x: tf.Tensor, cache: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Attention output for `x` at positions index.. and the cache [batch, 2, max_length,
        heads, head_dim] with their keys and values written in."""
        q, k, v = _split_heads(self.qkv(x), 3, self.heads, self.head_dim)
        new = tf.shape(x)[1]
        written = tf.cast(tf.stack([k, v], axis=1), cache.dtype)
        updated = tf.concat([cache[:, :, :index], written, cache[:, :, index + new :]], axis=2)
        updated.set_shape(cache.shape)  # the same length (the concatenation hides it), for decoding loops
        return self._attend_cache(q, updated, index), updated

    def step(self, x: tf.Tensor, keys: tf.Tensor, values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The attention output [rows, width] of the next position `x` [rows, width], after the
        positions whose `keys` and `values` [rows, heads, past, head_dim] are given, and those with
        the new position's appended: as long as what has been decoded, so a step costs the text
        so far, not the longest text allowed. Every past position may be attended to."""
        q, k, v = _heads_of_rows(self.qkv(x), 3, self.heads, self.head_dim)
        keys = tf.concat([keys, tf.cast(k, keys.dtype)], axis=2)
        values = tf.concat([values, tf.cast(v, values.dtype)], axis=2)
        attended = attend_one_position(q, tf.cast(keys, q.dtype), tf.cast(values, q.dtype))
        return self.output_projection(attended), keys, values

    def get_config(self) -> dict:
        return {**super().get_config(), "width": self.width, "heads": self.heads, "dropout": self.dropout_rate,
                "causal": self.causal}


class CrossAttention(tf_keras.layers.Layer):
    """Multi-head attention from a decoder's positions to an encoder's output (the memory),
    over the memory's real tokens; queries from one projection, keys and values from a fused one."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.width, self.heads, self.dropout_rate = width, heads, dropout
        self.head_dim = width // heads
        self.query = Dense(width, name="query")
        self.key_value = Dense(2 * width, name="key_value")
        self.output_projection = Dense(width, name="output")
        self.dropout = tf_keras.layers.Dropout(dropout)

    def memory(self, memory: tf.Tensor, memory_mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """What every decoding step attends to, computed once per source text: the memory's keys
        and values [batch, heads, memory_time, head_dim] and the scores' bias [batch, 1,
        memory_time] (`_MASKED` past the source's real tokens)."""
        keys, values = (tf.transpose(t, [0, 2, 1, 3])
                        for t in _split_heads(self.key_value(memory), 2, self.heads, self.head_dim))
        return keys, values, tf.where(memory_mask, 0.0, _MASKED)[:, None]

    def step(self, x: tf.Tensor, keys: tf.Tensor, values: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
        """The attention output [rows, width] of one position per row, `x` [rows, width], over
        `memory`'s keys, values and bias."""
        q = tf.reshape(self.query(x), [-1, self.heads, 1, self.head_dim])
        return self.output_projection(attend_one_position(q, tf.cast(keys, q.dtype), tf.cast(values, q.dtype), bias))

    def call(self, x: tf.Tensor, memory: tf.Tensor, memory_mask: tf.Tensor,
             training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """(attention output [batch, time, width], weights [batch, heads, time, memory_time])."""
        q = _split_heads(self.query(x), 1, self.heads, self.head_dim)[0]
        keys, values = _split_heads(tf.cast(self.key_value(memory), q.dtype), 2, self.heads, self.head_dim)
        attended, weights = attend(q, keys, values, key_padding(memory_mask), self.dropout, training)
        merged = tf.reshape(attended, tf.concat([tf.shape(attended)[:2], [self.width]], axis=0))
        return self.output_projection(merged), weights

    def get_config(self) -> dict:
        return {**super().get_config(), "width": self.width, "heads": self.heads, "dropout": self.dropout_rate}


class DecoderBlock(tf_keras.layers.Layer):
    """x + attention(norm(x)), then + feed_forward(norm(x)); dropout on both branches.
    With `causal=False` it is an encoder block (attending to every real token)."""

    def __init__(self, width: int, heads: int, ff_width: int, dropout: float = 0.0, causal: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.width, self.heads, self.ff_width, self.dropout_rate, self.causal = width, heads, ff_width, dropout, causal
        self.attention_norm = LayerNormalization(epsilon=1e-5, name="attention_norm")
        self.attention = CausalSelfAttention(width, heads, dropout, causal=causal, name="attention")
        self.feed_forward_norm = LayerNormalization(epsilon=1e-5, name="feed_forward_norm")
        self.feed_forward_in = Dense(ff_width, activation="gelu", name="feed_forward_in")
        self.feed_forward_out = Dense(width, name="feed_forward_out")
        self.dropout = tf_keras.layers.Dropout(dropout)

    def _feed_forward(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        branch = self.feed_forward_out(self.feed_forward_in(self.feed_forward_norm(x)))
        return x + self.dropout(branch, training=training)

    def call(self, x: tf.Tensor, training: bool = False, key_mask: tf.Tensor | None = None) -> tf.Tensor:
        attended = self.attention(self.attention_norm(x), training=training, key_mask=key_mask)
        return self._feed_forward(x + self.dropout(attended, training=training), training)

    def call_cached(self, x: tf.Tensor, cache: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The block at positions index.. given the earlier positions' keys and values."""
        attended, cache = self.attention.call_cached(self.attention_norm(x), cache, index)
        return self._feed_forward(x + attended, False), cache

    def get_config(self) -> dict:
        return {
            **super().get_config(), "width": self.width, "heads": self.heads,
            "ff_width": self.ff_width, "dropout": self.dropout_rate, "causal": self.causal,
        }


class CrossDecoderBlock(DecoderBlock):
    """A seq2seq decoder block: causal self-attention, then cross-attention to the encoder
    output, then the feed-forward, each pre-normed on a residual branch."""

    def __init__(self, width: int, heads: int, ff_width: int, dropout: float = 0.0, **kwargs: Any):
        kwargs.pop("causal", None)
        super().__init__(width, heads, ff_width, dropout, causal=True, **kwargs)
        self.cross_attention_norm = LayerNormalization(epsilon=1e-5, name="cross_attention_norm")
        self.cross_attention = CrossAttention(width, heads, dropout, name="cross_attention")

    def call(self, x: tf.Tensor, memory: tf.Tensor, memory_mask: tf.Tensor,
             training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """(block output, cross-attention weights [batch, heads, time, memory_time])."""
        x = x + self.dropout(self.attention(self.attention_norm(x), training=training), training=training)
        attended, weights = self.cross_attention(self.cross_attention_norm(x), memory, memory_mask, training)
        return self._feed_forward(x + self.dropout(attended, training=training), training), weights

    def step(self, x: tf.Tensor, keys: tf.Tensor, values: tf.Tensor,
             memory: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The block at the next position of each row, `x` [rows, width], after the positions of
        `keys` and `values` (see `CausalSelfAttention.step`), against `CrossAttention.memory`:
        (output [rows, width], keys and values with the position appended). No dropout: decoding."""
        attended, keys, values = self.attention.step(self.attention_norm(x), keys, values)
        x += attended
        x += self.cross_attention.step(self.cross_attention_norm(x), *memory)
        return x + self.feed_forward_out(self.feed_forward_in(self.feed_forward_norm(x))), keys, values
