"""The Keras model of the hierarchical VAE family (see `models.families.hvae` for the idea and settings).

The input is the target ids [batch, L]: the text's tokens, then EOS, right-padded with 0. The
decoder reads the same ids shifted right behind BOS, so segment s starts from the last token
of segment s - 1. In training every segment is decoded at once: the batch is reshaped to
[batch * U, T] and each row's LSTM starts from its own segment embedding, so no Python loop
runs per segment or per token. Decoding without teacher forcing goes token by token through
`models.serving.decoding.sample`, re-starting the bottom LSTM from the next segment's embedding every
T tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf
import tf_keras

from models.families.hvae import HVAEConfig, matched_flat_units
from models.families.hvae_parts import DecoderReset, count_real, kl_per_latent_unit, segment_positions
from models.layers.fast_lstm import lstm_class
from models.layers.lm_loss import replica_share_of_tokens, token_log_likelihoods
from models.layers.tokens import BOS_ID, PAD_ID
from models.serving.decoding import sample


class TextVAE(tf_keras.Model):
    """Bidirectional LSTM encoder -> z -> hierarchical (conductor + segment) or flat LSTM decoder."""

    def __init__(self, config: HVAEConfig, vocab_size: int, flat_units: int = 0, **kwargs: Any):
        super().__init__(name=f"{config.decoder}_vae", **kwargs)
        self.config, self.vocab_size, self.flat_units = config, vocab_size, flat_units
        self.hierarchical = config.decoder == "hierarchical"
        c = config
        self.embedding = tf_keras.layers.Embedding(
            vocab_size, c.embedding_dim, name="embedding",
            embeddings_initializer=tf_keras.initializers.RandomUniform(-c.embedding_scale, c.embedding_scale),
        )
        # `recurrence: auto` runs every LSTM as models.layers.fast_lstm on CPU (masks and go_backwards included)
        lstm = lstm_class(c.recurrence)
        self.encoder_lower = tf_keras.layers.Bidirectional(
            lstm(c.encoder_units, return_sequences=True), name="encoder_0"
        )
        self.encoder_upper = tf_keras.layers.Bidirectional(
            lstm(c.encoder_units, return_state=True, return_sequences=c.encoder_summary in ("mean", "segments")),
            name="encoder_1",
        )
        self.segment_encoder = tf_keras.layers.Bidirectional(
            lstm(c.encoder_units, return_state=True, return_sequences=c.latent_per_segment), name="segment_encoder"
        ) if c.encoder_summary in ("segments", "local") else None
        # fixed scale, learned shift (Zhu et al. 2020, BN-VAE): mu has unit variance across texts;
        # synchronized: over several replicas the statistics are the global batch's, as on one device
        self.mu_norm = tf_keras.layers.BatchNormalization(
            scale=False, epsilon=1e-5, synchronized=True, dtype="float32", name="mu_norm"
        ) if c.latent_batch_norm else None
        self.bag_of_tokens = (
            tf_keras.layers.Dense(vocab_size, dtype="float32", name="bag_of_tokens") if c.bag_of_tokens else None
        )
        self.segment_readout = tf_keras.Sequential([
            tf_keras.layers.Dense(c.decoder_units, activation="relu", name="segment_readout_hidden"),
            tf_keras.layers.Dense(c.segment_length * vocab_size, dtype="float32", name="segment_readout_logits"),
        ], name="segment_readout") if c.segment_readout else None
        # mu and sigma feed the KL term: float32 under a mixed policy, like the logits
        self.to_mu = tf_keras.layers.Dense(c.latent_dim, dtype="float32", name="mu")
        self.to_sigma = tf_keras.layers.Dense(c.latent_dim, activation="softplus", dtype="float32", name="sigma")
        if self.hierarchical:
            units = c.decoder_units
            self.conductor_init = tf_keras.layers.Dense(4 * c.conductor_units, activation="tanh", name="conductor_init")
            self.conductor = [
                lstm(c.conductor_units, return_sequences=True, name=f"conductor_{i}") for i in range(2)
            ]
        else:
            units = flat_units
        self.decoder_init = tf_keras.layers.Dense(2 * c.decoder_layers * units, activation="tanh", name="decoder_init")
        self.decoder = [
            lstm(units, return_sequences=True, name=f"decoder_{i}") for i in range(c.decoder_layers)
        ]
        self.to_logits = tf_keras.layers.Dense(vocab_size, dtype="float32", name="logits")

    def build_for_sequences(self) -> None:
        """Creates the weights by running one short batch."""
        self(tf.fill([1, 2 * self.config.segment_length], tf.constant(BOS_ID + 1, tf.int64)))

    def get_config(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "vocab_size": self.vocab_size, "flat_units": self.flat_units}

    # -- encoder ---------------------------------------------------------------------------

    def encode(self, target_ids: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """(mu, sigma) [batch, latent] of q(z | text), from the encoder's summary of the text."""
        summary = self._summary(target_ids)
        mu, sigma = self.to_mu(summary), self.to_sigma(summary) + 1e-6
        if self.mu_norm is not None:
            mu = self.mu_norm(mu, training=training)
        if self.config.latent_per_segment:  # [batch, U, latent_dim] -> one z [batch, U * latent_dim]
            batch = tf.shape(mu)[0]
            mu, sigma = tf.reshape(mu, [batch, -1]), tf.reshape(sigma, [batch, -1])
        return mu, sigma

    def latent_size(self, length: int) -> int:
        """The size of z for texts of `length` tokens: latent_dim, or one latent_dim per segment."""
        if self.config.latent_per_segment:
            return self.config.latent_dim * (length // self.config.segment_length)
        return self.config.latent_dim

    def _summary(self, target_ids: tf.Tensor) -> tf.Tensor:
        """The text as one vector; padding is masked out of both directions. The final states,
        or (`encoder_summary: mean`) the outputs averaged over the real positions, which gives
        every position a short gradient path to z, or (`segments`, `local`) a hierarchical
        summary, one vector per segment read by a second BiLSTM."""
        if self.config.encoder_summary == "local":
            return self._local_summary(target_ids)
        mask = tf.not_equal(target_ids, PAD_ID)
        x = self.encoder_lower(self.embedding(target_ids), mask=mask)
        outputs, forward_h, _, backward_h, _ = self.encoder_upper(x, mask=mask)
        if self.config.encoder_summary == "mean":
            weights = tf.cast(mask, outputs.dtype)[..., None]
            return tf.reduce_sum(outputs * weights, 1) / tf.maximum(tf.reduce_sum(weights, 1), 1.0)
        if self.config.encoder_summary == "segments":
            return self._segment_summary(outputs, mask)
        return tf.concat([forward_h, backward_h], axis=-1)

    def _segment_summary(self, outputs: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Each segment's outputs averaged over its real positions, then a BiLSTM over the segments
        (those without a real token masked): every segment has a path of a few steps to z, where
        the final states favour the text's two ends."""
        t, width = self.config.segment_length, outputs.shape[-1]
        batch, length = tf.shape(outputs)[0], tf.shape(outputs)[1]
        self._check_whole_segments(length)
        weights = tf.reshape(tf.cast(mask, outputs.dtype), [batch, length // t, t, 1])
        per_segment = tf.reduce_sum(tf.reshape(outputs, [batch, length // t, t, width]) * weights, 2)
        counts = tf.reduce_sum(weights, 2)
        pooled = per_segment / tf.maximum(counts, 1.0)
        _, forward_h, _, backward_h, _ = self.segment_encoder(pooled, mask=counts[..., 0] > 0)
        return tf.concat([forward_h, backward_h], axis=-1)

    def _check_whole_segments(self, length: tf.Tensor) -> None:
        """A text is read and written as whole segments of `segment_length` tokens."""
        t = self.config.segment_length
        tf.debugging.assert_equal(
            length % t, 0, message=f"a sequence's length must be a multiple of hvae.segment_length ({t})"
        )

    def _local_summary(self, target_ids: tf.Tensor) -> tf.Tensor:
        """A hierarchical encoder that mirrors the decoder: the two BiLSTM layers read each
        segment alone ([batch * U, T], as the bottom decoder writes it), their final states
        summarise it, and the BiLSTM over the segments (those without a real token masked)
        reads the summaries. Every token is at most T steps from its segment's summary. With
        `latent_per_segment` that BiLSTM's outputs [batch, U, 2 * units] are the summaries, one per segment."""
        t = self.config.segment_length
        batch, length = tf.shape(target_ids)[0], tf.shape(target_ids)[1]
        self._check_whole_segments(length)
        ids = tf.reshape(target_ids, [-1, t])
        real = tf.not_equal(ids, PAD_ID)
        # a segment of padding still reads its first position (the LSTM kernels want a length of
        # at least 1); the segment BiLSTM masks that segment out
        mask = real | (tf.range(t) == 0)[None]
        x = self.encoder_lower(self.embedding(ids), mask=mask)
        _, forward_h, _, backward_h, _ = self.encoder_upper(x, mask=mask)
        per_segment = tf.reshape(tf.concat([forward_h, backward_h], -1), [batch, length // t, -1])
        has_tokens = tf.reshape(tf.reduce_any(real, -1), [batch, length // t])
        outputs, forward_h, _, backward_h, _ = self.segment_encoder(per_segment, mask=has_tokens)
        if self.config.latent_per_segment:
            return outputs
        return tf.concat([forward_h, backward_h], axis=-1)

    # -- decoder ---------------------------------------------------------------------------

    def _initial_states(self, source: tf.Tensor) -> list[list[tf.Tensor]]:
        """[h, c] for each decoder layer, from z (flat) or a segment embedding (hierarchical)."""
        parts = tf.split(self.decoder_init(source), 2 * self.config.decoder_layers, axis=-1)
        return [parts[2 * i : 2 * i + 2] for i in range(self.config.decoder_layers)]

    def segment_codes(self, z: tf.Tensor, segments: tf.Tensor) -> tf.Tensor:
        """What of z each segment reads [batch, segments, latent_dim]: its own code
        (`latent_per_segment`, z holding exactly `segments` of them) or the whole z."""
        if self.config.latent_per_segment:
            return tf.reshape(z, [tf.shape(z)[0], -1, self.config.latent_dim])
        return tf.tile(z[:, None], tf.stack([1, segments, 1]))

    def text_code(self, z: tf.Tensor) -> tf.Tensor:
        """The one vector [batch, latent_dim] that starts the conductor (flat: the decoder): z,
        or with `latent_per_segment` its segments' codes averaged."""
        if self.config.latent_per_segment:
            return tf.reduce_mean(tf.reshape(z, [tf.shape(z)[0], -1, self.config.latent_dim]), 1)
        return z

    def segment_embeddings(self, z: tf.Tensor, segments: tf.Tensor) -> tf.Tensor:
        """The conductor's output, one embedding per segment: [batch, segments, conductor_units
        (+ latent_dim with `decoder_reads_z`)].
        Its steps read zeros (MusicVAE: z reaches later segments only through the recurrence) or
        (`conductor_input: z`) z itself, or (`latent_per_segment`) step s segment s's code. With `decoder_reads_z` z is also appended to every
        embedding: measured on one segment, z's only way through the conductor's squashing gates
        (a tanh layer, two LSTM steps, another tanh layer) learnt far slower than the flat
        decoder's direct one."""
        h0, c0, h1, c1 = tf.split(self.conductor_init(self.text_code(z)), 4, axis=-1)
        if self.config.conductor_input == "z" or self.config.latent_per_segment:
            steps = self.segment_codes(z, segments)
        else:
            steps = tf.zeros(tf.stack([tf.shape(z)[0], segments, 1]), z.dtype)
        x = self.conductor[0](steps, initial_state=[h0, c0])
        embeddings = self.conductor[1](x, initial_state=[h1, c1])
        if self.config.decoder_reads_z:  # MusicVAE's option: z itself beside every segment's embedding
            codes = tf.cast(self.segment_codes(z, segments), embeddings.dtype)  # mixed precision: z stays float32
            embeddings = tf.concat([embeddings, codes], -1)
        return embeddings

    def _run_decoder(self, x: tf.Tensor, states: list[list[tf.Tensor]], training: bool) -> tf.Tensor:
        for layer, state in zip(self.decoder, states):
            x = layer(x, initial_state=state, training=training)
        return x

    def reconstruction_logits(self, z: tf.Tensor, target_ids: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Teacher-forced logits [batch, L, vocab] of the target ids given z. In training, with
        `scheduled_sampling`, that share of the inputs is the decoder's own greedy prediction
        from a first teacher-forced pass (parallel scheduled sampling, Duckworth et al. 2019),
        so it learns to follow z after its own mistakes, as greedy decoding needs."""
        batch = tf.shape(target_ids)[0]
        decoder_inputs = tf.concat([tf.fill([batch, 1], tf.constant(BOS_ID, target_ids.dtype)), target_ids[:, :-1]], 1)
        if self.input_less:
            return self._logits_from_inputs(z, self._unknown_tokens(decoder_inputs), training)
        if training and self.config.scheduled_sampling:
            first_pass = tf.stop_gradient(self._logits_from_inputs(z, decoder_inputs, training))
            predicted = tf.concat([decoder_inputs[:, :1], tf.argmax(first_pass, -1, output_type=decoder_inputs.dtype)[:, :-1]], 1)
            swapped = (tf.random.uniform(tf.shape(decoder_inputs)) < self.config.scheduled_sampling) & (decoder_inputs != PAD_ID)
            decoder_inputs = tf.where(swapped, predicted, decoder_inputs)
        if training and self.config.word_dropout:
            dropped = tf.random.uniform(tf.shape(decoder_inputs)) < self.config.word_dropout
            decoder_inputs = tf.where(dropped, self._unknown_tokens(decoder_inputs), decoder_inputs)
        return self._logits_from_inputs(z, decoder_inputs, training)

    def _logits_from_inputs(self, z: tf.Tensor, decoder_inputs: tf.Tensor, training: bool) -> tf.Tensor:
        """Logits [batch, L, vocab] of the decoder reading `decoder_inputs` (BOS, then the text shifted right)."""
        batch, length = tf.shape(decoder_inputs)[0], tf.shape(decoder_inputs)[1]
        tokens = self.embedding(decoder_inputs)
        t = self.config.segment_length
        if not self.hierarchical:  # every position reads z (`latent_per_segment`: its segment's code)
            codes = tf.repeat(self.segment_codes(z, (length + t - 1) // t), t, axis=1)[:, :length]
            conditioned = tf.concat([tokens, tf.cast(codes, tokens.dtype)], axis=-1)
            return self.to_logits(self._run_decoder(conditioned, self._initial_states(self.text_code(z)), training))
        self._check_whole_segments(length)
        segments = length // t
        embeddings = self.segment_embeddings(z, segments)
        embeddings = tf.reshape(embeddings, [batch * segments, embeddings.shape[-1]])
        tokens = tf.reshape(tokens, [batch * segments, t, self.config.embedding_dim])
        conditioned = tf.concat([tokens, tf.tile(embeddings[:, None], [1, t, 1])], axis=-1)
        hidden = self._run_decoder(conditioned, self._initial_states(embeddings), training)
        return self.to_logits(tf.reshape(hidden, [batch, length, -1]))

    @property
    def input_less(self) -> bool:
        """word_dropout 1.0: the decoder never reads the text, in training or decoding; only z steers it."""
        return self.config.word_dropout >= 1.0

    def _unknown_tokens(self, ids: tf.Tensor) -> tf.Tensor:
        """Every real token replaced by the unknown-token id (the OOV bucket's), padding kept."""
        return tf.where(ids != PAD_ID, tf.constant(self.vocab_size - 1, ids.dtype), ids)

    def decoder_step(self, z: tf.Tensor, length: tf.Tensor) -> tuple:
        """(step, state) for `models.serving.decoding.sample`: one token at a time from z, for `length` tokens."""
        cells = [layer.cell for layer in self.decoder]
        t = self.config.segment_length

        def embed(token: tf.Tensor) -> tf.Tensor:
            return self.embedding(self._unknown_tokens(token) if self.input_less else token)

        def run_cells(x: tf.Tensor, states: list) -> tuple[tf.Tensor, list]:
            new_states = []
            for cell, state in zip(cells, states):
                x, state = cell(x, state, training=False)
                new_states.append(list(state))
            return self.to_logits(x), new_states

        if not self.hierarchical:
            def flat_step(token, state, position):
                states, codes = state
                logits, states = run_cells(tf.concat([embed(token), tf.gather(codes, position // t, axis=1)], -1), states)
                return logits, (states, codes)

            return flat_step, (self._initial_states(self.text_code(z)), self.segment_codes(z, (length + t - 1) // t))

        segments = self.segment_embeddings(z, (length + t - 1) // t)

        def step(token, state, position):
            states, segments_ = state
            embedding = tf.gather(segments_, position // t, axis=1)
            restart = tf.equal(position % t, 0)  # a new segment: its LSTM starts from its embedding
            fresh = self._initial_states(embedding)
            states = [[tf.where(restart, f, s) for f, s in zip(fl, sl)] for fl, sl in zip(fresh, states)]
            logits, states = run_cells(tf.concat([embed(token), embedding], -1), states)
            return logits, (states, segments_)

        zeros = tf.zeros([tf.shape(z)[0], self.config.decoder_units])
        return step, ([[zeros, zeros] for _ in cells], segments)

    def decode(self, z: tf.Tensor, length: tf.Tensor, temperature: tf.Tensor | float = 0.0, seed: tf.Tensor | int = 0) -> tf.Tensor:
        """Token ids [batch, length] decoded from z (temperature 0: greedy), PAD after EOS."""
        batch = tf.shape(z)[0]
        step, state = self.decoder_step(z, length)
        no_prompt = tf.zeros([batch, 0], tf.int64)
        return sample(step, state, no_prompt, tf.zeros([batch], tf.int32), length, temperature, seed=seed)

    def decoder_layers(self) -> list[tf_keras.layers.Layer]:
        """Every layer after z (the embedding, shared with the encoder, is not one of them)."""
        conductor = [self.conductor_init, *self.conductor] if self.hierarchical else []
        return [*conductor, self.decoder_init, *self.decoder, self.to_logits]

    def reset_decoder(self) -> None:
        """Li et al. 2019: after the autoencoder warm-up the decoder starts again from fresh
        weights, while the encoder keeps the code it learned; the decoder must then learn to read z."""
        fresh = TextVAE(self.config, self.vocab_size, self.flat_units)
        fresh.build_for_sequences()
        for layer, new in zip(self.decoder_layers(), fresh.decoder_layers()):
            layer.set_weights(new.get_weights())

    def training_callbacks(self) -> list[tf_keras.callbacks.Callback]:
        """What training needs besides the loss: the decoder reset at the end of the warm-up."""
        c = self.config
        return [DecoderReset(c.warmup_steps)] if c.reset_decoder and c.warmup_steps else []

    # -- objective -------------------------------------------------------------------------

    def beta(self) -> tf.Tensor:
        """The KL weight at the optimizer's current step (beta_max outside training): 0 during the
        autoencoder warm-up (`warmup_steps`), then annealed towards beta_max."""
        c = self.config
        if getattr(self, "optimizer", None) is None:
            return tf.constant(c.beta_max)
        step = tf.cast(self.optimizer.iterations, tf.float32) - c.warmup_steps
        if c.beta_schedule == "exponential":
            beta = c.beta_max * (1.0 - tf.pow(c.beta_rate, tf.maximum(step, 0.0)))
        else:
            beta = c.beta_max * tf.sigmoid((step - c.beta_midpoint) / c.beta_width)
        return tf.where(step < 0, 0.0, beta)

    def _training_noise(self, shape: tf.Tensor) -> tf.Tensor:
        """eps ~ N(0, 1) of the reparameterisation z = mu + sigma * eps."""
        return tf.random.normal(shape)

    def kl_penalty(self, kl_per_unit: tf.Tensor) -> tf.Tensor:
        """The KL cost of a batch before beta, in nats: per text, the KL above `free_bits`; with
        `free_bits_per_unit`, each unit's batch-mean KL above that floor (Kingma et al. 2016)."""
        c = self.config
        if c.free_bits_per_unit:
            batch = tf.cast(tf.shape(kl_per_unit)[0], kl_per_unit.dtype)
            return batch * tf.reduce_sum(tf.maximum(tf.reduce_mean(kl_per_unit, 0) - c.free_bits_per_unit, 0.0))
        return tf.reduce_sum(tf.maximum(tf.reduce_sum(kl_per_unit, -1) - c.free_bits, 0.0))

    def bag_of_tokens_loss(self, z: tf.Tensor, target_ids: tf.Tensor) -> tf.Tensor:
        """Zhao et al. 2017: the negative log-likelihood of every real token of the text under one
        distribution predicted from z alone, summed over the batch (so z must hold the words)."""
        log_probabilities = tf.nn.log_softmax(self.bag_of_tokens(z))  # [batch, vocab]
        picked = tf.gather(log_probabilities, target_ids, batch_dims=1)  # [batch, L]
        return -tf.reduce_sum(picked * tf.cast(target_ids != PAD_ID, picked.dtype))

    def segment_readout_loss(self, z: tf.Tensor, target_ids: tf.Tensor) -> tf.Tensor:
        """After Semeniuta et al. 2017's auxiliary reconstruction: the NLL of every real token
        predicted, position by position, from its segment's conditioning alone (the conductor's
        embedding; flat: z beside the segment's index), summed over the batch. A short path on
        which z must hold each segment's exact text, not just what a language model guesses."""
        t = self.config.segment_length
        batch, length = tf.shape(target_ids)[0], tf.shape(target_ids)[1]
        segments = length // t
        if self.hierarchical:
            source = self.segment_embeddings(z, segments)
        else:
            where = tf.tile(segment_positions(segments)[None], tf.stack([batch, 1, 1]))
            source = tf.concat([tf.tile(z[:, None], tf.stack([1, segments, 1])), tf.cast(where, z.dtype)], -1)
        logits = tf.reshape(self.segment_readout(source), [batch, length, self.vocab_size])
        return -tf.reduce_sum(token_log_likelihoods(target_ids, logits))

    def call(self, target_ids: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Reconstruction logits from a sampled z (mu itself without `posterior_sampling`); adds
        beta * `kl_penalty` and the bag-of-tokens term, divided by the batch's real tokens so they
        sit on the per-token scale of the loss."""
        target_ids = tf.cast(target_ids, tf.int64)
        mu, sigma = self.encode(target_ids, training=training)
        z = mu + sigma * self._training_noise(tf.shape(mu)) if self.config.posterior_sampling else mu
        kl_per_unit = kl_per_latent_unit(mu, sigma)
        # evaluation weighs the KL at its full weight: the validation loss early stopping watches
        # is then the same objective before, during and after the warm-up and the annealing
        beta = self.beta() if training else tf.constant(self.config.beta_max)
        tokens = replica_share_of_tokens(target_ids)
        self.add_loss(beta * self.kl_penalty(kl_per_unit) / tokens)
        if self.bag_of_tokens is not None:
            self.add_loss(self.config.bag_of_tokens * self.bag_of_tokens_loss(z, target_ids) / tokens)
        if self.segment_readout is not None:
            self.add_loss(self.config.segment_readout * self.segment_readout_loss(z, target_ids) / tokens)
        self.add_metric(tf.reduce_mean(tf.reduce_sum(kl_per_unit, -1)), name="kl", aggregation="mean")
        self.add_metric(beta, name="beta", aggregation="mean")
        return self.reconstruction_logits(z, target_ids, training=training)

    def elbo_terms(self, target_ids: tf.Tensor, seed: int = 0) -> dict[str, tf.Tensor]:
        """Per text: negative ELBO (a one-sample estimate with a fixed seed, so repeatable), KL
        (and per latent unit), real tokens, tokens the teacher-forced reconstruction gets right, and mu."""
        target_ids = tf.cast(target_ids, tf.int64)
        mu, sigma = self.encode(target_ids)
        noise = tf.random.stateless_normal(tf.shape(mu), seed=[seed, 0])
        logits = self.reconstruction_logits(mu + sigma * noise, target_ids)
        kl_per_unit = kl_per_latent_unit(mu, sigma)
        kl = tf.reduce_sum(kl_per_unit, axis=-1)
        nll = -tf.reduce_sum(token_log_likelihoods(target_ids, logits), axis=1)
        return {
            "negative_elbo": nll + kl,
            "kl": kl,
            "kl_per_unit": kl_per_unit,
            "token_count": count_real(tf.ones_like(target_ids, tf.bool), target_ids),
            "teacher_forced_hits": count_real(tf.argmax(logits, -1) == target_ids, target_ids),
            "mu": mu,
        }

    def evaluate_texts(self, target_ids: tf.Tensor, seed: int = 0) -> dict[str, tf.Tensor]:
        """`elbo_terms` plus how much the decoder uses z: per text, the teacher-forced NLL given
        its own mu (and the tokens it then gets right) and given the next text's mu (the batch
        rolled by one; `shuffled_z_texts` is 0 in a batch of one, where there is no other text),
        greedy decodes from both (ids, and the tokens they get right: the sampled
        reconstruction), and the KL of each latent unit."""
        target_ids = tf.cast(target_ids, tf.int64)
        terms = self.elbo_terms(target_ids, seed)
        mu = terms["mu"]
        batch = tf.shape(mu)[0]
        both_z = tf.concat([mu, tf.roll(mu, 1, axis=0)], 0)
        both_ids = tf.concat([target_ids, target_ids], 0)
        logits = self.reconstruction_logits(both_z, both_ids)
        nll = -tf.reduce_sum(token_log_likelihoods(both_ids, logits), axis=1)
        decoded = self.decode(both_z, tf.shape(target_ids)[1])
        hits = count_real(decoded == both_ids, both_ids)
        return {
            **terms,
            "own_z_nll": nll[:batch],
            "own_z_teacher_forced_hits": count_real(tf.argmax(logits[:batch], -1) == target_ids, target_ids),
            "shuffled_z_nll": nll[batch:],
            "shuffled_z_texts": tf.fill([batch], tf.cast(batch > 1, tf.int64)),
            "sampled_hits": hits[:batch],
            "shuffled_z_sampled_hits": hits[batch:],
            "target_ids": target_ids,
            "sampled_ids": decoded[:batch],
            "shuffled_z_sampled_ids": decoded[batch:],
        }


def build_hvae(config: HVAEConfig, vocab_size: int) -> tf_keras.Model:
    """The VAE over target ids [batch, L] (the text then EOS, right-padded); it returns
    reconstruction logits [batch, L, vocab] and adds beta * max(KL - free_bits, 0) as a loss."""
    config = config.sized()
    flat_units = (config.flat_units or matched_flat_units(config, vocab_size)) if config.decoder == "flat" else 0
    model = TextVAE(config, vocab_size, flat_units)
    model.build_for_sequences()
    return model
