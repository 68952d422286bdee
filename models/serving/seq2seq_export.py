"""SavedModel export of an encoder-decoder, in the serving contract of docs/architecture.md.

`translate`: `source` strings [batch], `beam_width` and `max_length` (int32 scalars) ->
`translation` strings [batch] (detokenized, ordinary text), `score` (its length-normalised
log-probability), and every beam best first: `alternatives` [batch, beam_width] and
`alternative_scores`. The SentencePiece model travels inside the SavedModel with the
tensorflow-text op that reads it, the same op that tokenized the training data, so a client
needs no project code: it imports `tensorflow_text` to register the op, as TensorFlow Serving
links it in.

The pipeline's export (`export_seq2seq`) adds what every family serves: `serving_default`
(serialized tf.Examples holding the source column(s) -> `translation`, `score`, decoded with
the configured beam), `transform_features`, `evaluate`, which the Evaluator calls (the
teacher-forced log-likelihood of the target and, for a hash sample of the examples, the
decoded output beside its source and reference texts, for BLEU and chrF in TFMA), and
`attention` (`source` strings -> the decoded `translation`, the `source_pieces` and
`output_pieces` as strings, and `attention` [batch, output pieces, source pieces]: the RNN's
attention, the Transformer's last-layer cross-attention averaged over heads), which the
run's report draws.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

import tensorflow as tf
import tf_keras

from models.serving.decoding import decode_seq2seq, decode_seq2seq_beams, decode_seq2seq_in_chunks
from models.layers.denoising import Noise, corrupt_batch, text_seeds
from models.serving.export import save_model, transform_features_signature
from models.layers.lm_loss import token_log_likelihoods
from models.layers.seq2seq import attention_of_output, decoder_inputs, with_end, without_trailing_padding
from models.layers.subword import SubwordTokenizer, joined_source
from models.layers.tokens import PAD_ID

_EXAMPLES = tf.TensorSpec([None], tf.string, name="examples")
_HASH_BUCKETS = 10_000
DECODE_CHUNK = 32  # sources `evaluate` beam-searches together (sorted by length)


@dataclasses.dataclass(frozen=True)
class Seq2SeqServing:
    """What the pipeline's export needs besides the model and its tokenizer."""

    source_columns: tuple[str, ...]  # raw features joined (with the separator piece) into the source
    target_column: Optional[str]  # the reference; None for denoising (the text is its own reference)
    max_length: int  # longest output decoded by serving_default and evaluate (the transform's sequence length)
    beam_width: int  # serving_default's and evaluate's beam
    decode_share: float  # share of eval examples `evaluate` decodes (chosen by a hash of the source text)
    noise: Optional[Noise] = None  # denoising: how `evaluate` corrupts each text (seeded by the text)


def source_ids_of(tokenizer: SubwordTokenizer, text: tf.Tensor) -> tf.Tensor:
    """Strings [batch] -> source ids [batch, longest + 1]: tokens, EOS, then padding."""
    return with_end(tokenizer.tokenize(text)).to_tensor()


def translate_signature(model: tf_keras.Model, tokenizer: SubwordTokenizer) -> tf.types.experimental.ConcreteFunction:
    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="source"),
        tf.TensorSpec([], tf.int32, name="beam_width"),
        tf.TensorSpec([], tf.int32, name="max_length"),
    ])
    def translate(source: tf.Tensor, beam_width: tf.Tensor, max_length: tf.Tensor) -> dict[str, tf.Tensor]:
        beams, scores = decode_seq2seq_beams(model, source_ids_of(tokenizer, source), tf.maximum(max_length, 1),
                                             tf.maximum(beam_width, 1))
        texts = tf.reshape(tokenizer.detokenize(tf.reshape(beams, [-1, tf.shape(beams)[2]])), tf.shape(beams)[:2])
        return {"translation": texts[:, 0], "score": scores[:, 0], "alternatives": texts, "alternative_scores": scores}

    return translate.get_concrete_function()


def attention_signature(model: tf_keras.Model, tokenizer: SubwordTokenizer, max_length: int,
                        beam_width: int) -> tf.types.experimental.ConcreteFunction:
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="source")])
    def attention(source: tf.Tensor) -> dict[str, tf.Tensor]:
        source_ids = source_ids_of(tokenizer, source)
        ids, score = decode_seq2seq(model, source_ids, tf.constant(max_length), tf.constant(beam_width))
        return {
            "translation": tokenizer.detokenize(ids),
            "score": score,
            "source_pieces": tokenizer.op.id_to_string(tf.cast(source_ids, tf.int32)),
            "output_pieces": tokenizer.op.id_to_string(tf.cast(ids, tf.int32)),
            "attention": tf.cast(attention_of_output(model, source_ids, ids), tf.float32),
        }

    return attention.get_concrete_function()


def export_translator(model: tf_keras.Model, tokenizer: SubwordTokenizer, export_dir: str) -> None:
    """Writes `model` (float32, outside any distribution strategy) as a SavedModel in
    `export_dir` with the `translate` signature."""
    model.subword_tokenizer = tokenizer.op  # tracked, so the SentencePiece model is saved with it
    save_model(model, export_dir, {"translate": translate_signature(model, tokenizer)})


def _flat_text(feature: tf.Tensor) -> tf.Tensor:
    """A parsed one-string feature ([batch] or [batch, 1]) as [batch] strings."""
    return tf.reshape(feature, [-1])


def _decoded_where(model: tf_keras.Model, tokenizer: SubwordTokenizer, source_ids: tf.Tensor, selected: tf.Tensor,
                   serving: Seq2SeqServing) -> tf.Tensor:
    """The decoded text of the selected rows, "" elsewhere ([batch] strings)."""
    chosen = tf.boolean_mask(source_ids, selected)

    def decode() -> tf.Tensor:
        ids, _ = decode_seq2seq_in_chunks(model, chosen, tf.constant(serving.max_length),
                                          tf.constant(serving.beam_width), DECODE_CHUNK)
        return tokenizer.detokenize(ids)

    texts = tf.cond(tf.shape(chosen)[0] > 0, decode, lambda: tf.zeros([0], tf.string))
    index = tf.cumsum(tf.cast(selected, tf.int32), exclusive=True)
    padded = tf.concat([texts, [""]], axis=0)
    return tf.gather(padded, tf.where(selected, index, tf.shape(texts)[0]))


def export_seq2seq(
    model: tf_keras.Model,
    export_dir: str,
    transform_layer: tf_keras.layers.Layer,
    raw_feature_spec: Mapping[str, tf.io.FixedLenFeature],
    tokenizer: SubwordTokenizer,
    serving: Seq2SeqServing,
) -> None:
    """Saves `model` with `serving_default`, `translate`, `evaluate`, `attention` and `transform_features`."""
    model.transform_layer = transform_layer  # tracked, so its assets and resources are saved
    model.subword_tokenizer = tokenizer.op
    spec = dict(raw_feature_spec)
    source_spec = {column: spec[column] for column in serving.source_columns}

    def source_text(features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return joined_source([_flat_text(features[column]) for column in serving.source_columns])

    @tf.function(input_signature=[_EXAMPLES])
    def serve(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        source_ids = model.transform_layer(tf.io.parse_example(serialized, source_spec))["source_ids"]
        # As tensors: a Python max_length would give the key/value cache a static length that
        # the decoding loop's shape invariants do not keep.
        ids, score = decode_seq2seq(model, source_ids, tf.constant(serving.max_length), tf.constant(serving.beam_width))
        return {"translation": tokenizer.detokenize(ids), "score": score}

    @tf.function(input_signature=[_EXAMPLES])
    def evaluate(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(serialized, spec)
        features = model.transform_layer(raw)
        source_ids, target_ids = features["source_ids"], features["target_ids"]
        source = source_text(raw)
        if serving.noise is not None:  # the same corruption of a text in every evaluation
            source_ids = corrupt_batch(source_ids, text_seeds(source), serving.noise)
            shown_source = tokenizer.detokenize(source_ids)
            reference = source
        else:
            shown_source = source
            reference = _flat_text(raw[serving.target_column])
        # Only the padding after the batch's longest source and target is cut: the same sums.
        source_ids, target_ids = without_trailing_padding(source_ids), without_trailing_padding(target_ids)
        logits = model((source_ids, decoder_inputs(target_ids)), training=False)
        real = tf.not_equal(target_ids, PAD_ID)
        correct = real & tf.equal(tf.argmax(logits, axis=-1), target_ids)
        selected = tf.strings.to_hash_bucket_fast(source, _HASH_BUCKETS) < int(round(serving.decode_share * _HASH_BUCKETS))
        return {
            "log_likelihood": tf.reduce_sum(token_log_likelihoods(target_ids, logits), axis=1),
            "token_count": tf.reduce_sum(tf.cast(real, tf.int64), axis=1),
            "correct_tokens": tf.reduce_sum(tf.cast(correct, tf.int64), axis=1),
            "decoded": tf.cast(selected, tf.int64),
            "output": _decoded_where(model, tokenizer, source_ids, selected, serving),
            "source": shown_source,
            "reference": reference,
        }

    signatures = {
        "serving_default": serve.get_concrete_function(),
        "translate": translate_signature(model, tokenizer),
        "evaluate": evaluate.get_concrete_function(),
        "attention": attention_signature(model, tokenizer, serving.max_length, serving.beam_width),
        "transform_features": transform_features_signature(model, spec),
    }
    save_model(model, export_dir, signatures)
