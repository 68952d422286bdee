"""Transformer family on Keras 2: a decoder-only (GPT-style) language model, an encoder
classifier (bidirectional attention, mean- or max-pooled), or an encoder tagger (one softmax per word).

keras-nlp's token + learned position embedding -> N pre-layer-norm decoder blocks (causal
self-attention, feed-forward, residuals; `models.layers.transformer_block`) -> final layer norm ->
logits. The classifier uses keras-nlp's `TransformerEncoder`. `call_with_cache` runs
new positions against a key/value cache, so decoding a token costs one position's
work instead of re-running the whole prefix (see `models.serving.decoding`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from models.layers.tokens import check_character_view, padding_mask_layer
from models.runtime.sizing import SizedConfig

if TYPE_CHECKING:
    import tensorflow as tf
    import tf_keras

POOLINGS = ("max", "mean")  # how the classifier reads its encoder's outputs


@dataclasses.dataclass
class TransformerConfig(SizedConfig):
    """Hyper-parameters of the Transformer family (the `transformer:` config section), plus the
    size presets, training length and hardware switches every family shares (`models.runtime.sizing`).
    Settings left None take the size's value."""

    # `large` is `bench.seq2seq`'s translator (3+3 layers of width 256: BLEU 38.66 on Multi30k);
    # `size: auto` picks it for the encoder-decoder tasks of a large enough corpus
    SIZE_PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "small": {"layers": 2, "heads": 4, "width": 64, "ff_width": 256, "dropout": 0.1, "batch_size": 16,
                  "warmup_steps": 20, "learning_rate": 2e-3, "min_learning_rate": 2e-4, "weight_decay": 0.1,
                  "embedding_dropout": 0.0},
        "base": {"layers": 4, "heads": 4, "width": 128, "ff_width": 512, "dropout": 0.1, "batch_size": 64,
                 "warmup_steps": 100, "learning_rate": 2e-3, "min_learning_rate": 2e-4, "weight_decay": 0.1,
                 "embedding_dropout": 0.3},
        "large": {"layers": 3, "heads": 8, "width": 256, "ff_width": 1024, "dropout": 0.1, "batch_size": 128,
                  "warmup_steps": 400, "learning_rate": 1e-3, "min_learning_rate": 5e-5, "weight_decay": 0.01,
                  "embedding_dropout": 0.3},
    }
    layers: Optional[int] = None
    heads: Optional[int] = None
    width: Optional[int] = None
    ff_width: Optional[int] = None
    dropout: Optional[float] = None
    context: int = 256  # longest sequence the position embedding covers
    batch_size: Optional[int] = None
    learning_rate: Optional[float] = None  # peak, after linear warm-up
    min_learning_rate: Optional[float] = None  # end of the cosine decay
    warmup_steps: Optional[int] = None
    weight_decay: Optional[float] = None
    min_train_steps: int = 200
    # seq2seq mode (models.families.transformer_seq2seq)
    encoder_layers: Optional[int] = None  # null: as many as the decoder's `layers`
    shared_embeddings: bool = True  # one token table for source and target (a joint vocabulary)
    label_smoothing: float = 0.1
    # classifier mode: the encoder's outputs pooled over the real tokens, their max or averaged
    # (max measured better on SST-2: README)
    pooling: str = "max"
    # classifier mode: dropout on the embedded tokens, whole channels at a time (as `rnn.embedding_dropout`);
    # the encoder's own `dropout` leaves the token table, most of a classifier's weights, unregularised
    embedding_dropout: Optional[float] = None
    # tagger mode: how a word's characters are read (models.layers.characters): cnn | lstm
    characters: str = "cnn"
    # tagger mode: a linear-chain CRF over the words' tag scores (models.layers.crf), decoded by Viterbi
    crf: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_character_view(self.characters, "transformer")
        for name in ("layers", "heads", "width", "ff_width", "context", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"transformer.{name} must be at least 1, got {getattr(self, name)}")
        if self.width is not None and self.heads is not None and self.width % self.heads:
            raise ValueError(f"transformer.width ({self.width}) must be a multiple of transformer.heads ({self.heads})")
        if self.encoder_layers is not None and self.encoder_layers < 1:
            raise ValueError(f"transformer.encoder_layers must be at least 1, got {self.encoder_layers}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"transformer.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"transformer.dropout must be in [0, 1), got {self.dropout}")
        if self.embedding_dropout is not None and not 0.0 <= self.embedding_dropout < 1.0:
            raise ValueError(f"transformer.embedding_dropout must be in [0, 1), got {self.embedding_dropout}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"transformer.pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")


def build_transformer_lm(config: TransformerConfig, vocab_size: int) -> "tf_keras.Model":
    """Functional GPT-style model over token ids; returns float32 logits [batch, time, vocab]."""
    import tf_keras
    from keras_nlp.layers import TokenAndPositionEmbedding

    from models.layers.column_sums import LayerNormalization
    from models.layers.transformer_block import DecoderBlock

    config = config.sized()
    token_ids = tf_keras.Input(shape=(None,), dtype="int64", name="input_ids")
    x = TokenAndPositionEmbedding(vocab_size, config.context, config.width, name="embedding")(token_ids)
    for i in range(config.layers):
        x = DecoderBlock(config.width, config.heads, config.ff_width, config.dropout, name=f"block_{i}")(x)
    x = LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    logits = tf_keras.layers.Dense(vocab_size, dtype="float32", name="logits")(x)
    model = tf_keras.Model(token_ids, logits, name="transformer_lm")
    model.lm_config = config  # what the cached decoder needs to size its cache
    return model


def build_transformer_classifier(config: TransformerConfig, vocab_size: int, num_classes: int) -> "tf_keras.Model":
    """Encoder classifier: token + position embedding -> N pre-layer-norm `TransformerEncoder`
    blocks that attend over the real tokens only -> max (or `pooling: mean`) over real tokens -> class logits."""
    import tf_keras
    from keras_nlp.layers import TokenAndPositionEmbedding, TransformerEncoder

    from models.layers.pooling import masked_max_pool_layer

    config = config.sized()
    token_ids = tf_keras.Input(shape=(None,), dtype="int64", name="input_ids")
    padding_mask = padding_mask_layer()(token_ids)
    x = TokenAndPositionEmbedding(vocab_size, config.context, config.width, name="embedding")(token_ids)
    if config.embedding_dropout:
        x = tf_keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(x)
    for i in range(config.layers):
        block = TransformerEncoder(
            config.ff_width, config.heads, dropout=config.dropout, activation="gelu",
            normalize_first=True, name=f"block_{i}",
        )
        x = block(x, padding_mask=padding_mask)
    x = tf_keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    if config.pooling == "max":
        pooled = masked_max_pool_layer()([x, token_ids])
    else:
        pooled = tf_keras.layers.GlobalAveragePooling1D(name="mean_pool")(x, mask=padding_mask)
    if config.dropout:
        pooled = tf_keras.layers.Dropout(config.dropout, name="dropout")(pooled)
    logits = tf_keras.layers.Dense(num_classes, dtype="float32", name="logits")(pooled)
    return tf_keras.Model(token_ids, logits, name="transformer_classifier")


def build_transformer_tagger(config: TransformerConfig, vocab_size: int, num_classes: int) -> "tf_keras.Model":
    """Encoder tagger: each word's token + position embedding plus its characters' vector
    (`models.layers.characters`, projected to the width), plus a width-3 convolution over the
    words (`models.layers.local_context`) -> N pre-layer-norm `TransformerEncoder` blocks over
    the real words -> one softmax per word over `num_classes` (0: the padding slot), or with
    `config.crf` a CRF over those scores. On UD English EWT the convolution took the validation
    token accuracy from 0.92 to 0.95."""
    import tf_keras
    from keras_nlp.layers import TokenAndPositionEmbedding, TransformerEncoder

    from models.layers.characters import character_encoder
    from models.layers.crf import CRF
    from models.layers.local_context import LocalContext

    config = config.sized()
    token_ids = tf_keras.Input(shape=(None,), dtype="int64", name="input_ids")
    char_ids = tf_keras.Input(shape=(None, None), dtype="int64", name="char_ids")
    padding_mask = padding_mask_layer()(token_ids)
    words = TokenAndPositionEmbedding(vocab_size, config.context, config.width, name="embedding")(token_ids)
    characters = tf_keras.layers.Dense(config.width, name="characters_projection")(character_encoder(config.characters)(char_ids))
    x = tf_keras.layers.Add(name="word_and_characters")([words, characters])
    x = LocalContext(name="local_context")([x, padding_mask])
    if config.embedding_dropout:
        x = tf_keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(x)
    for i in range(config.layers):
        block = TransformerEncoder(config.ff_width, config.heads, dropout=config.dropout, activation="gelu",
                                   normalize_first=True, name=f"block_{i}")
        x = block(x, padding_mask=padding_mask)
    x = tf_keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    logits = tf_keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    if config.crf:
        logits = CRF(name="crf")(logits)
    return tf_keras.Model({"input_ids": token_ids, "char_ids": char_ids}, logits, name="transformer_tagger")


def transformer_optimizer(config: TransformerConfig, total_steps: int) -> "tf_keras.optimizers.Optimizer":
    """AdamW (fused update, `models.runtime.fused_adam`) with linear warm-up and cosine decay,
    gradients clipped to global norm 1."""
    from models.runtime.fused_adam import FusedAdamW
    from models.runtime.training import WarmupCosine

    config = config.sized()
    schedule = WarmupCosine(config.learning_rate, config.min_learning_rate, config.warmup_steps, total_steps)
    optimizer = FusedAdamW(schedule, weight_decay=config.weight_decay, beta_2=0.99, global_clipnorm=1.0)
    # Decay the weight matrices only, as GPT training does: not biases, norms or embeddings.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "embedding"])
    return optimizer


def empty_cache(model: "tf_keras.Model", batch_size: "tf.Tensor", max_length: int) -> "tf.Tensor":
    """Zeros shaped [batch, layers, 2 (key, value), max_length, heads, head_dim]."""
    import tensorflow as tf

    config: TransformerConfig = model.lm_config
    head_dim = config.width // config.heads
    return tf.zeros([batch_size, config.layers, 2, max_length, config.heads, head_dim])


def call_with_cache(
    model: "tf_keras.Model", token_ids: "tf.Tensor", cache: "tf.Tensor", index: "tf.Tensor"
) -> tuple["tf.Tensor", "tf.Tensor"]:
    """Logits for `token_ids` at positions `index`.. given the keys/values cached before them;
    returns (logits, updated cache)."""
    import tensorflow as tf

    x = model.get_layer("embedding")(token_ids, start_index=index)
    updated = []
    for i in range(model.lm_config.layers):
        x, layer_cache = model.get_layer(f"block_{i}").call_cached(x, cache[:, i], index)
        updated.append(layer_cache)
    logits = model.get_layer("logits")(model.get_layer("final_norm")(x))
    return logits, tf.stack(updated, axis=1)


def transformer_decoder(model: "tf_keras.Model", batch_size: "tf.Tensor", max_length: "tf.Tensor") -> tuple:
    """(step, initial state) for `models.serving.decoding`: one token at a time against the key/value
    cache, so each new token attends to the cached prefix instead of recomputing it."""

    def step(token: tf.Tensor, cache: tf.Tensor, position: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits, cache = call_with_cache(model, token[:, None], cache, position)
        return logits[:, 0], cache

    return step, empty_cache(model, batch_size, max_length)
