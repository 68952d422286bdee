"""The small registry that components use to find a family: name -> config, build.

Components know nothing of a particular model beyond this table (DESIGN.md section 3).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from models.rnn import RNNConfig, build_rnn_lm

if TYPE_CHECKING:
    import tf_keras


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: its hyper-parameter dataclass and how to build its Keras model."""

    name: str
    config_class: type
    build: Callable[[Any, int], "tf_keras.Model"]  # (config, vocab_size) -> model emitting logits
    description: str


_FAMILIES = {
    family.name: family
    for family in (
        Family("rnn", RNNConfig, build_rnn_lm, "LSTM/GRU language model"),
    )
}


def names() -> list[str]:
    return list(_FAMILIES)


def get(name: str) -> Family:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r} (known: {', '.join(_FAMILIES)})") from None
