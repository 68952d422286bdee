"""Transform module code: in-graph tokenization, a TFT vocabulary, and language-model tensors.

Everything here runs inside the TensorFlow graph that Transform saves, so the serving model
tokenizes raw text exactly as training did. Output features (int64 unless noted):
  input_ids  [sequence_length]  BOS followed by the text's token ids, right-padded with 0
  target_ids [sequence_length]  the text's token ids followed by EOS (the next-token targets)
  length     []                 number of real (non-pad) target tokens
  length_bucket [] string       the text's length in tokens before truncation, as a bucket
                                name ("64-255 tokens"); the Evaluator slices metrics by it
  unigram_log_likelihood [] float  the log-likelihood of target_ids under the unigram model of
                                the train split's target tokens (add-one smoothed): the trivial
                                baseline a language model or VAE must beat (see `unigram_metrics`)
and, when a label column is configured (classifier mode),
  label_id   []                 the label's index in the TFT vocabulary "labels".

A seq2seq or denoising run (a `subword_model_path` in the config, see
`components.training.subword_transform`) tokenizes with its SentencePiece vocabulary instead and gives
  source_ids [sequence_length]  the source's subword ids (its columns joined with the separator
                                piece), then EOS, right-padded with 0
  target_ids [sequence_length]  the target's ids (denoise: the text itself), then EOS
  length, length_bucket         as above, of the target and of the source
The decoder's inputs (BOS + target) and, for denoising, the corruption of the source are made
in the Trainer's input pipeline (fresh noise every epoch) and in the exported model.

A run that fine-tunes a pushed model (a `vocabulary_file` in the config) takes that model's
vocabulary whole instead of counting one from the train split.

A tagger's run (a `tag_column` in the config) reads token lists and gives per-word features
instead (`components.training.tagger_transform`).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components.training.given_vocabulary import fixed_vocabulary_ids
from components.training.tagger_transform import tagger_outputs
from models.layers.subword import SubwordTokenizer, joined_source
from models.layers.tokens import BOS_ID, EOS_ID, NUM_RESERVED, tokenize

VOCAB_NAME = "tokens"
LABEL_VOCAB_NAME = "labels"
LABEL_FEATURE = "label_id"  # the class id a classifier trains on and the Evaluator reads
LENGTH_BUCKET_FEATURE = "length_bucket"
UNIGRAM_FEATURE = "unigram_log_likelihood"
def language_model_ids(ids: tf.RaggedTensor, sequence_length: int) -> dict[str, tf.Tensor]:
    """Token ids [batch, (n)] -> fixed-length LM inputs, targets and target counts."""
    batch = tf.shape(ids.row_splits, out_type=tf.int64)[0] - 1
    bos = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(BOS_ID, tf.int64)))
    eos = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(EOS_ID, tf.int64)))
    shape = [None, sequence_length]
    input_ids = tf.concat([bos, ids], axis=1).to_tensor(default_value=0, shape=shape)
    target_ids = tf.concat([ids, eos], axis=1).to_tensor(default_value=0, shape=shape)
    length = tf.reduce_sum(tf.cast(tf.not_equal(target_ids, 0), tf.int64), axis=1)
    return {"input_ids": input_ids, "target_ids": target_ids, "length": length}


def unigram_log_likelihood(target_ids: tf.Tensor, id_slots: int) -> tf.Tensor:
    """[batch, length] target ids (0 pads) -> [batch] log-likelihood under the train split's
    unigram model. TFT analyzes the train split only, so the counts are the train split's.

    Add-one smoothing over the ids seen in training plus one slot for unseen ones: with N train
    tokens and K - 1 distinct ids, p(id) = (count + 1) / (N + K), which sums to one over the K
    slots. An eval token outside the train vocabulary maps to the OOV id, which is what gets
    the unseen slot's probability when training had no OOV token."""
    real = tf.not_equal(target_ids, 0)
    batch_counts = tf.math.bincount(
        tf.cast(tf.boolean_mask(target_ids, real), tf.int32), minlength=id_slots, maxlength=id_slots, dtype=tf.float32
    )
    counts = tft.sum(batch_counts[None, :], reduce_instance_dims=False)  # summed over the whole split
    slots = tf.reduce_sum(tf.cast(counts > 0, tf.float32)) + 1.0
    log_p = tf.math.log(counts + 1.0) - tf.math.log(tf.reduce_sum(counts) + slots)
    per_token = tf.gather(tf.reshape(log_p, [id_slots]), tf.minimum(target_ids, id_slots - 1))
    return tf.reduce_sum(tf.where(real, per_token, 0.0), axis=1)


def _dense_text(feature: Any) -> tf.Tensor:
    """The text column as [batch] strings, whether the schema made it dense or sparse."""
    if isinstance(feature, tf.SparseTensor):
        feature = tf.sparse.to_dense(feature, default_value="")
    if feature.shape.rank == 2:
        feature = feature[:, 0] if feature.shape[1] == 1 else tf.strings.reduce_join(feature, axis=1, separator=" ")
    return feature


def label_ids(label: tf.Tensor) -> tf.Tensor:
    """Label strings -> class ids 0..C-1 through the "labels" vocabulary (most frequent first).
    No OOV bucket: a label the training split never showed cannot be a class of the model."""
    return tft.compute_and_apply_vocabulary(label, vocab_filename=LABEL_VOCAB_NAME, default_value=-1)


def bucket_names(boundaries: list[int]) -> list[str]:
    """Names of the buckets the boundaries make: [64, 256] -> 0-63, 64-255, 256+ tokens."""
    edges = [0, *boundaries]
    return [f"{lo}-{hi - 1} tokens" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]}+ tokens"]


def length_buckets(token_counts: tf.Tensor, boundaries: list[int]) -> tf.Tensor:
    """[batch] token counts -> [batch] bucket names."""
    index = tf.searchsorted(tf.constant(boundaries, tf.int64), tf.cast(token_counts, tf.int64), side="right")
    return tf.gather(tf.constant(bucket_names(boundaries)), index)


def ids_with_end(ids: tf.RaggedTensor, sequence_length: int) -> tf.Tensor:
    """Ragged ids -> [batch, sequence_length]: at most sequence_length - 1 ids, EOS, then PAD."""
    ids = ids[:, : sequence_length - 1]
    eos = tf.fill([ids.nrows(), 1], tf.constant(EOS_ID, tf.int64))
    return tf.concat([ids, eos], axis=1).to_tensor(default_value=0, shape=[None, sequence_length])


def source_text(inputs: dict[str, Any], columns: list[str]) -> tf.Tensor:
    """The source column(s) as [batch] strings, several joined with the separator piece."""
    return joined_source([_dense_text(inputs[column]) for column in columns])


def pair_outputs(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, tf.Tensor]:
    """Source and target subword ids of a seq2seq pair (denoise: the text is both)."""
    with tf.io.gfile.GFile(custom_config["subword_model_path"], "rb") as f:
        tokenizer = SubwordTokenizer(f.read())
    sequence_length = custom_config["sequence_length"]
    source = tokenizer.tokenize(source_text(inputs, custom_config["text_columns"]))
    target_column = custom_config.get("target_column")
    target = tokenizer.tokenize(_dense_text(inputs[target_column])) if target_column else source
    target_ids = ids_with_end(target, sequence_length)
    return {
        "source_ids": ids_with_end(source, sequence_length),
        "target_ids": target_ids,
        "length": tf.reduce_sum(tf.cast(tf.not_equal(target_ids, 0), tf.int64), axis=1),
        LENGTH_BUCKET_FEATURE: length_buckets(source.row_lengths(), custom_config.get("length_buckets") or []),
    }


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, tf.Tensor]:
    """TFT entry point; `custom_config` holds text_column, label_column (or None), tokenizer,
    lowercase, sequence_length, max_vocab_size and length_buckets from the project config
    (and, for subword tokens, text_columns, target_column and subword_model_path; for a tagger,
    tag_column and max_word_chars)."""
    if custom_config.get("tokenizer") == "subword":
        return pair_outputs(inputs, custom_config)
    if custom_config.get("tag_column"):
        boundaries = custom_config.get("length_buckets") or []
        return tagger_outputs(inputs, {**custom_config, "vocab_name": VOCAB_NAME, "tag_vocab_name": LABEL_VOCAB_NAME},
                              lambda counts: length_buckets(counts, boundaries))
    text = _dense_text(inputs[custom_config["text_column"]])
    tokens = tokenize(text, custom_config["tokenizer"], custom_config["lowercase"])
    if custom_config.get("vocabulary_file"):  # fine-tuning: the pre-trained model's ids
        vocab_ids = fixed_vocabulary_ids(tokens.flat_values, custom_config["vocabulary_file"], VOCAB_NAME)
    else:
        vocab_ids = tft.compute_and_apply_vocabulary(
            tokens.flat_values,
            top_k=custom_config["max_vocab_size"],
            num_oov_buckets=1,
            vocab_filename=VOCAB_NAME,
        )
    ids = tokens.with_flat_values(vocab_ids + NUM_RESERVED)
    outputs = language_model_ids(ids, custom_config["sequence_length"])
    id_slots = NUM_RESERVED + custom_config["max_vocab_size"] + 1  # every id the vocabulary can give
    outputs[UNIGRAM_FEATURE] = unigram_log_likelihood(outputs["target_ids"], id_slots)
    outputs[LENGTH_BUCKET_FEATURE] = length_buckets(tokens.row_lengths(), custom_config.get("length_buckets") or [])
    if custom_config.get("label_column"):
        outputs[LABEL_FEATURE] = label_ids(_dense_text(inputs[custom_config["label_column"]]))
    return outputs
