"""A word's characters as a vector: what a tagger knows of a word its vocabulary never showed.

Each word's character ids (`[batch, words, chars]`, 0 pads) are embedded, then read by one of:

  cnn   convolved (width 3, so the filters see prefixes, suffixes, capitals and digits) and
        max-pooled over the word's real characters (Ma and Hovy's char CNN for tagging)
  lstm  a bidirectional LSTM over the real characters, its two final states joined (Lample et
        al.'s and Plank et al.'s char BiLSTM)

Both give 64 numbers per word; padded words come out as zeros. The tagger families default to
`cnn`: on UD English EWT both reached the same validation accuracy, and the CNN trains at about
1.7 times the BiLSTM's speed (README, "Tagging: parts of speech on UD English EWT").
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from models.layers.tokens import CHARACTER_VIEWS, model_vocab_size

MAX_CHARACTERS = 1000  # distinct characters a tagger's Transform gives ids; the rest share one OOV id
CHARACTER_IDS = model_vocab_size(MAX_CHARACTERS)  # the character table's rows (reserved ids, OOV included)


class CharacterCNN(tf_keras.layers.Layer):
    """[batch, words, chars] character ids -> [batch, words, filters] word vectors."""

    def __init__(self, embedding_dim: int = 32, filters: int = 64, width: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim, self.filters, self.width = embedding_dim, filters, width
        self.embedding = tf_keras.layers.Embedding(CHARACTER_IDS, embedding_dim, name="char_embedding")
        self.conv = tf_keras.layers.Conv1D(filters, width, padding="same", activation="relu", name="char_conv")

    def call(self, char_ids: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(char_ids)
        flat = tf.reshape(char_ids, [-1, shape[2]])  # one row per word
        embedded = self.embedding(flat)
        real = tf.cast(tf.not_equal(flat, 0), embedded.dtype)[:, :, None]
        # padded characters are zeros, as the convolution's own padding is, so a word's vector does
        # not depend on how far its characters are padded; ReLU outputs are >= 0, so zeroing them
        # after the convolution too leaves the max over the real characters
        features = self.conv(embedded * real)
        pooled = tf.reduce_max(features * real, axis=1)
        return tf.reshape(pooled, [shape[0], shape[1], self.filters])

    def get_config(self) -> dict:
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "filters": self.filters,
                "width": self.width}


class CharacterLSTM(tf_keras.layers.Layer):
    """[batch, words, chars] character ids -> [batch, words, 2 x units] word vectors: the last
    states of an LSTM reading the word's real characters forwards and of one reading them backwards."""

    def __init__(self, embedding_dim: int = 32, units: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim, self.units = embedding_dim, units
        self.embedding = tf_keras.layers.Embedding(CHARACTER_IDS, embedding_dim, name="char_embedding")
        self.lstm = tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(units), name="char_bilstm")

    def call(self, char_ids: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(char_ids)
        flat = tf.reshape(char_ids, [-1, shape[2]])  # one row per word
        real = tf.not_equal(flat, 0)
        # a padded word has no character: its vector is zeros, not the LSTM's state after nothing
        vectors = self.lstm(self.embedding(flat), mask=real) * tf.cast(tf.reduce_any(real, axis=1), self.compute_dtype)[:, None]
        return tf.reshape(vectors, [shape[0], shape[1], 2 * self.units])

    def get_config(self) -> dict:
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "units": self.units}


ENCODERS = {"cnn": CharacterCNN, "lstm": CharacterLSTM}
assert tuple(ENCODERS) == CHARACTER_VIEWS


def character_encoder(kind: str) -> tf_keras.layers.Layer:
    """The tagger's character view of each word, by the family's `characters` setting."""
    return ENCODERS[kind](name="characters")
