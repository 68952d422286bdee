"""Token ids from a vocabulary taken whole instead of counted: a fine-tuning run tokenizes with the
pushed model's vocabulary file (`training.init_from`), so that each id means what it meant."""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_transform as tft


def fixed_vocabulary_ids(tokens: tf.Tensor, path: str, name: str) -> tf.Tensor:
    """The ids of `tokens` in a vocabulary file (one token per line, as TFT writes them), an
    unknown token the one OOV id after it, as TFT's vocabulary gives. The file becomes an asset
    of the Transform graph, found under `name` as a vocabulary TFT counted would be."""
    initializer = tf.lookup.TextFileInitializer(path, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                                tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
    tft.annotate_asset(name, os.path.basename(path))
    return tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets=1).lookup(tokens)
