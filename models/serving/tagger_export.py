"""A tagger's SavedModel: its words in, one tag per word out, in the serving contract of
docs/architecture.md.

  serving_default(examples)  serialized tf.Examples holding the token list -> per word `tag_ids`
                             (-1 pads), `tags` ("" pads) and each tag's `tag_probability`, at
                             the Transform's fixed length; what the Evaluator scores
  tag(text)                  raw sentences, split on whitespace -> `tokens`, `tags`, `tag_probability`
  tag_tokens(tokens)         token lists ([batch, n] strings, "" pads) -> the same
  transform_features(examples)  the Transform's output, for the Evaluator
A tagger with a CRF layer gives the best tag sequence (Viterbi) and each word's marginal
probability of its tag. The model computes over the batch's longest sentence only; the
Transform graph turns words into ids and characters, so a client needs no project code.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras

from models.layers.crf import crf_layer
from models.layers.tokens import PAD_ID
from models.serving.export import save_model, transform_features_signature

TAGGER_INPUTS = ("input_ids", "char_ids")


def export_tagger(model: tf_keras.Model, export_dir: str, transform_layer: tf_keras.layers.Layer,
                  token_spec: Mapping[str, tf.io.VarLenFeature], tag_spec: Mapping[str, tf.io.VarLenFeature],
                  classes: list[str]) -> None:
    """Saves `model` (ids and characters -> logits over 1 + len(classes), 0 the padding slot);
    `token_spec` parses the token list, `tag_spec` the gold tags (`transform_features` only)."""
    model.transform_layer = transform_layer  # tracked, so its assets and tables are saved
    spec = dict(token_spec)
    token_feature = next(iter(spec))
    tag_names = tf.constant([""] + list(classes))  # index 0: no tag (padding)
    crf = crf_layer(model)

    def tag_features(features: dict) -> dict[str, tf.Tensor]:
        ids = features["input_ids"]
        full_length = tf.shape(ids)[1]
        real = tf.not_equal(ids, PAD_ID)
        longest = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(real, tf.int32), axis=1)), 1)
        logits = model({name: features[name][:, :longest] for name in TAGGER_INPUTS}, training=False)
        real = real[:, :longest]
        if crf is None:
            probabilities = tf.nn.softmax(tf.cast(logits, tf.float32)[:, :, 1:])  # the padding slot is never a tag
            best = tf.argmax(probabilities, axis=-1)
        else:  # the best sequence, each word's tag with its marginal probability
            probabilities = crf.marginals(logits, real)
            best = tf.cast(crf.decode(logits, real) - 1, tf.int64)

        def to_full_length(values: tf.Tensor, pad: object) -> tf.Tensor:
            return tf.pad(values, [[0, 0], [0, full_length - longest]], constant_values=pad)

        return {
            "tag_ids": to_full_length(tf.where(real, best, tf.constant(-1, tf.int64)), -1),
            "tags": to_full_length(tf.where(real, tf.gather(tag_names, best + 1), ""), ""),
            "tag_probability": to_full_length(tf.where(real, tf.gather(probabilities, best, batch_dims=2), 0.0), 0.0),
        }

    def tag_lists(tokens: tf.RaggedTensor) -> dict[str, tf.Tensor]:
        outputs = tag_features(model.transform_layer({token_feature: tokens.to_sparse()}))
        length = tf.shape(outputs["tags"])[1]
        words = tokens[:, :length].to_tensor(default_value="")
        shown = tf.shape(words)[1]  # the longest sentence's words, at most the Transform's length
        return {"tokens": words, **{key: value[:, :shown] for key, value in outputs.items() if key != "tag_ids"}}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return tag_features(model.transform_layer(tf.io.parse_example(serialized, spec)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def tag(text: tf.Tensor) -> dict[str, tf.Tensor]:
        return tag_lists(tf.strings.split(text))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")])
    def tag_tokens(tokens: tf.Tensor) -> dict[str, tf.Tensor]:
        return tag_lists(tf.RaggedTensor.from_tensor(tokens, padding=""))

    signatures = {
        "serving_default": serve_examples.get_concrete_function(),
        "tag": tag.get_concrete_function(),
        "tag_tokens": tag_tokens.get_concrete_function(),
        "transform_features": transform_features_signature(model, {**spec, **tag_spec}),
    }
    save_model(model, export_dir, signatures)
