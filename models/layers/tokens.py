"""The id layout every family shares: reserved ids first, then the TFT vocabulary, then OOV.

id 0 pads (and is masked out of every loss and metric), 1 starts a sequence, 2 ends it.
Vocabulary entry i gets id i + NUM_RESERVED; the single out-of-vocabulary bucket comes last.

And the character and word tokenizer, in-graph: the Transform tokenizes with it, and the data
checks tokenize with it too, so both see the same tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

# TFT leaves tokens holding a line break out of a vocabulary file (one token per line), so the
# character tokenizer writes a newline as this symbol and decoding turns it back.
NEWLINE_SYMBOL = "\u2424"

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
NUM_RESERVED = 3

# How a tagger family may read a word's characters (`models.layers.characters`; its `characters` setting)
CHARACTER_VIEWS = ("cnn", "lstm")


def check_character_view(kind: str, section: str) -> None:
    """Refuses a `characters` setting that names no character view (`section`: the config section)."""
    if kind not in CHARACTER_VIEWS:
        raise ValueError(f"{section}.characters must be one of {', '.join(CHARACTER_VIEWS)}, got {kind!r}")


def model_vocab_size(tft_vocab_size: int) -> int:
    """Size of the model's embedding/softmax for a TFT vocabulary of `tft_vocab_size` tokens."""
    return NUM_RESERVED + tft_vocab_size + 1  # + the OOV bucket


# A word is a run of letters/digits; every other non-space character is a token of its own.
_WORD_DELIMITERS = r"\s+|[^\pL\pN\s]"
_KEPT_DELIMITERS = r"[^\pL\pN\s]"


def tokenize(text: "tf.Tensor", tokenizer: str, lowercase: bool) -> "tf.RaggedTensor":
    """[batch] strings -> [batch, (tokens)] strings, by characters or by words."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    if tokenizer == "char":
        text = tf.strings.regex_replace(text, "\r\n?|\n", NEWLINE_SYMBOL)
        return tf.strings.unicode_split(text, "UTF-8", errors="replace")
    if tokenizer == "word":
        return tf_text.regex_split(text, _WORD_DELIMITERS, _KEPT_DELIMITERS)
    raise ValueError(f"unknown tokenizer {tokenizer!r} (use 'char' or 'word')")


def padding_mask_layer() -> "tf.keras.layers.Layer":
    """A layer mapping token ids to `ids != PAD_ID`. The pad mask is passed explicitly, not left
    to Keras' implicit mask propagation, which a reloaded SavedModel did not reproduce (its
    outputs then depended on the padding); a Lambda would capture modules and break the model's
    serialisation."""
    import tensorflow as tf
    import tf_keras

    class PaddingMask(tf_keras.layers.Layer):
        def call(self, token_ids: tf.Tensor) -> tf.Tensor:
            return tf.not_equal(token_ids, PAD_ID)

    return PaddingMask(name="padding_mask")
