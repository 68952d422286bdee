"""The small registry that tasks and components use to find a family: its name, its config, the
kinds of model it builds (`KINDS`: a task names the kind it trains) and how each is built and
compiled. They know nothing of a particular model beyond this table (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from models.families.hvae import HVAEConfig, hvae_optimizer
from models.families.rnn import (
    RNNConfig,
    build_rnn_classifier,
    build_rnn_lm,
    build_rnn_tagger,
    rnn_decoder,
    rnn_optimizer,
)
from models.families.transformer import (
    TransformerConfig,
    build_transformer_classifier,
    build_transformer_lm,
    build_transformer_tagger,
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
    # (model, batch, max_length) -> (step, state) for models.serving.decoding; None: the model decodes itself
    decoder: Optional[Callable[..., tuple]]
    description: str
    # (config, vocab_size, num_classes) -> model emitting class logits; None: no classifier mode
    build_classifier: Optional[Callable[[Any, int, int], "tf_keras.Model"]] = None
    objective: str = "language_model"
    # (config, vocab_size) -> encoder-decoder (source ids, decoder input ids) -> logits, with
    # `encode`/`decoder` for models.serving.decoding.decode_seq2seq; None: no seq2seq mode
    build_seq2seq: Optional[Callable[[Any, int], "tf_keras.Model"]] = None
    seq2seq_optimizer: Optional[Callable[[Any, int], Any]] = None
    # (config, kind) -> whether XLA on CPU compiles its train step: it crashes on the while loop
    # of Keras' recurrent layers (`xla_compiles_on_cpu`)
    xla_on_cpu: Callable[[Any, str], bool] = lambda config, kind: True
    # why `jit_compile: auto` does not try XLA on CPU although it compiles (None: it is tried)
    xla_untried_on_cpu: Optional[str] = None
    # the settings that let XLA compile on CPU where they exist, for the refusal of `jit_compile: true`
    xla_on_cpu_hint: str = ""
    # (config of one size, kind, sequence_length) -> why this config cannot build that kind of model for
    # texts of that many positions; None: it can (the config refuses it before anything runs)
    check: Callable[[Any, str, int], Optional[str]] = lambda config, kind, sequence_length: None
    # (config, vocab_size, num_classes) -> model of (word ids, their character ids) emitting one
    # class's logits per word; None: no tagger mode
    build_tagger: Optional[Callable[[Any, int, int], "tf_keras.Model"]] = None
    # passes over the training split a kind of model of this family takes in place of its task's
    # (`train_epochs: null`); a kind not named takes the task's
    train_epochs: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def passes(self, kind: str, task_epochs: float) -> float:
        """The passes a `kind` model of this family takes where its config leaves `train_epochs` null."""
        return self.train_epochs.get(kind, task_epochs)


def _rnn_xla_on_cpu(config: RNNConfig, kind: str) -> bool:
    """Only the LSTM language model with `recurrence: auto` runs `models.layers.fast_lstm` on CPU, which
    XLA compiles; the GRU, Keras' LSTM, the bidirectional classifier and the encoder-decoder run
    Keras' loop."""
    return kind == "language_model" and config.cell == "lstm" and config.recurrence == "auto"


def _transformer_check(config: TransformerConfig, kind: str, sequence_length: int) -> Optional[str]:
    """The learned positions of the language model and classifier span `context`; the
    encoder-decoder's positions are sinusoidal, sines and cosines in pairs."""
    if kind != "seq2seq" and config.context < sequence_length:
        return (f"config key 'transformer.context' ({config.context}) must be at least "
                f"'transform.sequence_length' ({sequence_length})")
    if kind == "seq2seq" and config.width % 2:
        return f"config key 'transformer.width' must be even for the encoder-decoder's sinusoidal positions, got {config.width}"
    return None


def _hvae_check(config: HVAEConfig, kind: str, sequence_length: int) -> Optional[str]:
    if config.decoder == "hierarchical" and sequence_length % config.segment_length:
        return (f"config key 'transform.sequence_length' ({sequence_length}) must be a multiple of "
                f"'hvae.segment_length' ({config.segment_length}): the hierarchical VAE reads a text as whole segments")
    return None


def _build_hvae(config: HVAEConfig, vocab_size: int) -> "tf_keras.Model":
    from models.families.hvae_model import build_hvae  # TensorFlow is imported here, not with the registry

    return build_hvae(config, vocab_size)


def _build_rnn_seq2seq(config: RNNConfig, vocab_size: int) -> "tf_keras.Model":
    from models.families.rnn_seq2seq import build_rnn_seq2seq  # TensorFlow is imported here, not with the registry

    return build_rnn_seq2seq(config, vocab_size)


def _rnn_seq2seq_optimizer(config: RNNConfig, total_steps: int) -> Any:
    from models.families.rnn_seq2seq import rnn_seq2seq_optimizer

    return rnn_seq2seq_optimizer(config, total_steps)


def _build_transformer_seq2seq(config: TransformerConfig, vocab_size: int) -> "tf_keras.Model":
    from models.families.transformer_seq2seq import build_transformer_seq2seq

    return build_transformer_seq2seq(config, vocab_size)


_FAMILIES = {
    family.name: family
    for family in (
        Family(
            "rnn", RNNConfig, build_rnn_lm, rnn_optimizer, rnn_decoder,
            "LSTM/GRU language model; bidirectional classifier and tagger; attention encoder-decoder",
            build_rnn_classifier, build_seq2seq=_build_rnn_seq2seq, build_tagger=build_rnn_tagger,
            seq2seq_optimizer=_rnn_seq2seq_optimizer, xla_on_cpu=_rnn_xla_on_cpu,
            xla_on_cpu_hint=" (or, for a language model, rnn.cell: lstm with rnn.recurrence: auto)",
            xla_untried_on_cpu=("XLA ran the LSTM language model slower than without in every trial measured "
                                "(0.19x on an AMD EPYC, 0.51-0.77x on an AMX Xeon); jit_compile: true still uses it"),
        ),
        Family(
            "transformer", TransformerConfig, build_transformer_lm, transformer_optimizer, transformer_decoder,
            "decoder-only Transformer language model; encoder classifier and tagger; encoder-decoder",
            build_transformer_classifier, build_tagger=build_transformer_tagger,
            build_seq2seq=_build_transformer_seq2seq, seq2seq_optimizer=transformer_optimizer,
            check=_transformer_check,
            # on SST-2's phrases the encoder classifier overfits after one pass: one pass, its learning
            # rate decayed by its end, scored 0.811 on held-out sentences against 0.779 for three (README)
            train_epochs={"classifier": 1.0},
        ),
        Family(
            "hvae", HVAEConfig, _build_hvae, hvae_optimizer, None,
            "hierarchical (MusicVAE-style) variational autoencoder; no classifier mode", objective="vae",
            # recurrence auto: every LSTM (the masked, bidirectional encoders too) is models.layers.fast_lstm
            xla_on_cpu=lambda config, kind: config.recurrence == "auto",
            xla_untried_on_cpu=("XLA compiles the VAE's train step for minutes on CPU and ran it 2.8x slower than "
                                "without (README, 'Benchmarks'); jit_compile: true still uses it"),
            check=_hvae_check,
        ),
    )
}


def names() -> list[str]:
    return list(_FAMILIES)


# What a family's model for a task is (the task names the kind it trains, `tasks.Task.model_kind`):
# a language model (input ids -> next-token logits), a VAE (target ids -> reconstruction logits
# plus a KL loss), a classifier (ids -> class logits) or an encoder-decoder ((source ids,
# decoder input ids) -> logits) or a tagger ((word ids, character ids) -> one tag's logits per word).
KINDS = ("language_model", "vae", "classifier", "seq2seq", "tagger")
# Which element of a training batch (x, y) holds the positions a step's tokens per second counts:
# a classifier's texts are its inputs, every other kind's are its targets.
POSITIONS_INPUT = {"language_model": 1, "vae": 1, "classifier": 0, "seq2seq": 1, "tagger": 1}


def kinds(name: str) -> tuple[str, ...]:
    """The kinds of model a family builds: its objective, and a classifier, an encoder-decoder and a
    tagger where it has them."""
    family = get(name)
    return ((family.objective,) + (("classifier",) if family.build_classifier else ())
            + (("seq2seq",) if family.build_seq2seq else ()) + (("tagger",) if family.build_tagger else ()))


def build_model(name: str, kind: str, config: Any, vocab_size: int, num_classes: int = 0) -> "tf_keras.Model":
    """A family's model of one kind, with its weights created."""
    family = get(name)
    if kind not in kinds(name):
        raise ValueError(f"the {name} family has no {kind} model (it builds: {', '.join(kinds(name))})")
    if kind == "classifier":
        return family.build_classifier(config, vocab_size, num_classes)
    if kind == "tagger":
        return family.build_tagger(config, vocab_size, num_classes)
    if kind == "seq2seq":
        from models.layers.seq2seq import built

        return built(family.build_seq2seq(config, vocab_size))
    return family.build(config, vocab_size)


def compile_model(name: str, kind: str, model: "tf_keras.Model", config: Any, total_steps: int) -> None:
    """The family's optimizer for a training of `total_steps` and the kind's loss and metrics, with
    `config.jit_compile` and `config.steps_per_execution`; the optimizer's slots are created now.
    A tagger learns as a language model does (cross-entropy per real position, class 0 pads), or by
    its CRF's likelihood where it has one."""
    from models.runtime.training import compile_classifier, compile_language_model, compile_seq2seq, compile_tagger

    family = get(name)
    settings = dict(jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)
    if kind == "classifier":
        compile_classifier(model, family.optimizer(config, total_steps), **settings)
    elif kind == "seq2seq":
        compile_seq2seq(model, family.seq2seq_optimizer(config, total_steps), config.label_smoothing, **settings)
    elif kind == "tagger":
        compile_tagger(model, family.optimizer(config, total_steps), **settings)
    else:
        compile_language_model(model, family.optimizer(config, total_steps), **settings)


def get(name: str) -> Family:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r} (known: {', '.join(_FAMILIES)})") from None


XLA_CPU_CRASH = (
    "XLA on CPU crashes compiling the while loop of Keras' recurrent layers (a segmentation fault in "
    "its oneDNN matmul rewriter, seen with Keras' LSTM at 256 units; README, 'Precision, XLA and batching')"
)


def xla_compiles_on_cpu(name: str, config: Any, kind: str = "language_model") -> bool:
    """Whether `jit_compile` can train this family's model of `kind` on a machine without a GPU."""
    return get(name).xla_on_cpu(config, kind)


def xla_left_out_on_cpu(name: str, config: Any, kind: str = "language_model") -> Optional[str]:
    """Why `jit_compile: auto` leaves XLA out of this model's CPU candidates; None: it is tried."""
    if not xla_compiles_on_cpu(name, config, kind):
        return f"XLA cannot compile this {name} model on CPU (its recurrent layers run Keras' loop)"
    return get(name).xla_untried_on_cpu
