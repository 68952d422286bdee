"""Hierarchical VAE family (after MusicVAE, Roberts et al. 2018): its hyper-parameters and entry points.

A text of L tokens is read as U = L / T segments of T tokens. A bidirectional LSTM encodes the
whole text to q(z | x) = N(mu, sigma); a conductor LSTM started from z emits one embedding per
segment; a bottom LSTM decodes each segment from its embedding. `decoder: flat` is the
ablation: one LSTM over the whole text, started from z, at a matched parameter budget.
The Keras model lives in `models.families.hvae_model`, imported when a model is built, so reading a
config does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from models.runtime.sizing import SizedConfig

if TYPE_CHECKING:
    import tf_keras

DECODERS = ("hierarchical", "flat")
BETA_SCHEDULES = ("exponential", "logistic")
ENCODER_SUMMARIES = ("final", "mean", "segments", "local")
CONDUCTOR_INPUTS = ("zeros", "z")


@dataclasses.dataclass
class HVAEConfig(SizedConfig):
    """Hyper-parameters of the hierarchical VAE family (the `hvae:` config section), plus the
    size presets, training length and hardware switches every family shares (`models.runtime.sizing`).
    Settings left None take the size's value."""

    # small: MusicVAE's plain model, one code per text (on the 84-review sample the levers below
    # measured worse); base: `bench.hvae`'s short preset with one code of 32 per segment, which
    # reconstructs Tiny Shakespeare's windows with a negative ELBO below the unigram's (README,
    # "One code per segment"; beta 0.6 rather than the benchmark's 0.5 keeps the pipeline's KL lower)
    SIZE_PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "small": {"embedding_dim": 64, "encoder_units": 64, "latent_dim": 32, "conductor_units": 128,
                  "decoder_units": 128, "batch_size": 16, "encoder_summary": "final", "latent_per_segment": False,
                  "decoder_reads_z": False, "word_dropout": 0.0, "scheduled_sampling": 0.0, "warmup_steps": 0,
                  "beta_max": 0.2, "free_bits": 8.0},
        "base": {"embedding_dim": 64, "encoder_units": 128, "latent_dim": 32, "conductor_units": 128,
                 "decoder_units": 192, "batch_size": 128, "encoder_summary": "local", "latent_per_segment": True,
                 "decoder_reads_z": True, "word_dropout": 0.3, "scheduled_sampling": 0.5, "warmup_steps": 300,
                 "beta_max": 0.6, "free_bits": 32.0},
    }
    decoder: str = "hierarchical"  # hierarchical | flat (the ablation)
    segment_length: int = 16  # T; transform.sequence_length must be a multiple of it
    embedding_dim: Optional[int] = None
    encoder_units: Optional[int] = None  # per direction, in each of the 2 bidirectional layers
    latent_dim: Optional[int] = None
    conductor_units: Optional[int] = None  # 2 layers; also the size of a segment embedding
    decoder_units: Optional[int] = None
    decoder_layers: int = 1
    flat_units: int = 0  # flat decoder width; 0 picks the one matching the hierarchical model's size
    beta_max: Optional[float] = None  # weight of the KL term once annealed
    beta_schedule: str = "exponential"  # exponential: beta_max * (1 - beta_rate ** step)
    beta_rate: float = 0.99
    beta_midpoint: int = 200  # logistic: beta_max / (1 + exp(-(step - midpoint) / beta_width))
    beta_width: float = 40.0
    free_bits: Optional[float] = None  # nats of KL per text that cost nothing (keeps the latent in use)
    free_bits_per_unit: float = 0.0  # nats of each latent unit's batch-mean KL that cost nothing
    warmup_steps: Optional[int] = None  # autoencoder warm-up: beta is 0 for these steps, then the schedule starts
    reset_decoder: bool = False  # re-initialise the decoder at the end of the warm-up (Li et al. 2019)
    bag_of_tokens: float = 0.0  # weight of the auxiliary loss predicting the text's tokens from z alone
    segment_readout: float = 0.0  # weight of the auxiliary loss predicting every token, by position, from
    # what conditions its segment's decoder alone (the segment embedding; flat: z), no earlier tokens read
    posterior_sampling: bool = True  # False: z = mu in training (with beta_max 0, a plain autoencoder)
    encoder_summary: Optional[str] = None  # final: the BiLSTM's final states | mean: its outputs averaged over positions |
    # segments: its outputs averaged per segment, then read by a BiLSTM over the segments (a hierarchical encoder) |
    # local: the BiLSTM reads each segment on its own, and its final states there are read by the BiLSTM over segments
    conductor_input: str = "zeros"  # zeros: started from z only (MusicVAE) | z: z is also every conductor step's input
    decoder_reads_z: Optional[bool] = None  # the bottom decoder reads z beside its segment embedding (and starts from both)
    # z is one code of latent_dim per segment (the local encoder's segment BiLSTM outputs; the prior is
    # N(0, I) over all of them): the conductor reads segment s's code at step s, and `decoder_reads_z`
    # gives the bottom decoder its own segment's code; needs encoder_summary: local
    latent_per_segment: Optional[bool] = None
    latent_batch_norm: bool = True  # batch-normalise mu (fixed scale): mu varies across texts from step 0
    embedding_scale: float = 1.0  # the token embeddings start uniform in [-scale, scale] (Keras: 0.05)
    word_dropout: Optional[float] = None  # share of decoder input tokens replaced by the unknown-token id (1.0: input-less)
    scheduled_sampling: Optional[float] = None  # share of decoder inputs replaced by its own greedy predictions in training
    batch_size: Optional[int] = None
    learning_rate: float = 2e-3
    # None: a constant rate (MusicVAE decays slowly, 0.9999 a step); a value: cosine decay from
    # learning_rate to it over the training's steps (more settled weights at the end of a short run)
    min_learning_rate: Optional[float] = None
    min_train_steps: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decoder not in DECODERS:
            raise ValueError(f"hvae.decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"hvae.beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, got {self.beta_schedule!r}")
        for name in ("segment_length", "embedding_dim", "encoder_units", "latent_dim", "conductor_units",
                     "decoder_units", "decoder_layers", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"hvae.{name} must be at least 1, got {getattr(self, name)}")
        if self.flat_units < 0:
            raise ValueError(f"hvae.flat_units must be 0 (matched) or positive, got {self.flat_units}")
        if self.conductor_input not in CONDUCTOR_INPUTS:
            raise ValueError(f"hvae.conductor_input must be one of {', '.join(CONDUCTOR_INPUTS)}, got {self.conductor_input!r}")
        if self.encoder_summary not in (*ENCODER_SUMMARIES, None):
            raise ValueError(f"hvae.encoder_summary must be one of {', '.join(ENCODER_SUMMARIES)}, got {self.encoder_summary!r}")
        if self.latent_per_segment and (self.encoder_summary not in ("local", None) or self.bag_of_tokens
                                        or self.segment_readout):
            raise ValueError("hvae.latent_per_segment needs encoder_summary: local (one summary per segment) and "
                             "does not combine with bag_of_tokens or segment_readout (both read one z per text)")
        # a size-governed setting is None here only under `size: auto`; each size is checked once picked
        for name in ("word_dropout", "scheduled_sampling"):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"hvae.{name} must be in [0, 1], got {getattr(self, name)}")
        if ((self.warmup_steps or 0) < 0 or self.bag_of_tokens < 0 or self.segment_readout < 0
                or self.free_bits_per_unit < 0 or self.embedding_scale <= 0):
            raise ValueError("hvae: warmup_steps, bag_of_tokens, segment_readout and free_bits_per_unit must be "
                             "non-negative, embedding_scale positive")
        if self.min_learning_rate is not None and not 0.0 <= self.min_learning_rate <= self.learning_rate:
            raise ValueError(f"hvae.min_learning_rate must be in [0, learning_rate ({self.learning_rate})], "
                             f"got {self.min_learning_rate}")
        if not 0.0 < self.beta_rate < 1.0 or (self.beta_max or 0) < 0 or (self.free_bits or 0) < 0 or self.beta_width <= 0:
            raise ValueError("hvae: beta_rate must be in (0, 1); beta_max, free_bits and beta_width non-negative")


def _lstm_parameters(inputs: int, units: int) -> int:
    return 4 * (inputs * units + units * units + units)


def decoder_parameters(config: HVAEConfig, vocab_size: int, flat_units: int = 0) -> int:
    """Parameters of the decoder side (everything after z except the shared embedding and
    output layer sizes that depend on the width), for `decoder` or, with `flat_units`, flat."""
    e, layers = config.embedding_dim, config.decoder_layers
    if flat_units:
        u = flat_units
        stack = _lstm_parameters(e + config.latent_dim, u) + (layers - 1) * _lstm_parameters(u, u)
        return (config.latent_dim + 1) * 2 * layers * u + stack + (u + 1) * vocab_size
    c, u = config.conductor_units, config.decoder_units
    steps_in = config.latent_dim if config.conductor_input == "z" or config.latent_per_segment else 1
    conductor = (config.latent_dim + 1) * 4 * c + _lstm_parameters(steps_in, c) + _lstm_parameters(c, c)
    s = c + config.latent_dim if config.decoder_reads_z else c  # what conditions a segment's decoder
    stack = _lstm_parameters(e + s, u) + (layers - 1) * _lstm_parameters(u, u)
    return conductor + (s + 1) * 2 * layers * u + stack + (u + 1) * vocab_size


def matched_flat_units(config: HVAEConfig, vocab_size: int) -> int:
    """The flat decoder width whose parameter count is closest to the hierarchical decoder's."""
    target = decoder_parameters(config, vocab_size)
    return min(range(1, 4 * max(config.decoder_units, config.conductor_units) + 1),
               key=lambda u: abs(decoder_parameters(config, vocab_size, u) - target))


def hvae_optimizer(config: HVAEConfig, total_steps: int) -> "tf_keras.optimizers.Optimizer":
    """Adam (fused update, `models.runtime.fused_adam`) with global-norm clipping, as MusicVAE trains: at
    a constant rate, or with `min_learning_rate` set, cosine-decayed to it over `total_steps`."""
    from models.runtime.fused_adam import FusedAdam
    from models.runtime.training import WarmupCosine

    rate = config.learning_rate
    if config.min_learning_rate is not None:
        rate = WarmupCosine(config.learning_rate, config.min_learning_rate, 0, total_steps)
    return FusedAdam(rate, global_clipnorm=1.0)
