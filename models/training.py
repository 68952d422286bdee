"""Training shared by every family and task: the LR schedule, what to compile with, the fit loop."""

from __future__ import annotations

import math
from typing import Optional

import tensorflow as tf
import tf_keras

from models.lm_loss import MaskedTokenAccuracy, masked_token_cross_entropy


class WarmupCosine(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak`, then cosine decay to `floor` at `total_steps` (nanoGPT's schedule)."""

    def __init__(self, peak: float, floor: float, warmup_steps: int, total_steps: int):
        self.peak, self.floor = peak, floor
        self.warmup_steps, self.total_steps = max(warmup_steps, 0), max(total_steps, 1)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
        progress = tf.clip_by_value(
            (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0
        )
        cosine = self.floor + 0.5 * (self.peak - self.floor) * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self) -> dict:
        return {"peak": self.peak, "floor": self.floor, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def compile_language_model(
    model: tf_keras.Model, optimizer: tf_keras.optimizers.Optimizer, jit_compile: bool = False, steps_per_execution: int = 1
) -> None:
    """Loss and accuracy over real tokens only. Under `mixed_float16` Keras wraps the optimizer
    in a LossScaleOptimizer (dynamic loss scaling)."""
    model.compile(
        optimizer=optimizer, loss=masked_token_cross_entropy, metrics=[MaskedTokenAccuracy()],
        jit_compile=jit_compile, steps_per_execution=steps_per_execution,
    )


def compile_classifier(
    model: tf_keras.Model, optimizer: tf_keras.optimizers.Optimizer, jit_compile: bool = False, steps_per_execution: int = 1
) -> None:
    """Cross-entropy of the class logits against integer class ids, and accuracy."""
    model.compile(
        optimizer=optimizer,
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )


def train_model(
    model: tf_keras.Model,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset,
    *,
    train_steps: int,
    eval_steps: int,
    steps_per_execution: int = 1,
    log_dir: Optional[str] = None,
    reports: int = 5,
) -> dict[str, float]:
    """Fits a compiled model on (inputs, targets) batches; returns the final metrics.

    `reports` epochs split the steps so progress reaches the log; the eval split is scored
    once, at the end. Each epoch's steps are a multiple of `steps_per_execution` (so at most
    `reports` x `steps_per_execution` steps more than `train_steps`): every graph call then
    takes the same number of batches, and the input pipeline's runs of same-shape batches
    stay aligned with the calls (see `components.training_data`).
    """
    epochs = max(1, min(reports, train_steps // steps_per_execution))
    steps_per_epoch = math.ceil(train_steps / epochs / steps_per_execution) * steps_per_execution
    callbacks = [tf_keras.callbacks.TensorBoard(log_dir=log_dir)] if log_dir else []
    history = model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=eval_data,
        validation_steps=math.ceil(eval_steps / steps_per_execution) * steps_per_execution,
        validation_freq=[epochs],
        callbacks=callbacks,
        verbose=2,
    )
    return {name: float(values[-1]) for name, values in history.history.items()}
