"""SavedModel export in the serving contract of docs/architecture.md.

A client needs no project code: `serving_default` takes serialized tf.Examples holding the
raw text and returns each example's log-likelihood (nats, summed over its tokens), token
count and count of tokens predicted right (argmax, teacher-forced); `transform_features` returns the in-graph transform's output for the same input;
`generate` takes prompts and returns continuations, decoded with TensorFlow ops only (sampled
with temperature, top-k and top-p, greedy at temperature 0, or beam search when `beam_width` > 1).
A classifier's `serving_default` returns class probabilities instead (`export_classifier`).
The transform arrives as a Keras layer (raw feature dict -> transformed dict), so this module
knows nothing of how it was made.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional, Sequence

import tensorflow as tf
import tf_keras

from models.serving.decoding import beam_search, sample
from models.layers.lm_loss import token_log_likelihoods
from models.layers.tokens import EOS_ID, NEWLINE_SYMBOL, NUM_RESERVED, PAD_ID


@dataclasses.dataclass(frozen=True)
class TextCodec:
    """What `generate` needs to go from text to ids and back."""

    text_feature: str  # the raw feature the transform reads the text from
    vocabulary_file: str  # the TFT vocabulary: vocabulary id i is line i
    token_separator: str  # "" for characters, " " for words
    decoder: Optional[Callable[..., tuple]] = None  # an LM family's (model, batch, max_length) -> (step, state)
    max_positions: Optional[int] = None  # the longest sequence the model covers, if limited
    sequence_length: Optional[int] = None  # the length the transform pads every text to


class Detokenizer(tf.Module):
    """Token ids -> text, through a table built from the vocabulary file (saved as an asset)."""

    def __init__(self, codec: TextCodec):
        super().__init__()
        initializer = tf.lookup.TextFileInitializer(
            codec.vocabulary_file, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
            tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
        )
        self.table = tf.lookup.StaticHashTable(initializer, default_value="\ufffd")  # OOV shows as U+FFFD
        self.separator = codec.token_separator

    def __call__(self, ids: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
        tokens = self.table.lookup(tf.cast(ids, tf.int64) - NUM_RESERVED)
        ragged = tf.ragged.boolean_mask(tokens, keep)
        text = tf.strings.reduce_join(ragged, axis=1, separator=self.separator)
        return tf.strings.regex_replace(text, NEWLINE_SYMBOL, "\n")


def export_language_model(
    model: tf_keras.Model,
    export_dir: str,
    transform_layer: tf_keras.layers.Layer,
    raw_feature_spec: Mapping[str, tf.io.FixedLenFeature],
    codec: TextCodec,
) -> None:
    """Saves `model` with the `serving_default`, `transform_features` and `generate` signatures."""
    model.transform_layer = transform_layer  # tracked, so its assets and tables are saved
    model.detokenizer = Detokenizer(codec)
    spec = dict(raw_feature_spec)
    text_shape = list(spec[codec.text_feature].shape)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_log_likelihood(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = model.transform_layer(tf.io.parse_example(serialized, spec))
        logits = model(features["input_ids"], training=False)
        per_token = token_log_likelihoods(features["target_ids"], logits)
        real = tf.not_equal(features["target_ids"], PAD_ID)
        correct = real & tf.equal(tf.argmax(logits, axis=-1), features["target_ids"])
        return {
            "log_likelihood": tf.reduce_sum(per_token, axis=1),
            "token_count": tf.reduce_sum(tf.cast(real, tf.int64), axis=1),
            "correct_tokens": tf.reduce_sum(tf.cast(correct, tf.int64), axis=1),
        }

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="prompt"),
            tf.TensorSpec([], tf.int32, name="max_new_tokens"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.float32, name="top_p"),
            tf.TensorSpec([], tf.int32, name="beam_width"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ]
    )
    def generate(prompt, max_new_tokens, temperature, top_k, top_p, beam_width, seed) -> dict[str, tf.Tensor]:
        raw = {codec.text_feature: tf.reshape(prompt, [-1] + text_shape)}
        target_ids = model.transform_layer(raw)["target_ids"]  # the prompt's tokens, then EOS
        prompt_ids = tf.where(target_ids == EOS_ID, tf.constant(PAD_ID, tf.int64), target_ids)
        prompt_lengths = tf.reduce_sum(tf.cast(prompt_ids != PAD_ID, tf.int32), axis=1)
        prompt_ids = prompt_ids[:, : tf.reduce_max(prompt_lengths)]
        room = max_new_tokens
        if codec.max_positions:  # the model sees BOS + prompt + continuation
            room = tf.minimum(room, codec.max_positions - 1 - tf.shape(prompt_ids)[1])
        room = tf.maximum(room, 0)
        batch, length = tf.shape(prompt_ids)[0], tf.shape(prompt_ids)[1] + room + 1

        def sampled() -> tf.Tensor:
            step, state = codec.decoder(model, batch, length)
            return sample(step, state, prompt_ids, prompt_lengths, room, temperature, top_k, top_p,
                          seed=tf.cast(seed, tf.int32))

        def beamed() -> tf.Tensor:  # the most likely continuation; temperature, top_k and top_p play no part
            step, state = codec.decoder(model, batch * beam_width, length)
            return beam_search(step, state, prompt_ids, prompt_lengths, room, beam_width)[0]

        ids = tf.cond(beam_width > 1, beamed, sampled)
        positions = tf.range(tf.shape(ids)[1])[None]
        continuation = (positions >= prompt_lengths[:, None]) & (ids != PAD_ID) & (ids != EOS_ID)
        return {"continuation": model.detokenizer(ids, continuation)}

    signatures = {
        "serving_default": serve_log_likelihood.get_concrete_function(),
        "transform_features": transform_features_signature(model, spec),
        "generate": generate.get_concrete_function(),
    }
    save_model(model, export_dir, signatures)


def export_classifier(
    model: tf_keras.Model,
    export_dir: str,
    transform_layer: tf_keras.layers.Layer,
    text_spec: Mapping[str, tf.io.FixedLenFeature],
    label_spec: Mapping[str, tf.io.FixedLenFeature],
    classes: Sequence[str],
) -> None:
    """Saves a classifier: `serving_default` takes examples with the text alone and returns
    `probabilities` [batch, classes] and the matching `classes` names; `transform_features`
    also parses the label (the Evaluator reads the class id from it)."""
    model.transform_layer = transform_layer
    spec = dict(text_spec)
    class_names = tf.constant(list(classes))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_probabilities(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = model.transform_layer(tf.io.parse_example(serialized, spec))
        probabilities = tf.nn.softmax(model(features["input_ids"], training=False))
        names = tf.tile(class_names[None], [tf.shape(probabilities)[0], 1])
        return {"probabilities": probabilities, "classes": names}

    signatures = {
        "serving_default": serve_probabilities.get_concrete_function(),
        "transform_features": transform_features_signature(model, {**spec, **label_spec}),
    }
    save_model(model, export_dir, signatures)


def save_model(model: tf_keras.Model, export_dir: str, signatures: dict) -> None:
    """Writes the SavedModel. The signatures are the contract, so Keras' per-layer call traces
    are left out (`save_traces=False`): a masked bidirectional LSTM's traces took 30 s to
    write and 6 s to load, against 0.4 s and 0.7 s without them. Serving takes no gradients, so
    the custom gradients (FastLSTM's unrolled backward) are not traced either: tracing them for
    every function that runs the layer took the tiny hvae's save past ten minutes."""
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    model.save(export_dir, save_format="tf", signatures=signatures, save_traces=False, options=options)


def transform_features_signature(model: tf_keras.Model, spec: Mapping[str, tf.io.FixedLenFeature]) -> Callable:
    """The `transform_features` signature: serialized examples -> the Transform's outputs."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return model.transform_layer(tf.io.parse_example(serialized, dict(spec)))

    return transform_features.get_concrete_function()
