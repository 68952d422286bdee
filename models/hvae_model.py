"""The Keras model of the hierarchical VAE family (see `models.hvae` for the idea and settings).

The input is the target ids [batch, L]: the text's tokens, then EOS, right-padded with 0. The
decoder reads the same ids shifted right behind BOS, so segment s starts from the last token
of segment s - 1. In training every segment is decoded at once: the batch is reshaped to
[batch * U, T] and each row's LSTM starts from its own segment embedding, so no Python loop
runs per segment or per token. Decoding without teacher forcing goes token by token through
`models.decoding.sample`, re-starting the bottom LSTM from the next segment's embedding every
T tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf
import tf_keras

from models.decoding import sample
from models.hvae import HVAEConfig
from models.lm_loss import replica_share_of_tokens, token_log_likelihoods
from models.tokens import BOS_ID, PAD_ID


def kl_to_standard_normal(mu: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """KL(N(mu, sigma) || N(0, 1)) per example, summed over latent units (nats)."""
    return 0.5 * tf.reduce_sum(tf.square(mu) + tf.square(sigma) - 1.0 - 2.0 * tf.math.log(sigma), axis=-1)


class TextVAE(tf_keras.Model):
    """Bidirectional LSTM encoder -> z -> hierarchical (conductor + segment) or flat LSTM decoder."""

    def __init__(self, config: HVAEConfig, vocab_size: int, flat_units: int = 0, **kwargs: Any):
        super().__init__(name=f"{config.decoder}_vae", **kwargs)
        self.config, self.vocab_size, self.flat_units = config, vocab_size, flat_units
        self.hierarchical = config.decoder == "hierarchical"
        c = config
        self.embedding = tf_keras.layers.Embedding(vocab_size, c.embedding_dim, name="embedding")
        self.encoder_lower = tf_keras.layers.Bidirectional(
            tf_keras.layers.LSTM(c.encoder_units, return_sequences=True), name="encoder_0"
        )
        self.encoder_upper = tf_keras.layers.Bidirectional(
            tf_keras.layers.LSTM(c.encoder_units, return_state=True), name="encoder_1"
        )
        # mu and sigma feed the KL term: float32 under a mixed policy, like the logits
        self.to_mu = tf_keras.layers.Dense(c.latent_dim, dtype="float32", name="mu")
        self.to_sigma = tf_keras.layers.Dense(c.latent_dim, activation="softplus", dtype="float32", name="sigma")
        if self.hierarchical:
            units = c.decoder_units
            self.conductor_init = tf_keras.layers.Dense(4 * c.conductor_units, activation="tanh", name="conductor_init")
            self.conductor = [
                tf_keras.layers.LSTM(c.conductor_units, return_sequences=True, name=f"conductor_{i}") for i in range(2)
            ]
        else:
            units = flat_units
        self.decoder_init = tf_keras.layers.Dense(2 * c.decoder_layers * units, activation="tanh", name="decoder_init")
        self.decoder = [
            tf_keras.layers.LSTM(units, return_sequences=True, name=f"decoder_{i}") for i in range(c.decoder_layers)
        ]
        self.to_logits = tf_keras.layers.Dense(vocab_size, dtype="float32", name="logits")

    def build_for_sequences(self) -> None:
        """Creates the weights by running one short batch."""
        self(tf.fill([1, 2 * self.config.segment_length], tf.constant(BOS_ID + 1, tf.int64)))

    def get_config(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "vocab_size": self.vocab_size, "flat_units": self.flat_units}

    # -- encoder ---------------------------------------------------------------------------

    def encode(self, target_ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(mu, sigma) [batch, latent] of q(z | text); padding is masked out of both directions."""
        mask = tf.not_equal(target_ids, PAD_ID)
        x = self.encoder_lower(self.embedding(target_ids), mask=mask)
        _, forward_h, _, backward_h, _ = self.encoder_upper(x, mask=mask)
        summary = tf.concat([forward_h, backward_h], axis=-1)
        return self.to_mu(summary), self.to_sigma(summary) + 1e-6

    # -- decoder ---------------------------------------------------------------------------

    def _initial_states(self, source: tf.Tensor) -> list[list[tf.Tensor]]:
        """[h, c] for each decoder layer, from z (flat) or a segment embedding (hierarchical)."""
        parts = tf.split(self.decoder_init(source), 2 * self.config.decoder_layers, axis=-1)
        return [parts[2 * i : 2 * i + 2] for i in range(self.config.decoder_layers)]

    def segment_embeddings(self, z: tf.Tensor, segments: tf.Tensor) -> tf.Tensor:
        """The conductor's output, one embedding per segment: [batch, segments, conductor_units]."""
        h0, c0, h1, c1 = tf.split(self.conductor_init(z), 4, axis=-1)
        steps = tf.zeros(tf.stack([tf.shape(z)[0], segments, 1]), z.dtype)
        x = self.conductor[0](steps, initial_state=[h0, c0])
        return self.conductor[1](x, initial_state=[h1, c1])

    def _run_decoder(self, x: tf.Tensor, states: list[list[tf.Tensor]], training: bool) -> tf.Tensor:
        for layer, state in zip(self.decoder, states):
            x = layer(x, initial_state=state, training=training)
        return x

    def reconstruction_logits(self, z: tf.Tensor, target_ids: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Teacher-forced logits [batch, L, vocab] of the target ids given z."""
        batch, length = tf.shape(target_ids)[0], tf.shape(target_ids)[1]
        decoder_inputs = tf.concat([tf.fill([batch, 1], tf.constant(BOS_ID, target_ids.dtype)), target_ids[:, :-1]], 1)
        if training and self.config.word_dropout:
            dropped = tf.random.uniform(tf.shape(decoder_inputs)) < self.config.word_dropout
            unknown = tf.constant(self.vocab_size - 1, decoder_inputs.dtype)  # the OOV bucket's id
            decoder_inputs = tf.where(dropped & (decoder_inputs != PAD_ID), unknown, decoder_inputs)
        tokens = self.embedding(decoder_inputs)
        if not self.hierarchical:
            conditioned = tf.concat([tokens, tf.tile(tf.cast(z, tokens.dtype)[:, None], [1, length, 1])], axis=-1)
            return self.to_logits(self._run_decoder(conditioned, self._initial_states(z), training))
        t = self.config.segment_length
        tf.debugging.assert_equal(
            length % t, 0, message=f"a sequence's length must be a multiple of hvae.segment_length ({t})"
        )
        segments = length // t
        embeddings = tf.reshape(self.segment_embeddings(z, segments), [batch * segments, -1])
        tokens = tf.reshape(tokens, [batch * segments, t, self.config.embedding_dim])
        conditioned = tf.concat([tokens, tf.tile(embeddings[:, None], [1, t, 1])], axis=-1)
        hidden = self._run_decoder(conditioned, self._initial_states(embeddings), training)
        return self.to_logits(tf.reshape(hidden, [batch, length, -1]))

    def decoder_step(self, z: tf.Tensor, length: tf.Tensor) -> tuple:
        """(step, state) for `models.decoding.sample`: one token at a time from z, for `length` tokens."""
        cells = [layer.cell for layer in self.decoder]
        t = self.config.segment_length

        def run_cells(x: tf.Tensor, states: list) -> tuple[tf.Tensor, list]:
            new_states = []
            for cell, state in zip(cells, states):
                x, state = cell(x, state, training=False)
                new_states.append(list(state))
            return self.to_logits(x), new_states

        if not self.hierarchical:
            def flat_step(token, state, position):
                states, z_ = state
                logits, states = run_cells(tf.concat([self.embedding(token), z_], -1), states)
                return logits, (states, z_)

            return flat_step, (self._initial_states(z), z)

        segments = self.segment_embeddings(z, (length + t - 1) // t)

        def step(token, state, position):
            states, segments_ = state
            embedding = tf.gather(segments_, position // t, axis=1)
            restart = tf.equal(position % t, 0)  # a new segment: its LSTM starts from its embedding
            fresh = self._initial_states(embedding)
            states = [[tf.where(restart, f, s) for f, s in zip(fl, sl)] for fl, sl in zip(fresh, states)]
            logits, states = run_cells(tf.concat([self.embedding(token), embedding], -1), states)
            return logits, (states, segments_)

        zeros = tf.zeros([tf.shape(z)[0], self.config.decoder_units])
        return step, ([[zeros, zeros] for _ in cells], segments)

    def decode(self, z: tf.Tensor, length: tf.Tensor, temperature: tf.Tensor | float = 0.0, seed: tf.Tensor | int = 0) -> tf.Tensor:
        """Token ids [batch, length] decoded from z (temperature 0: greedy), PAD after EOS."""
        batch = tf.shape(z)[0]
        step, state = self.decoder_step(z, length)
        no_prompt = tf.zeros([batch, 0], tf.int64)
        return sample(step, state, no_prompt, tf.zeros([batch], tf.int32), length, temperature, seed=seed)

    # -- objective -------------------------------------------------------------------------

    def beta(self) -> tf.Tensor:
        """The annealed KL weight at the optimizer's current step (beta_max outside training)."""
        c = self.config
        if getattr(self, "optimizer", None) is None:
            return tf.constant(c.beta_max)
        step = tf.cast(self.optimizer.iterations, tf.float32)
        if c.beta_schedule == "exponential":
            return c.beta_max * (1.0 - tf.pow(c.beta_rate, step))
        return c.beta_max * tf.sigmoid((step - c.beta_midpoint) / c.beta_width)

    def _training_noise(self, shape: tf.Tensor) -> tf.Tensor:
        """eps ~ N(0, 1) of the reparameterisation z = mu + sigma * eps."""
        return tf.random.normal(shape)

    def call(self, target_ids: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Reconstruction logits from a sampled z; adds beta * max(KL - free_bits, 0) per text,
        divided by the batch's real tokens so it sits on the per-token scale of the loss."""
        target_ids = tf.cast(target_ids, tf.int64)
        mu, sigma = self.encode(target_ids)
        z = mu + sigma * self._training_noise(tf.shape(mu))
        kl = kl_to_standard_normal(mu, sigma)
        beta = self.beta()
        penalty = beta * tf.reduce_sum(tf.maximum(kl - self.config.free_bits, 0.0))
        self.add_loss(penalty / replica_share_of_tokens(target_ids))
        self.add_metric(tf.reduce_mean(kl), name="kl", aggregation="mean")
        self.add_metric(beta, name="beta", aggregation="mean")
        return self.reconstruction_logits(z, target_ids, training=training)

    def elbo_terms(self, target_ids: tf.Tensor, seed: int = 0) -> dict[str, tf.Tensor]:
        """Per text: negative ELBO (a one-sample estimate with a fixed seed, so repeatable), KL,
        real tokens, tokens the teacher-forced reconstruction gets right, and mu."""
        target_ids = tf.cast(target_ids, tf.int64)
        mu, sigma = self.encode(target_ids)
        noise = tf.random.stateless_normal(tf.shape(mu), seed=[seed, 0])
        logits = self.reconstruction_logits(mu + sigma * noise, target_ids)
        kl = kl_to_standard_normal(mu, sigma)
        nll = -tf.reduce_sum(token_log_likelihoods(target_ids, logits), axis=1)
        return {
            "negative_elbo": nll + kl,
            "kl": kl,
            "token_count": _count_real(tf.ones_like(target_ids, tf.bool), target_ids),
            "teacher_forced_hits": _count_real(tf.argmax(logits, -1) == target_ids, target_ids),
            "mu": mu,
        }

    def evaluate_texts(self, target_ids: tf.Tensor, seed: int = 0) -> dict[str, tf.Tensor]:
        """`elbo_terms` plus the tokens a greedy decode from mu gets right (sampled reconstruction)."""
        terms = self.elbo_terms(target_ids, seed)
        greedy = self.decode(terms["mu"], tf.shape(target_ids)[1])
        return {**terms, "sampled_hits": _count_real(greedy == tf.cast(target_ids, tf.int64), target_ids)}


def _count_real(hits: tf.Tensor, target_ids: tf.Tensor) -> tf.Tensor:
    """Per text, how many real (non-pad) positions `hits` marks."""
    return tf.reduce_sum(tf.cast(hits & (target_ids != PAD_ID), tf.int64), axis=1)
