"""The Transformer family's seq2seq mode: the encoder-decoder of "Attention Is All You Need"
(Vaswani et al. 2017), with the layer norms moved first (pre-LN trains without a long warm-up).

Encoder: token embedding * sqrt(width) + sinusoidal positions -> N blocks of bidirectional
self-attention over the source's real tokens -> layer norm. Decoder: the same embedding of the
target -> M blocks of causal self-attention, cross-attention to the encoder output and a
feed-forward -> layer norm -> logits through the transposed target embedding (tied, as in the
paper). `transformer.shared_embeddings` makes source and target one table (a joint subword
vocabulary); otherwise each side has its own. Decoding runs one position at a time against a
self-attention key/value cache, with the encoder output's cross-attention keys and values
computed once (`decoder`).
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf
import tf_keras

from models.layers.column_sums import LayerNormalization
from models.serving.decoding import repeat_for_beams
from models.layers.seq2seq import built, source_mask
from models.families.transformer import TransformerConfig
from models.layers.transformer_block import CrossDecoderBlock, DecoderBlock, growing_keys_values


def sinusoidal_positions(start: tf.Tensor | int, length: tf.Tensor, width: int) -> tf.Tensor:
    """[length, width] position encodings for positions start..start + length - 1: sines in the
    first half of the channels, cosines in the second, wavelengths 2 pi .. 10000 * 2 pi."""
    positions = tf.cast(tf.range(length) + start, tf.float32)[:, None]
    rates = tf.exp(-math.log(10000.0) * tf.range(width // 2, dtype=tf.float32) / (width // 2))[None]
    angles = positions * rates
    return tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)


class TransformerSeq2Seq(tf_keras.Model):
    """(source ids, decoder input ids) -> float32 logits [batch, target time, vocab]."""

    def __init__(self, config: TransformerConfig, vocab_size: int, **kwargs):
        super().__init__(name="transformer_seq2seq", **kwargs)
        config = config.sized()
        if config.width % 2:
            raise ValueError(f"transformer.width must be even for sinusoidal positions, got {config.width}")
        self.seq2seq_config, self.vocab_size = config, vocab_size
        def embedding(name: str) -> tf_keras.layers.Embedding:
            initializer = tf_keras.initializers.RandomNormal(stddev=config.width ** -0.5)  # one per table
            return tf_keras.layers.Embedding(vocab_size, config.width, embeddings_initializer=initializer, name=name)

        self.source_embedding = embedding("source_embedding")
        self.target_embedding = self.source_embedding if config.shared_embeddings else embedding("target_embedding")
        self.embedding_dropout = tf_keras.layers.Dropout(config.dropout)
        self.encoder_blocks = [
            DecoderBlock(config.width, config.heads, config.ff_width, config.dropout, causal=False, name=f"encoder_{i}")
            for i in range(config.encoder_layers or config.layers)
        ]
        self.encoder_norm = LayerNormalization(epsilon=1e-5, name="encoder_norm")
        self.decoder_blocks = [
            CrossDecoderBlock(config.width, config.heads, config.ff_width, config.dropout, name=f"decoder_{i}")
            for i in range(config.layers)
        ]
        self.decoder_norm = LayerNormalization(epsilon=1e-5, name="decoder_norm")

    def _embed(self, embedding: tf_keras.layers.Embedding, ids: tf.Tensor, start: tf.Tensor | int,
               training: bool) -> tf.Tensor:
        x = embedding(ids) * math.sqrt(self.seq2seq_config.width)
        x += tf.cast(sinusoidal_positions(start, tf.shape(ids)[1], self.seq2seq_config.width), x.dtype)
        return self.embedding_dropout(x, training=training)

    def _logits(self, x: tf.Tensor) -> tf.Tensor:
        table = tf.cast(self.target_embedding.embeddings, x.dtype)
        x = self.decoder_norm(x)
        return tf.cast(tf.einsum("btw,vw->btv", x, table), tf.float32)

    def encode(self, source_ids: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """(encoder output [batch, source time, width], the source's real-token mask)."""
        mask = source_mask(source_ids)
        x = self._embed(self.source_embedding, source_ids, 0, training)
        for block in self.encoder_blocks:
            x = block(x, training=training, key_mask=mask)
        return self.encoder_norm(x), mask

    def forward(self, source_ids: tf.Tensor, decoder_input_ids: tf.Tensor,
                training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """(logits, the last decoder block's cross-attention averaged over heads [batch,
        target time, source time])."""
        memory, mask = self.encode(source_ids, training)
        x = self._embed(self.target_embedding, decoder_input_ids, 0, training)
        for block in self.decoder_blocks:
            x, weights = block(x, memory, mask, training=training)
        return self._logits(x), tf.reduce_mean(weights, axis=1)

    def get_config(self) -> dict:
        return {"config": dataclasses.asdict(self.seq2seq_config), "vocab_size": self.vocab_size}

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool = False) -> tf.Tensor:
        source_ids, decoder_input_ids = inputs
        return self.forward(source_ids, decoder_input_ids, training)[0]

    def decoder(self, encoded: tuple[tf.Tensor, tf.Tensor], beam_width: tf.Tensor | int) -> tuple:
        """(step, caches) for `models.serving.decoding` over `beam_width` rows per source: each block's
        cross-attention keys and values are computed once from the encoder output; the step
        feeds one token per row through the blocks as a [rows, width] matrix (no time axis to
        reshape around, about half the ops of a step over [rows, 1, width]) and appends its keys
        and values to each block's, which start empty (their time axis grows with the output)."""
        memory, mask = encoded
        config = self.seq2seq_config
        memories = repeat_for_beams([block.cross_attention.memory(memory, mask) for block in self.decoder_blocks],
                                    beam_width)
        empty = growing_keys_values(tf.shape(memories[0][0])[0], config.heads, config.width // config.heads,
                                    memory.dtype)
        # read (and cast) once per decoding; the logits' matrix transposed as a matmul wants it,
        # rather than by every step's product (a transposed operand cost the step's logits about twice the time)
        table = tf.cast(self.target_embedding.embeddings, memory.dtype)
        output_table = tf.transpose(table)

        def step(token: tf.Tensor, caches: tuple, position: tf.Tensor) -> tuple[tf.Tensor, tuple]:
            x = tf.gather(table, token) * math.sqrt(config.width)
            x += tf.cast(sinusoidal_positions(position, 1, config.width)[0], x.dtype)
            updated = []
            for block, (keys, values), block_memory in zip(self.decoder_blocks, caches, memories):
                x, keys, values = block.step(x, keys, values, block_memory)
                updated.append((keys, values))
            logits = tf.matmul(self.decoder_norm(x), output_table)
            return tf.cast(logits, tf.float32), tuple(updated)

        return step, (empty,) * len(self.decoder_blocks)


def build_transformer_seq2seq(config: TransformerConfig, vocab_size: int) -> TransformerSeq2Seq:
    """The encoder-decoder, built (its weights created) on a one-token batch."""
    return built(TransformerSeq2Seq(config, vocab_size))
