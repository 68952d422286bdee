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


_FAMILIES = {
    family.name: family
    for family in (
        Family(
            "rnn", RNNConfig, build_rnn_lm, rnn_optimizer, rnn_decoder,
            "LSTM/GRU language model; bidirectional classifier", build_rnn_classifier,
        ),
        Family(
            "transformer", TransformerConfig, build_transformer_lm, transformer_optimizer, transformer_decoder,
            "decoder-only Transformer language model; encoder classifier", build_transformer_classifier,
        ),
        Family(
            "hvae", HVAEConfig, build_hvae, hvae_optimizer, None,
            "hierarchical (MusicVAE-style) variational autoencoder; no classifier mode", objective="vae",
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
