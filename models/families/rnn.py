"""RNN family: embedding -> stacked LSTM/GRU -> logits over the vocabulary (language model),
bidirectional LSTM/GRU layers max-pooled over positions -> class logits (classifier), or
over words and their characters -> a tag's logits per word (tagger).

The recurrent layers keep Keras' cuDNN-compatible defaults (tanh, sigmoid gates, no recurrent
dropout, not unrolled), so on a GPU they run the fused cuDNN kernel; on CPU the same weights
run the generic kernel. Inputs are right-padded with id 0 and the model is causal, so padding
never influences a real position: the loss mask (see `models.layers.lm_loss`) is all that is needed.
TensorFlow is imported when a model is built, not when the config is read, so checking a
config (and `textflow --help`) stays fast.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from models.layers.tokens import check_character_view, padding_mask_layer
from models.runtime.sizing import SizedConfig

if TYPE_CHECKING:
    import tensorflow as tf
    import tf_keras


@dataclasses.dataclass
class RNNConfig(SizedConfig):
    """Hyper-parameters of the RNN family (the `rnn:` section of the project config), plus the
    size presets, training length and hardware switches every family shares (`models.runtime.sizing`).
    Settings left None take the size's value."""

    # `large` is `bench.seq2seq`'s translator (a 512-unit BiLSTM encoder and LSTM decoder: BLEU
    # 32.48 on Multi30k); `size: auto` picks it for the encoder-decoder tasks of a large enough corpus
    SIZE_PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "small": {"embedding_dim": 64, "units": 128, "layers": 2, "dropout": 0.0, "embedding_dropout": 0.0,
                  "batch_size": 32},
        "base": {"embedding_dim": 128, "units": 256, "layers": 1, "dropout": 0.5, "embedding_dropout": 0.3,
                 "batch_size": 64},
        "large": {"embedding_dim": 256, "units": 512, "layers": 1, "dropout": 0.3, "embedding_dropout": 0.1,
                  "batch_size": 128},
    }
    cell: str = "lstm"  # lstm | gru
    embedding_dim: Optional[int] = None
    units: Optional[int] = None
    layers: Optional[int] = None
    dropout: Optional[float] = None  # on each recurrent layer's outputs
    embedding_dropout: Optional[float] = None  # on the embedded tokens, whole channels at a time
    batch_size: Optional[int] = None
    learning_rate: float = 2e-3
    # seq2seq mode (models.families.rnn_seq2seq)
    attention: str = "additive"  # additive (Bahdanau) | multiplicative (Luong's general score)
    shared_embeddings: bool = True  # one token table for source and target (a joint vocabulary)
    label_smoothing: float = 0.1
    # tagger mode: how a word's characters are read (models.layers.characters): cnn | lstm
    characters: str = "cnn"
    # tagger mode: a linear-chain CRF over the words' tag scores (models.layers.crf), decoded by Viterbi
    crf: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_character_view(self.characters, "rnn")
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"rnn.cell must be 'lstm' or 'gru', got {self.cell!r}")
        if self.attention not in ("additive", "multiplicative"):
            raise ValueError(f"rnn.attention must be 'additive' or 'multiplicative', got {self.attention!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"rnn.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("embedding_dim", "units", "layers", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"rnn.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("dropout", "embedding_dropout"):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"rnn.{name} must be in [0, 1), got {getattr(self, name)}")


def build_rnn_lm(config: RNNConfig, vocab_size: int) -> tf_keras.Model:
    """Many-to-many LSTM/GRU language model over token ids; returns float32 logits."""
    import tf_keras

    config = config.sized()

    token_ids = tf_keras.Input(shape=(None,), dtype="int64", name="input_ids")
    x = tf_keras.layers.Embedding(vocab_size, config.embedding_dim, name="embedding")(token_ids)
    if config.embedding_dropout:
        x = tf_keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(x)
    recurrent = _lm_recurrent_layer(config)
    for i in range(config.layers):
        x = recurrent(config.units, return_sequences=True, name=f"{config.cell}_{i}")(x)
        if config.dropout:
            x = tf_keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    logits = tf_keras.layers.Dense(vocab_size, dtype="float32", name="logits")(x)
    model = tf_keras.Model(token_ids, logits, name="rnn_lm")
    model.lm_config = config  # what the step-by-step decoder needs to find its layers
    return model


def _lm_recurrent_layer(config: RNNConfig) -> type:
    """The LM's recurrent layer class: with `recurrence: auto` an LSTM is `FastLSTM` (Keras'
    weights and math, far fewer ops per step on CPU; on a GPU it is Keras' cuDNN LSTM)."""
    import tf_keras

    from models.layers.fast_lstm import lstm_class

    return tf_keras.layers.GRU if config.cell == "gru" else lstm_class(config.recurrence)


def build_rnn_classifier(config: RNNConfig, vocab_size: int, num_classes: int) -> tf_keras.Model:
    """Bidirectional LSTM/GRU classifier over token ids, max-pooled over the text's positions
    (BiLSTM-max, as InferSent reads a sentence); returns class logits.

    The embedding masks pad id 0, so each direction reads the real tokens only; dropout acts on
    the embedded tokens (whole channels) and on every layer's outputs. The max takes real
    positions only, from an explicit padding mask (not Keras' implicit one, which a reloaded
    SavedModel need not reproduce). On SST-2 (1 layer of 128, dropout 0.5, embedding dropout
    0.3) the max over positions reached higher dev accuracy than the final states (0.830
    against 0.784 at 400 steps, one seed each)."""
    import tf_keras

    from models.layers.pooling import masked_max_pool_layer

    config = config.sized()
    token_ids = tf_keras.Input(shape=(None,), dtype="int64", name="input_ids")
    x = tf_keras.layers.Embedding(vocab_size, config.embedding_dim, mask_zero=True, name="embedding")(token_ids)
    if config.embedding_dropout:
        x = tf_keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(x)
    recurrent = tf_keras.layers.LSTM if config.cell == "lstm" else tf_keras.layers.GRU
    for i in range(config.layers):
        x = tf_keras.layers.Bidirectional(recurrent(config.units, return_sequences=True), name=f"bi{config.cell}_{i}")(x)
        if config.dropout:
            x = tf_keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    pooled = masked_max_pool_layer()([x, token_ids])
    logits = tf_keras.layers.Dense(num_classes, dtype="float32", name="logits")(pooled)
    return tf_keras.Model(token_ids, logits, name="rnn_classifier")


def build_rnn_tagger(config: RNNConfig, vocab_size: int, num_classes: int) -> tf_keras.Model:
    """Bidirectional LSTM/GRU tagger: each word's embedding beside its characters' vector
    (`models.layers.characters`, by `config.characters`, for words the vocabulary never showed)
    -> BiLSTM layers -> one softmax per word over `num_classes` (class 0 is the padding slot,
    never a target).

    Each direction reads the real words only, from an explicit padding mask passed to every
    recurrent layer; dropout as in the classifier. `config.crf`: a CRF over the tag scores."""
    import tf_keras

    from models.layers.characters import character_encoder
    from models.layers.crf import CRF

    config = config.sized()
    token_ids = tf_keras.Input(shape=(None,), dtype="int64", name="input_ids")
    char_ids = tf_keras.Input(shape=(None, None), dtype="int64", name="char_ids")
    padding_mask = padding_mask_layer()(token_ids)
    words = tf_keras.layers.Embedding(vocab_size, config.embedding_dim, name="embedding")(token_ids)
    x = tf_keras.layers.Concatenate(name="word_and_characters")([words, character_encoder(config.characters)(char_ids)])
    if config.embedding_dropout:
        x = tf_keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(x)
    recurrent = tf_keras.layers.LSTM if config.cell == "lstm" else tf_keras.layers.GRU
    for i in range(config.layers):
        x = tf_keras.layers.Bidirectional(recurrent(config.units, return_sequences=True),
                                          name=f"bi{config.cell}_{i}")(x, mask=padding_mask)
        if config.dropout:
            x = tf_keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    logits = tf_keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    if config.crf:
        logits = CRF(name="crf")(logits)
    return tf_keras.Model({"input_ids": token_ids, "char_ids": char_ids}, logits, name="rnn_tagger")


def rnn_optimizer(config: RNNConfig, total_steps: int) -> "tf_keras.optimizers.Optimizer":
    """Adam (fused update, `models.runtime.fused_adam`) at a constant rate, gradients clipped to
    global norm 1 (recurrences can explode)."""
    from models.runtime.fused_adam import FusedAdam

    return FusedAdam(config.learning_rate, global_clipnorm=1.0)


def rnn_decoder(model: "tf_keras.Model", batch_size: "tf.Tensor", max_length: "tf.Tensor") -> tuple:
    """(step, initial state) for `models.serving.decoding`: one token at a time through the cells of
    the trained layers, carrying their states, so each new token costs one step."""
    import tensorflow as tf

    config: RNNConfig = model.lm_config
    layers = [model.get_layer(f"{config.cell}_{i}") for i in range(config.layers)]
    embedding, output = model.get_layer("embedding"), model.get_layer("logits")
    state = [[tf.zeros([batch_size, config.units])] * (2 if config.cell == "lstm" else 1) for _ in layers]

    def step(token: tf.Tensor, state: list, position: tf.Tensor) -> tuple[tf.Tensor, list]:
        x = embedding(token)
        new_state = []
        for layer, layer_state in zip(layers, state):
            x, cell_state = layer.cell(x, layer_state, training=False)
            new_state.append(list(cell_state) if isinstance(cell_state, (list, tuple)) else [cell_state])
        return output(x), new_state

    return step, state
