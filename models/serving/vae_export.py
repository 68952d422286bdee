"""SavedModel export of the VAE family in the serving contract (docs/architecture.md).

Signatures, all on raw strings or serialized tf.Examples so a client needs no project code:
  serving_default(examples)            -> negative_elbo, kl, token_count (per text)
  evaluate(examples)                   -> the same, plus teacher_forced_hits, sampled_hits, mu
                                          (what the Evaluator's VAE metrics add up)
  transform_features(examples)         -> the Transform's output
  encode(text)                         -> mu, sigma
  decode(z, temperature, seed)         -> text (temperature 0: greedy)
  interpolate(first, second, steps)    -> texts [batch, steps] decoded greedily along the
                                          straight line from mu(first) to mu(second)
  generate(num_samples, temperature, seed) -> text decoded from z drawn from the prior
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras

from models.serving.export import Detokenizer, TextCodec, save_model, transform_features_signature
from models.layers.tokens import EOS_ID, PAD_ID

_TEXTS = tf.TensorSpec([None], tf.string, name="examples")


def export_vae(
    model: tf_keras.Model,
    export_dir: str,
    transform_layer: tf_keras.layers.Layer,
    raw_feature_spec: Mapping[str, tf.io.FixedLenFeature],
    codec: TextCodec,
) -> None:
    """Saves a `models.families.hvae_model.TextVAE` with the signatures listed in the module docstring."""
    if not codec.sequence_length:
        raise ValueError("a VAE export needs the transform's sequence_length in its TextCodec")
    model.transform_layer = transform_layer  # tracked, so its assets and tables are saved
    model.detokenizer = Detokenizer(codec)
    spec = dict(raw_feature_spec)
    text_shape = list(spec[codec.text_feature].shape)
    length = codec.sequence_length
    latent = model.latent_size(length)

    def target_ids_of_examples(serialized: tf.Tensor) -> tf.Tensor:
        return model.transform_layer(tf.io.parse_example(serialized, spec))["target_ids"]

    def target_ids_of_text(text: tf.Tensor) -> tf.Tensor:
        return model.transform_layer({codec.text_feature: tf.reshape(text, [-1] + text_shape)})["target_ids"]

    def to_text(ids: tf.Tensor) -> tf.Tensor:
        return model.detokenizer(ids, (ids != PAD_ID) & (ids != EOS_ID))

    @tf.function(input_signature=[_TEXTS])
    def serve(serialized):
        terms = model.elbo_terms(target_ids_of_examples(serialized))
        return {k: terms[k] for k in ("negative_elbo", "kl", "token_count")}

    @tf.function(input_signature=[_TEXTS])
    def evaluate(serialized):
        return model.evaluate_texts(target_ids_of_examples(serialized))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encoded(text):  # traced once for encode and interpolate's two calls
        return model.encode(target_ids_of_text(text))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def encode(text):
        mu, sigma = encoded(text)
        return {"mu": mu, "sigma": sigma}

    # decode, interpolate and generate call this one function: the autoregressive decode is traced
    # (and written into the SavedModel) once instead of three times, about 20 s each for the tiny
    # hierarchical decoder of the end-to-end test
    @tf.function(input_signature=[
        tf.TensorSpec([None, latent], tf.float32),
        tf.TensorSpec([], tf.float32),
        tf.TensorSpec([], tf.int32),
    ])
    def decoded_text(z, temperature, seed):
        return to_text(model.decode(z, length, temperature, seed))

    @tf.function(input_signature=[
        tf.TensorSpec([None, latent], tf.float32, name="z"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int64, name="seed"),
    ])
    def decode(z, temperature, seed):
        return {"text": decoded_text(z, temperature, tf.cast(seed, tf.int32))}

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="first"),
        tf.TensorSpec([None], tf.string, name="second"),
        tf.TensorSpec([], tf.int32, name="steps"),
    ])
    def interpolate(first, second, steps):
        start, _ = encoded(first)
        end, _ = encoded(second)
        weights = tf.linspace(0.0, 1.0, tf.maximum(steps, 2))[None, :, None]  # [1, steps, 1]
        z = (1.0 - weights) * start[:, None] + weights * end[:, None]  # [batch, steps, latent]
        texts = decoded_text(tf.reshape(z, [-1, latent]), tf.constant(0.0), tf.constant(0))
        return {"texts": tf.reshape(texts, [tf.shape(first)[0], -1])}

    @tf.function(input_signature=[
        tf.TensorSpec([], tf.int32, name="num_samples"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int64, name="seed"),
    ])
    def generate(num_samples, temperature, seed):
        z = tf.random.stateless_normal(tf.stack([num_samples, latent]), seed=tf.stack([seed, tf.constant(1, tf.int64)]))
        return {"text": decoded_text(z, temperature, tf.cast(seed, tf.int32))}

    signatures = {
        "serving_default": serve.get_concrete_function(),
        "evaluate": evaluate.get_concrete_function(),
        "transform_features": transform_features_signature(model, spec),
        "encode": encode.get_concrete_function(),
        "decode": decode.get_concrete_function(),
        "interpolate": interpolate.get_concrete_function(),
        "generate": generate.get_concrete_function(),
    }
    save_model(model, export_dir, signatures)
