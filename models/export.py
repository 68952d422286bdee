"""SavedModel export in the serving contract of DESIGN.md section 6.

A client needs no project code: `serving_default` takes serialized tf.Examples holding the
raw text and returns each example's log-likelihood (nats, summed over its tokens) and token
count; `transform_features` returns the in-graph transform's output for the same input.
The transform arrives as a Keras layer (raw feature dict -> transformed dict), so this module
knows nothing of how it was made.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras

from models.lm_loss import token_log_likelihoods
from models.tokens import PAD_ID


def export_language_model(
    model: tf_keras.Model,
    export_dir: str,
    transform_layer: tf_keras.layers.Layer,
    raw_feature_spec: Mapping[str, tf.io.FixedLenFeature],
) -> None:
    """Saves `model` with the `serving_default` and `transform_features` signatures."""
    model.transform_layer = transform_layer  # tracked, so its assets and tables are saved
    spec = dict(raw_feature_spec)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return model.transform_layer(tf.io.parse_example(serialized, spec))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_log_likelihood(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = model.transform_layer(tf.io.parse_example(serialized, spec))
        logits = model(features["input_ids"], training=False)
        per_token = token_log_likelihoods(features["target_ids"], logits)
        token_count = tf.reduce_sum(
            tf.cast(tf.not_equal(features["target_ids"], PAD_ID), tf.int64), axis=1
        )
        return {"log_likelihood": tf.reduce_sum(per_token, axis=1), "token_count": token_count}

    signatures = {
        "serving_default": serve_log_likelihood.get_concrete_function(),
        "transform_features": transform_features.get_concrete_function(),
    }
    model.save(export_dir, save_format="tf", signatures=signatures)
