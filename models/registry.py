"""The small registry that components use to find a family: name -> config, build.

Components know nothing of a particular model beyond this table (DESIGN.md section 3).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Optional

from models.hvae import HVAEConfig, build_hvae, hvae_optimizer
from models.rnn import RNNConfig, build_rnn_classifier, build_rnn_lm, rnn_decoder, rnn_optimizer
from models.transformer import (
    TransformerConfig,
    build_transformer_classifier,
    build_transformer_lm,
    transformer_decoder,
    transformer_optimizer,
)

if TYPE_CHECKING:
    import tf_keras


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: its hyper-parameters, how to build, optimise and decode its models.

    `objective` says what its model is and how it is evaluated: "language_model" (input ids ->
    next-token logits; cross-entropy per token) or "vae" (target ids -> reconstruction logits
    plus a KL loss; negative ELBO per token, an upper bound on the same cross-entropy)."""

    name: str
    config_class: type
    build: Callable[[Any, int], "tf_keras.Model"]  # (config, vocab_size) -> model emitting logits
    optimizer: Callable[[Any, int], Any]  # (config, total train steps) -> tf_keras optimizer
    # (model, batch, max_length) -> (step, state) for models.decoding; None: the model decodes itself
    decoder: Optional[Callable[..., tuple]]
    description: str
    # (config, vocab_size, num_classes) -> model emitting class logits; None: no classifier mode
    build_classifier: Optional[Callable[[Any, int, int], "tf_keras.Model"]] = None
    objective: str = "language_model"
    # (config, vocab_size) -> encoder-decoder (source ids, decoder input ids) -> logits, with
    # `encode`/`decoder` for models.decoding.decode_seq2seq; None: no seq2seq mode
    build_seq2seq: Optional[Callable[[Any, int], "tf_keras.Model"]] = None
    seq2seq_optimizer: Optional[Callable[[Any, int], Any]] = None
    # (config, task) -> whether XLA on CPU compiles its train step: it crashes on the while loop
    # of Keras' recurrent layers (`xla_compiles_on_cpu`)
    xla_on_cpu: Callable[[Any, str], bool] = lambda config, task: True
    # why `jit_compile: auto` does not try XLA on CPU although it compiles (None: it is tried)
    xla_untried_on_cpu: Optional[str] = None


def _rnn_xla_on_cpu(config: RNNConfig, task: str) -> bool:
    """Only the LSTM language model with `recurrence: auto` runs `models.fast_lstm` on CPU, which
    XLA compiles; the GRU, Keras' LSTM, the bidirectional classifier and the encoder-decoder run
    Keras' loop."""
    return task == "language_model" and config.cell == "lstm" and config.recurrence == "auto"


def _build_rnn_seq2seq(config: RNNConfig, vocab_size: int) -> "tf_keras.Model":
    from models.seq2seq_rnn import build_rnn_seq2seq  # TensorFlow is imported here, not with the registry

    return build_rnn_seq2seq(config, vocab_size)


def _rnn_seq2seq_optimizer(config: RNNConfig, total_steps: int) -> Any:
    from models.seq2seq_rnn import rnn_seq2seq_optimizer

    return rnn_seq2seq_optimizer(config, total_steps)


def _build_transformer_seq2seq(config: TransformerConfig, vocab_size: int) -> "tf_keras.Model":
    from models.seq2seq_transformer import build_transformer_seq2seq

    return build_transformer_seq2seq(config, vocab_size)


_FAMILIES = {
    family.name: family
    for family in (
        Family(
            "rnn", RNNConfig, build_rnn_lm, rnn_optimizer, rnn_decoder,
            "LSTM/GRU language model; bidirectional classifier; attention encoder-decoder", build_rnn_classifier,
            build_seq2seq=_build_rnn_seq2seq, seq2seq_optimizer=_rnn_seq2seq_optimizer, xla_on_cpu=_rnn_xla_on_cpu,
        ),
        Family(
            "transformer", TransformerConfig, build_transformer_lm, transformer_optimizer, transformer_decoder,
            "decoder-only Transformer language model; encoder classifier; encoder-decoder",
            build_transformer_classifier,
            build_seq2seq=_build_transformer_seq2seq, seq2seq_optimizer=transformer_optimizer,
        ),
        Family(
            "hvae", HVAEConfig, build_hvae, hvae_optimizer, None,
            "hierarchical (MusicVAE-style) variational autoencoder; no classifier mode", objective="vae",
            # recurrence auto: every LSTM (the masked, bidirectional encoders too) is models.fast_lstm
            xla_on_cpu=lambda config, task: config.recurrence == "auto",
            xla_untried_on_cpu=("XLA compiles the VAE's train step for minutes on CPU and ran it 2.8x slower than "
                                "without (README, 'Benchmarks'); jit_compile: true still uses it"),
        ),
    )
}


def names() -> list[str]:
    return list(_FAMILIES)


def get(name: str) -> Family:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r} (known: {', '.join(_FAMILIES)})") from None


XLA_CPU_CRASH = (
    "XLA on CPU crashes compiling the while loop of Keras' recurrent layers (a segmentation fault in "
    "its oneDNN matmul rewriter, seen with Keras' LSTM at 256 units; README, 'Precision, XLA and batching')"
)


def xla_compiles_on_cpu(name: str, config: Any, task: str = "language_model") -> bool:
    """Whether `jit_compile` can train this family's model for `task` on a machine without a GPU."""
    return get(name).xla_on_cpu(config, task)


def xla_left_out_on_cpu(name: str, config: Any, task: str = "language_model") -> Optional[str]:
    """Why `jit_compile: auto` leaves XLA out of this model's CPU candidates; None: it is tried."""
    if not xla_compiles_on_cpu(name, config, task):
        return f"XLA cannot compile this {name} model on CPU (its recurrent layers run Keras' loop)"
    return get(name).xla_untried_on_cpu
