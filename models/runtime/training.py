"""Training shared by every family and task: the LR schedule, what to compile with, the fit loop."""

from __future__ import annotations

import io
import json
import math
import os
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import tf_keras

from models.layers.crf import ViterbiTokenAccuracy, crf_layer
from models.layers.lm_loss import MaskedTokenAccuracy, label_smoothed_cross_entropy, masked_token_cross_entropy
from models.runtime.progress import log_progress, note
from models.runtime.training_length import TrainingPlan


def leave_tf_keras_unconverted() -> None:
    """Lets tf_keras's own functions run as written when a model is traced, as Keras 2 did when
    it was the `keras` package. AutoGraph rewrites the control flow of every function a traced
    function calls, except modules on its do-not-convert list, which names `tensorflow` and `keras`
    but not `tf_keras` in TensorFlow 2.16: each new process converted about 150 tf_keras functions
    (measured: 8.8 s of the 17.5 s a Transformer's first build and train step took; the same loss
    without). AutoGraph still converts the function `tf.function` is given (Keras' train and
    predict functions) and the layers of models/, which the list does not name."""
    from tensorflow.python.autograph.core import config  # the list has no public setter

    rule = config.DoNotConvert("tf_keras")
    if not any(str(r) == str(rule) for r in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (rule, *config.CONVERSION_RULES)


leave_tf_keras_unconverted()  # every trained model goes through this module (compile, fit)


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


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning off, its parallel calls and buffers as they were set:
    with it on, float32 steps ran in a slow mode in some processes and a `fit` could stall at its
    end waiting for the autotuning thread (README, "Precision, XLA and batching")."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def compile_language_model(
    model: tf_keras.Model, optimizer: tf_keras.optimizers.Optimizer, jit_compile: bool = False, steps_per_execution: int = 1
) -> None:
    """Loss and accuracy over real tokens only. Under `mixed_float16` Keras wraps the optimizer
    in a LossScaleOptimizer (dynamic loss scaling)."""
    model.compile(
        optimizer=optimizer, loss=masked_token_cross_entropy, metrics=[MaskedTokenAccuracy()],
        jit_compile=jit_compile, steps_per_execution=steps_per_execution,
    )
    build_optimizer_state(model)


def compile_tagger(
    model: tf_keras.Model, optimizer: tf_keras.optimizers.Optimizer, jit_compile: bool = False, steps_per_execution: int = 1
) -> None:
    """A tagger with a softmax per word learns as a language model does (cross-entropy per real
    word, class 0 pads); one with a CRF layer (`models.layers.crf`) by the CRF's negative
    log-likelihood per word, its accuracy that of the Viterbi sequence."""
    crf = crf_layer(model)
    if crf is None:
        compile_language_model(model, optimizer, jit_compile, steps_per_execution)
        return
    model.compile(optimizer=optimizer, loss=crf.loss, metrics=[ViterbiTokenAccuracy(crf.decode)],
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    build_optimizer_state(model)


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
    build_optimizer_state(model)


def compile_seq2seq(
    model: tf_keras.Model, optimizer: tf_keras.optimizers.Optimizer, label_smoothing: float, jit_compile: bool = False,
    steps_per_execution: int = 1,
) -> None:
    """An encoder-decoder taught with teacher forcing: label-smoothed cross-entropy over the
    target's real tokens, and their accuracy."""

    def loss(target_ids: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        return label_smoothed_cross_entropy(target_ids, logits, label_smoothing)

    model.compile(optimizer=optimizer, loss=loss, metrics=[MaskedTokenAccuracy()], jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    build_optimizer_state(model)


def build_optimizer_state(model: tf_keras.Model) -> None:
    """Creates the optimizer's slot variables now, in the caller's strategy scope. Created lazily
    by the first train step instead, they make tf.function trace that step twice (once to create
    them): for the VAE that second trace costs about 5 s of every Trainer's start."""
    if model.built and model.trainable_variables:
        model.optimizer.build(model.trainable_variables)


class ProgressLog(tf_keras.callbacks.Callback):
    """Logs the training step, the total, the loss and tokens per second about 100 times a run
    (and at the last step) through `models.runtime.progress`. Tokens per second count `tokens_per_step`
    (the real tokens of a batch, estimated) per step."""

    def __init__(self, total_steps: int, tokens_per_step: float, workers: int = 1):
        super().__init__()
        self.total_steps, self.tokens_per_step = total_steps, tokens_per_step
        # under MultiWorkerMirroredStrategy a batch's logged loss is the sum of the workers' (each
        # the global mean: 3.18 against 1.59 with 2 workers, where the epoch's history says 1.59)
        self.workers = workers
        self.every = max(1, total_steps // 100)
        self.started: Optional[float] = None
        self.first_step = 0
        self.last_logged = 0

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.started, self.first_step = time.monotonic(), int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        if step - self.last_logged >= self.every or step >= self.total_steps:
            elapsed = max(time.monotonic() - (self.started or time.monotonic()), 1e-9)
            rate = (step - self.first_step) * self.tokens_per_step / elapsed
            log_progress(step, self.total_steps, float((logs or {}).get("loss", math.nan)) / self.workers, rate)
            self.last_logged = step


class KeptAcrossRestarts(tf_keras.callbacks.Callback):
    """What a training measured, kept beside its backup (`folder`) so that a start from the
    backup (a worker of a cluster failed, every worker started again) goes on where it was:
    each measurement's numbers, and early stopping's best weights and patience. Placed after
    `stopping` in the callbacks; only the `writer` (the chief) writes, every worker reads."""

    def __init__(self, stopping: tf_keras.callbacks.EarlyStopping, folder: str, interval: int, writer: bool):
        super().__init__()
        self.stopping, self.interval, self.writer = stopping, interval, writer
        self.record_path, self.weights_path = os.path.join(folder, "measured.json"), os.path.join(folder, "best.npz")
        self.step = 0  # where this start began: 0, or the backup's step
        self.earlier: list[dict] = []  # the measurements before it
        self.this_start: list[dict] = []

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.this_start = []
        self.step = int(self.model.optimizer.iterations.numpy())  # BackupAndRestore has restored by now
        if not self.step or not tf.io.gfile.exists(self.record_path):
            return
        note(f"resumed from the backup at step {self.step}")
        with tf.io.gfile.GFile(self.record_path) as f:
            record = json.load(f)
        resumed_epoch = self.step // self.interval
        self.earlier = record["measured"][:resumed_epoch]
        best = record.get("best_epoch")
        if best is not None and best < resumed_epoch and tf.io.gfile.exists(self.weights_path):
            with tf.io.gfile.GFile(self.weights_path, "rb") as f:
                saved = np.load(io.BytesIO(f.read()))
            self.stopping.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]
            self.stopping.best, self.stopping.best_epoch = self.earlier[best][self.stopping.monitor], best
            self.stopping.wait = resumed_epoch - 1 - best

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.this_start.append({name: float(value) for name, value in (logs or {}).items()})
        if not self.writer:
            return
        if self.stopping.best_weights is not None and self.stopping.best_epoch == epoch:
            weights = io.BytesIO()
            np.savez(weights, *self.stopping.best_weights)
            _write_atomically(self.weights_path, weights.getvalue())
        best = self.stopping.best_epoch if self.stopping.best_weights is not None else None
        record = {"measured": [*self.earlier, *self.this_start], "best_epoch": best}
        _write_atomically(self.record_path, json.dumps(record).encode("utf-8"))


def _write_atomically(path: str, content: bytes) -> None:
    """`content` replaces `path` whole, through tf.io.gfile: a cluster's backup folder may be a
    bucket (`models.runtime.atomic_file` writes local text files)."""
    with tf.io.gfile.GFile(path + ".tmp", "wb") as f:
        f.write(content)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


class TimeBudget(tf_keras.callbacks.Callback):
    """Stops training once `seconds` of it have passed (from the first step, the model built and
    compiled): Keras then measures the eval loss once more, at the step reached, and early
    stopping restores the best weights seen, as at any other end. Workers of one cluster must
    stop at the same step, or the others wait for the one that stopped: there each asks every
    `every` batches whether any worker's clock is over (`agree`, `models.runtime.cluster`)."""

    def __init__(self, seconds: float, clock=time.monotonic, agree: Optional[Callable[[bool], bool]] = None,
                 every: int = 1):
        super().__init__()
        self.seconds, self.clock, self.agree, self.every = seconds, clock, agree, max(1, every)
        self.started: Optional[float] = None
        self.stopped_at_step: Optional[int] = None
        self.batches = 0

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.started = self.clock()

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self.batches += 1
        if self.stopped_at_step is not None or self.batches % self.every:
            return
        over = self.clock() - self.started >= self.seconds
        if self.agree is not None:
            over = self.agree(over)
        if over:
            self.stopped_at_step = int(self.model.optimizer.iterations.numpy())
            self.model.stop_training = True


def train_model(
    model: tf_keras.Model,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset,
    plan: TrainingPlan,
    *,
    patience: int,
    batch_size: int,
    budget: Optional[TimeBudget] = None,
    train_examples: int,
    log_dir: Optional[str] = None,
    tokens_per_step: float = 0.0,
    callbacks: Optional[list[tf_keras.callbacks.Callback]] = None,
    monitor_from_step: int = 0,
    selected_by: str = "val_loss",
    backup_dir: Optional[str] = None,
    writer: bool = True,
    workers: int = 1,
) -> dict[str, float]:
    """Fits a compiled model on (inputs, targets) batches as `plan` says; returns the metrics of
    the kept weights and how training went.

    Each Keras epoch is one `plan.evaluation_interval` of steps, a multiple of the steps per graph
    call (so the input pipeline's runs of same-shape batches stay aligned with the calls; see
    `components.training.training_data`), ended by a measurement of the eval loss on the same
    `plan.eval_batches` batches each time. Training stops after `patience` measurements without
    a new best of `selected_by` (the eval loss, or an eval metric that grows: `val_token_accuracy`),
    and the weights of the best one are restored (also when training ran to the end);
    measurements before `monitor_from_step` (a warm-up) neither stop training nor are kept.
    With a `budget` (`TimeBudget`), training also stops when its time is spent, after a last
    measurement at the step it reached. Progress is logged as it goes (`ProgressLog`; `workers`:
    the cluster's, whose logged batch losses are summed over them);
    `callbacks` are the model's own. With a `backup_dir`, the model and optimizer are backed up
    at each measurement (Keras' BackupAndRestore), and the measurements and early stopping's
    best weights beside them (`KeptAcrossRestarts`, written by the `writer`); a training started
    again with the same folder (a worker of a cluster restarted) resumes from the last backup,
    with the time budget afresh.
    """
    epochs = plan.evaluations
    higher_is_better = selected_by != "val_loss"
    stopping = tf_keras.callbacks.EarlyStopping(
        monitor=selected_by, mode="max" if higher_is_better else "min", patience=patience, restore_best_weights=True,
        start_from_epoch=math.ceil(monitor_from_step / plan.evaluation_interval),
    )
    kept = KeptAcrossRestarts(stopping, backup_dir, plan.evaluation_interval, writer) if backup_dir else None
    callbacks = [*([tf_keras.callbacks.BackupAndRestore(backup_dir)] if backup_dir else []), *(callbacks or []),
                 *([budget] if budget else []), stopping, *([kept] if kept else []),
                 ProgressLog(plan.evaluations * plan.evaluation_interval, tokens_per_step, workers)]
    callbacks += [tf_keras.callbacks.TensorBoard(log_dir=log_dir)] if log_dir else []
    history = model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=plan.evaluation_interval,
        validation_data=eval_data,
        validation_steps=plan.eval_batches,
        callbacks=callbacks,
        verbose=2,
    ).history
    if kept and kept.earlier:  # resumed: the measurements before the backup's step, then this start's
        history = {name: [entry[name] for entry in kept.earlier] + values for name, values in history.items()}
    first = min(stopping.start_from_epoch, len(history["val_loss"]) - 1)  # the last one when training ended sooner
    chosen = np.asarray(history[selected_by][first:])
    best = first + int(np.argmax(chosen) if higher_is_better else np.argmin(chosen))
    # the step of each measurement: every interval's end, the last one where a budget stopped it
    measured = [(i + 1) * plan.evaluation_interval for i in range(len(history["val_loss"]))]
    if budget and budget.stopped_at_step is not None:
        measured[-1] = budget.stopped_at_step
    steps_run = measured[-1]
    metrics = {name: float(values[best]) for name, values in history.items()}  # the restored weights' numbers
    metrics.update(
        planned_steps=plan.steps,
        steps=steps_run,
        best_step=measured[best],
        stopped_early=steps_run < plan.evaluations * plan.evaluation_interval,
        stopped_at_budget=bool(budget and budget.stopped_at_step is not None),
        selected_by=selected_by,
        **({"resumed_at_step": kept.step} if kept and kept.step else {}),
        examples_seen=steps_run * batch_size,
        epochs=round(steps_run * batch_size / max(train_examples, 1), 3),
        eval_loss_curve=[round(float(v), 5) for v in history["val_loss"]],
        # The training curve: at the end of each interval, the steps so far, the mean training
        # loss over the interval and the eval loss measured there.
        curve={
            "step": measured,
            "loss": [round(float(v), 5) for v in history["loss"]],
            "eval_loss": [round(float(v), 5) for v in history["val_loss"]],
        },
    )
    return metrics
