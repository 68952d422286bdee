"""Training loop shared by the language-model families: Adam, clipping, masked token loss."""

from __future__ import annotations

import math
from typing import Optional

import tensorflow as tf
import tf_keras

from models.lm_loss import MaskedTokenAccuracy, masked_token_cross_entropy


def compile_language_model(model: tf_keras.Model, learning_rate: float) -> None:
    """Adam with global-norm clipping; loss and accuracy over real tokens only."""
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate, global_clipnorm=1.0),
        loss=masked_token_cross_entropy,
        metrics=[MaskedTokenAccuracy()],
    )


def train_language_model(
    model: tf_keras.Model,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset,
    *,
    train_steps: int,
    eval_steps: int,
    log_dir: Optional[str] = None,
    reports: int = 5,
) -> dict[str, float]:
    """Fits a compiled model on (input_ids, target_ids) batches; returns the final metrics.

    `reports` epochs split the steps so progress reaches the log; the eval split is scored
    once, at the end.
    """
    epochs = max(1, min(reports, train_steps))
    callbacks = [tf_keras.callbacks.TensorBoard(log_dir=log_dir)] if log_dir else []
    history = model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=math.ceil(train_steps / epochs),
        validation_data=eval_data,
        validation_steps=eval_steps,
        validation_freq=[epochs],
        callbacks=callbacks,
        verbose=2,
    )
    return {name: float(values[-1]) for name, values in history.history.items()}
