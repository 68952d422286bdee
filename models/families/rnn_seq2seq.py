"""The RNN family's seq2seq mode: a bidirectional LSTM/GRU encoder and an attention decoder.

Encoder: embedding -> `layers` bidirectional LSTM/GRU layers over the source's real tokens
(masked). The decoder's initial states come from the encoder's final states (dense + tanh, as
in Bahdanau et al. 2015). Decoder: embedding -> `layers` LSTM/GRU layers -> at every step the
top layer's output attends over the encoder outputs, source padding masked out, with
Bahdanau's additive score v . tanh(W q + U k) or Luong's multiplicative ("general") score
q . W k -> Luong et al. 2015's attentional state tanh(W [context; output]) -> logits.

Attending after the recurrence (Luong's global attention, without input feeding) keeps every
recurrent layer a plain Keras layer with the cuDNN-compatible defaults, so a GPU runs the fused
kernel over the whole sequence in training, and the attention is one batched product.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras

from models.serving.decoding import repeat_for_beams
from models.families.rnn import RNNConfig
from models.layers.seq2seq import built, source_mask

_MASKED = -1e9


class SourceAttention(tf_keras.layers.Layer):
    """Attention from decoder outputs (queries) over encoder outputs, real source tokens only."""

    def __init__(self, units: int, kind: str, **kwargs):
        super().__init__(**kwargs)
        self.units, self.kind = units, kind
        self.key_projection = tf_keras.layers.Dense(units, use_bias=kind == "additive", name="key")
        if kind == "additive":
            self.query_projection = tf_keras.layers.Dense(units, use_bias=False, name="query")
            self.score_vector = tf_keras.layers.Dense(1, use_bias=False, name="score")

    def keys(self, memory: tf.Tensor) -> tf.Tensor:
        """The encoder outputs projected once per source: [batch, source time, units]."""
        return self.key_projection(memory)

    def call(self, query: tf.Tensor, keys: tf.Tensor, memory: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(context [batch, time, memory width], float32 weights [batch, time, source time])."""
        if self.kind == "additive":
            combined = tf.tanh(self.query_projection(query)[:, :, None, :] + keys[:, None, :, :])
            scores = self.score_vector(combined)[..., 0]
        else:
            scores = tf.einsum("btu,bsu->bts", query, keys)
        scores = tf.where(mask[:, None, :], tf.cast(scores, tf.float32), _MASKED)
        weights = tf.nn.softmax(scores, axis=-1)
        return tf.einsum("bts,bsw->btw", tf.cast(weights, memory.dtype), memory), weights

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "kind": self.kind}


class RNNSeq2Seq(tf_keras.Model):
    """(source ids, decoder input ids) -> float32 logits [batch, target time, vocab]."""

    def __init__(self, config: RNNConfig, vocab_size: int, **kwargs):
        super().__init__(name="rnn_seq2seq", **kwargs)
        config = config.sized()
        self.seq2seq_config, self.vocab_size = config, vocab_size
        recurrent = tf_keras.layers.LSTM if config.cell == "lstm" else tf_keras.layers.GRU
        self.states_per_layer = 2 if config.cell == "lstm" else 1
        self.source_embedding = tf_keras.layers.Embedding(vocab_size, config.embedding_dim, name="source_embedding")
        self.target_embedding = self.source_embedding if config.shared_embeddings else tf_keras.layers.Embedding(
            vocab_size, config.embedding_dim, name="target_embedding")
        self.embedding_dropout = tf_keras.layers.Dropout(config.embedding_dropout)
        self.dropout = tf_keras.layers.Dropout(config.dropout)
        self.encoder_layers = [
            tf_keras.layers.Bidirectional(recurrent(config.units, return_sequences=True, return_state=True),
                                          name=f"encoder_{i}")
            for i in range(config.layers)
        ]
        self.bridge = tf_keras.layers.Dense(config.layers * self.states_per_layer * config.units, activation="tanh",
                                            name="bridge")
        self.decoder_layers = [
            recurrent(config.units, return_sequences=True, return_state=True, name=f"decoder_{i}")
            for i in range(config.layers)
        ]
        self.attention = SourceAttention(config.units, config.attention, name="attention")
        self.attentional = tf_keras.layers.Dense(config.units, activation="tanh", name="attentional")
        self.logits = tf_keras.layers.Dense(vocab_size, dtype="float32", name="logits")

    def encode(self, source_ids: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor, list]:
        """(encoder outputs [batch, source time, 2 units], real-token mask, the decoder's
        initial states: one list per decoder layer)."""
        mask = source_mask(source_ids)
        x = self.embedding_dropout(self.source_embedding(source_ids), training=training)
        for i, layer in enumerate(self.encoder_layers):
            x, *final_states = layer(x, mask=mask, training=training)
            if i < len(self.encoder_layers) - 1:
                x = self.dropout(x, training=training)
        initial = tf.split(self.bridge(tf.concat(final_states, axis=-1)), len(self.decoder_layers) * self.states_per_layer, -1)
        per_layer = [initial[i:i + self.states_per_layer] for i in range(0, len(initial), self.states_per_layer)]
        return x, mask, per_layer

    def _attend_and_predict(self, outputs: tf.Tensor, keys: tf.Tensor, memory: tf.Tensor, mask: tf.Tensor,
                            training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        context, weights = self.attention(outputs, keys, memory, mask)
        attentional = self.attentional(tf.concat([context, outputs], axis=-1))
        return self.logits(self.dropout(attentional, training=training)), weights

    def forward(self, source_ids: tf.Tensor, decoder_input_ids: tf.Tensor,
                training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """(logits, attention weights [batch, target time, source time])."""
        memory, mask, states = self.encode(source_ids, training)
        x = self.embedding_dropout(self.target_embedding(decoder_input_ids), training=training)
        for layer, initial in zip(self.decoder_layers, states):
            x = layer(x, initial_state=initial, training=training)[0]
            x = self.dropout(x, training=training)
        return self._attend_and_predict(x, self.attention.keys(memory), memory, mask, training)

    def get_config(self) -> dict:
        return {"config": dataclasses.asdict(self.seq2seq_config), "vocab_size": self.vocab_size}

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool = False) -> tf.Tensor:
        source_ids, decoder_input_ids = inputs
        return self.forward(source_ids, decoder_input_ids, training)[0]

    def decoder(self, encoded: tuple, beam_width: tf.Tensor | int) -> tuple:
        """(step, states) for `models.serving.decoding` over `beam_width` rows per source: the attention
        keys are projected once; the step runs each decoder layer's cell once."""
        memory, mask, states = encoded
        keys, memory, mask, states = repeat_for_beams((self.attention.keys(memory), memory, mask, states), beam_width)

        def step(token: tf.Tensor, states: list, position: tf.Tensor) -> tuple[tf.Tensor, list]:
            x = self.target_embedding(token)
            updated = []
            for layer, layer_states in zip(self.decoder_layers, states):
                x, new_states = layer.cell(x, layer_states, training=False)
                updated.append(list(new_states) if isinstance(new_states, (list, tuple)) else [new_states])
            logits, _ = self._attend_and_predict(x[:, None], keys, memory, mask, False)
            return logits[:, 0], updated

        return step, states


def build_rnn_seq2seq(config: RNNConfig, vocab_size: int) -> RNNSeq2Seq:
    """The encoder-decoder, built (its weights created) on a one-token batch."""
    return built(RNNSeq2Seq(config, vocab_size))


def rnn_seq2seq_optimizer(config: RNNConfig, total_steps: int) -> tf_keras.optimizers.Optimizer:
    """Adam (fused update, `models.runtime.fused_adam`) with a short linear warm-up and cosine decay to
    a tenth of `learning_rate`, gradients clipped to global norm 1 (recurrences can explode)."""
    from models.runtime.fused_adam import FusedAdam
    from models.runtime.training import WarmupCosine

    schedule = WarmupCosine(config.learning_rate, config.learning_rate / 10, min(200, total_steps // 10), total_steps)
    return FusedAdam(schedule, global_clipnorm=1.0)
