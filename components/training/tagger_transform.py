"""The Transform's features for a tagger: word ids, each word's characters, tag ids, and the
most-frequent-tag baseline, all from token lists that are never re-tokenized.

Output features (int64, fixed length `sequence_length` = L words; longer sentences are cut):
  input_ids  [L]     each word's id (the shared layout of `models.layers.tokens`), 0 pads
  char_ids   [L, C]  each word's characters (C = `max_word_chars`: a longer word keeps its first
                     and last C/2, where prefixes and suffixes tell its part of speech), 0 pads
  tag_ids    [L]     each word's tag, an index into the "labels" vocabulary (most frequent tag
                     first), -1 pads
  tags       [L] string  each word's tag as written, "" pads (the Evaluator names tags by it)
  baseline_tag_ids [L]  the tag the train split gives the word most often (ties: the more
                     frequent tag); a word train never showed: the most frequent tag, id 0
  seen_in_train [L]  1 where the word is in the train split's vocabulary, 0 where it is not, -1 pads
  length     []      the sentence's words (at most L)
  length_bucket [] string  the sentence's length in words, as a bucket name
TFT analyzes the train split only, so the vocabularies and the baseline are the train split's;
a fine-tuning run's word ids come from the pushed model's vocabulary instead (`vocabulary_file`),
while the baseline and `seen_in_train` still speak of the train split's words.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components.training.given_vocabulary import fixed_vocabulary_ids
from models.layers.characters import MAX_CHARACTERS
from models.layers.tokens import NUM_RESERVED

TAG_FEATURE = "tag_ids"
TAG_NAME_FEATURE = "tags"
CHAR_FEATURE = "char_ids"
BASELINE_TAG_FEATURE = "baseline_tag_ids"
SEEN_FEATURE = "seen_in_train"
CHAR_VOCAB_NAME = "characters"
_PAIR_SEPARATOR = "\x1f"  # between a word and its tag in the (word, tag) counts


def token_lists(feature: Any) -> tf.RaggedTensor:
    """A list feature as [batch, (values)] strings: varlen (sparse), or dense where every example has as many."""
    if isinstance(feature, tf.SparseTensor):
        return tf.RaggedTensor.from_sparse(feature)
    if isinstance(feature, tf.RaggedTensor):
        return feature
    return tf.RaggedTensor.from_tensor(tf.reshape(feature, [tf.shape(feature)[0], -1]))


def word_characters(words: tf.RaggedTensor, max_chars: int) -> tf.RaggedTensor:
    """[batch, (words)] -> [batch, (words), (chars)]: at most `max_chars` per word, a longer word's
    first and last half of them."""
    chars = tf.strings.unicode_split(words, "UTF-8", errors="replace")
    head = chars[:, :, : max_chars // 2]
    tail = chars[:, :, max_chars // 2:][:, :, -(max_chars - max_chars // 2):]
    return tf.concat([head, tail], axis=2)


def most_frequent_tags(words: tf.Tensor, tags: tf.Tensor, word_vocabulary: Any, tag_vocabulary: Any,
                       word_slots: int) -> tf.Tensor:
    """[word_slots] the tag id the train split gives each word id most often; 0 (the most
    frequent tag) for an id no train word has. From TFT's counts of (word, tag) pairs."""
    pairs, counts = tft.count_per_key(tf.strings.join([words, tags], separator=_PAIR_SEPARATOR))
    parts = tf.strings.split(pairs, sep=_PAIR_SEPARATOR, maxsplit=1).to_tensor(shape=[None, 2])
    pair_words = tft.apply_vocabulary(parts[:, 0], word_vocabulary, default_value=-1)
    pair_tags = tft.apply_vocabulary(parts[:, 1], tag_vocabulary, default_value=-1)
    known = (pair_words >= 0) & (pair_tags >= 0)
    pair_words, pair_tags = tf.boolean_mask(pair_words, known), tf.boolean_mask(pair_tags, known)
    counts = tf.cast(tf.boolean_mask(counts, known), tf.int64)
    best_count = tf.math.unsorted_segment_max(counts, pair_words, word_slots)
    is_best = tf.equal(counts, tf.gather(best_count, pair_words))
    never = tf.int64.max
    best = tf.math.unsorted_segment_min(tf.where(is_best, pair_tags, never), pair_words, word_slots)
    return tf.where(best == never, tf.constant(0, tf.int64), best)


def tagger_outputs(inputs: dict[str, Any], custom_config: dict[str, Any], length_buckets: Any) -> dict[str, tf.Tensor]:
    """The tagger's features (above) from the text column's token lists and the tag column's tag lists."""
    length, max_chars = custom_config["sequence_length"], custom_config["max_word_chars"]
    words = token_lists(inputs[custom_config["text_column"]])
    tags = token_lists(inputs[custom_config["tag_column"]])
    keys = tf.strings.lower(words, encoding="utf-8") if custom_config["lowercase"] else words
    given = custom_config.get("vocabulary_file")  # fine-tuning: the pushed model's words give the ids
    word_vocabulary = tft.vocabulary(keys.flat_values, top_k=custom_config["max_vocab_size"],
                                     vocab_filename=f"{custom_config['vocab_name']}_of_train" if given
                                     else custom_config["vocab_name"])
    tag_vocabulary = tft.vocabulary(tags.flat_values, vocab_filename=custom_config["tag_vocab_name"])
    known_ids = tft.apply_vocabulary(keys.flat_values, word_vocabulary, default_value=-1)
    vocab_ids = (fixed_vocabulary_ids(keys.flat_values, given, custom_config["vocab_name"]) if given
                 else tft.apply_vocabulary(keys.flat_values, word_vocabulary, num_oov_buckets=1))
    tag_ids = tft.apply_vocabulary(tags.flat_values, tag_vocabulary, default_value=-1)
    best_tags = most_frequent_tags(keys.flat_values, tags.flat_values, word_vocabulary, tag_vocabulary,
                                   custom_config["max_vocab_size"] + 1)
    baseline = tf.gather(best_tags, tf.maximum(known_ids, 0))
    baseline = tf.where(known_ids >= 0, baseline, tf.constant(0, tf.int64))

    chars = word_characters(words, max_chars)
    char_ids = tft.compute_and_apply_vocabulary(chars.flat_values, top_k=MAX_CHARACTERS,
                                                num_oov_buckets=1, vocab_filename=CHAR_VOCAB_NAME) + NUM_RESERVED

    def per_word(flat: tf.Tensor, pad: int) -> tf.Tensor:
        return words.with_flat_values(flat).to_tensor(default_value=pad, shape=[None, length])

    return {
        "input_ids": per_word(vocab_ids + NUM_RESERVED, 0),
        CHAR_FEATURE: chars.with_flat_values(char_ids).to_tensor(
            default_value=0, shape=[None, length, max_chars]),
        TAG_FEATURE: per_word(tag_ids, -1),
        TAG_NAME_FEATURE: tags.to_tensor(default_value="", shape=[None, length]),
        BASELINE_TAG_FEATURE: per_word(baseline, -1),
        SEEN_FEATURE: per_word(tf.cast(known_ids >= 0, tf.int64), -1),
        "length": tf.minimum(words.row_lengths(), length),
        "length_bucket": length_buckets(words.row_lengths()),
    }
