"""Trainer module code: `run_fn` trains one model family for the run's task, one path for every
task: setup and sizing, the task's training data, the precision and XLA choice, bucketed
batches, fit with early stopping, the metrics file, and the task's export.

The family comes from `custom_config["family"]` and is looked up in `models.registry`; the task
from `custom_config["task"]` in `tasks.registry` (the VAE family's language model is a VAE).
What differs between tasks (the features a batch pairs, the vocabulary, the corruption of a
denoiser's source, the exported signatures) is the task's hooks (`tasks.base.Task`); what
differs between families is the registry's. Batches come from the Transform output through
`components.training.training_data` (parallel parsing, caching, shuffling, length buckets); the
exported SavedModel carries the Transform graph so that serving takes raw text.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Optional

import tensorflow as tf
import tf_keras
from tfx.components.trainer.fn_args_utils import FnArgs

from components.training.fine_tuning import starting_point
from components.training.metrics_file import METRICS_FILE
from components.training.model_description import SENTENCEPIECE, reads_subwords, write_description
from components.training.subword_transform import subword_model_in_graph
from components.training.trainer_setup import TrainingSetup, resolve_acceleration, training_setup
from components.training.training_data import (
    LM_LENGTH_MULTIPLE,
    batch_profile,
    bucket_edges,
    training_batches,
)
from components.training.transform_module import LABEL_FEATURE, LABEL_VOCAB_NAME, VOCAB_NAME
from models import registry
from models.runtime.acceleration import distribution_strategy, float32_copy, precision_policy
from models.runtime.acceleration_trial import Choice
from models.runtime.cluster import across_workers, cluster_role
from models.runtime.progress import note
from models.runtime.training import TimeBudget, train_model
from models.runtime.trial_gate import TrialGate, TrialWanted
from tasks import registry as tasks

BACKUP_FOLDER = "backup"  # in the chief's model_run folder: a cluster's workers resume from it after a restart
BUDGET_CHECK_BATCHES = 10  # workers agree on the time budget every this many batches (an all-reduce each)


class TrainerRun:
    """What a task's training hooks read (`tasks.base.TrainerRun`): the Trainer's settings and
    the Transform's output."""

    label_feature = LABEL_FEATURE

    def __init__(self, fn_args: FnArgs, setup: TrainingSetup) -> None:
        self.settings: dict[str, Any] = fn_args.custom_config
        self.family, self.hparams = setup.family, setup.hparams
        self.serving_model_dir, self.eval_examples = fn_args.serving_model_dir, setup.eval_examples
        self.test_examples = setup.test_examples
        self._transform_dir = fn_args.transform_output
        self.transform_output = setup.transform_output
        self.feature_spec = self.transform_output.transformed_feature_spec()
        positions = "target_ids" if "target_ids" in self.feature_spec else "input_ids"  # a tagger has no targets' ids
        self.sequence_length = self.feature_spec[positions].shape[0]

    def vocabulary_size(self) -> int:
        return self.transform_output.vocabulary_size_by_name(VOCAB_NAME)

    def vocabulary_file(self) -> str:
        return self.transform_output.vocabulary_file_by_name(VOCAB_NAME)

    def label_classes(self) -> list[str]:
        return [c.decode("utf-8") for c in self.transform_output.vocabulary_by_name(LABEL_VOCAB_NAME)]

    def subword_model(self) -> bytes:
        with tf.io.gfile.GFile(subword_model_in_graph(self._transform_dir), "rb") as f:
            return f.read()

    def raw_spec(self, columns: list[str]) -> dict:
        spec = self.transform_output.raw_feature_spec()
        return {column: spec[column] for column in columns}

    def transform_layer(self) -> Any:
        return self.transform_output.transform_features_layer()


@dataclasses.dataclass
class Fitted:
    """One start of the training: the data, the model and what its fit measured."""

    data: Any  # the task's TrainingData
    acceleration: Choice
    profile: dict
    build: Callable[[], Any]
    model: Any
    metrics: dict
    fit_began: float  # time.monotonic() once the model was built and compiled


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer entry point. Every worker of a cluster runs it (`TF_CONFIG`,
    `components.training.workers`); only the chief writes the model and its files, the others
    write theirs into a folder that is removed at the end."""
    custom: dict[str, Any] = fn_args.custom_config
    distribution_strategy(custom["hparams"]["strategy"])  # first: a multi-worker strategy precedes every op
    role = cluster_role()
    backup_dir = os.path.join(fn_args.model_run_dir, BACKUP_FOLDER) if role.workers > 1 else None
    if role.is_chief:
        _train(fn_args, backup_dir)
        if backup_dir:  # emptied by BackupAndRestore once training ended
            shutil.rmtree(backup_dir, ignore_errors=True)
        return
    scratch = tempfile.mkdtemp(prefix="textflow-worker-")
    fn_args.serving_model_dir, fn_args.model_run_dir = os.path.join(scratch, "model"), os.path.join(scratch, "model_run")
    try:
        _train(fn_args, backup_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train(fn_args: FnArgs, backup_dir: Optional[str]) -> None:
    """Trains, writes the metrics file and exports; `backup_dir`: where a cluster's training
    backs up to and resumes from."""
    started = time.monotonic()
    custom: dict[str, Any] = fn_args.custom_config
    task = tasks.branch_task(custom.get("task", tasks.DEFAULT), custom["family"])
    kind = task.model_kind(custom["family"])
    setup = training_setup(fn_args, task)
    run, auto = TrainerRun(fn_args, setup), setup.hparams
    first_start = time.monotonic()
    try:
        fitted = _fit(run, task, kind, setup, fn_args, defer_trial=True, backup_dir=backup_dir)
    except TrialWanted as wanted:  # a trial may pay: run it, then start again as a cached trial would
        aborted = time.monotonic() - first_start
        note(f"{setup.family.name}: {wanted}; trying them, then training from the start")
        setup.hparams = auto
        tf_keras.utils.set_random_seed(setup.seed)
        fitted = _fit(run, task, kind, setup, fn_args, defer_trial=False, backup_dir=backup_dir)
        fitted.acceleration.trial_seconds = round(fitted.acceleration.trial_seconds + aborted, 1)  # its first start too
    trained, hparams, acceleration, model = time.monotonic(), setup.hparams, fitted.acceleration, fitted.model
    trial_seconds = 0.0 if acceleration.cached else acceleration.trial_seconds
    metrics = dict(fitted.metrics)
    start = fitted.data.recorded.get("initialised_from", {})  # a fine-tuned model: the pushed model's size
    metrics.update(
        phase_seconds={"setup": round(fitted.fit_began - started, 1), "trial": trial_seconds,
                       "fit": round(trained - fitted.fit_began, 1)},
        size=start.get("size") or hparams.size, train_examples=setup.train_examples, train_tokens=setup.train_tokens,
        eval_examples=setup.eval_examples, train_epochs_planned=hparams.train_epochs,
        train_minutes=hparams.train_minutes,
        test_examples=setup.test_examples,
        parameters=int(model.count_params()), vocab_size=fitted.data.vocab_size,
        replicas=setup.strategy.num_replicas_in_sync, workers=setup.cluster.workers,
        **({"shard": setup.data_config.shard} if setup.cluster.workers > 1 else {}), global_batch=setup.global_batch,
        precision=hparams.precision, jit_compile=hparams.jit_compile,
        acceleration=acceleration.as_dict(), batching=setup.data_config.batching, **fitted.data.recorded,
        **fitted.profile,
    )
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as f:
        f.write(json.dumps(metrics, indent=2, sort_keys=True))

    task.export(run, float32_copy(fitted.build, model), fitted.data)  # served in float32, outside the training strategy
    description = _description(run, task, kind, setup, fitted)
    write_description(fn_args.serving_model_dir, description,
                      run.subword_model() if reads_subwords(description) else None)
    note(f"{setup.family.name}: setup {fitted.fit_began - started:.0f} s (the acceleration trial {trial_seconds:.0f} s), "
         f"training {trained - fitted.fit_began:.0f} s, export {time.monotonic() - trained:.0f} s")


def _description(run: TrainerRun, task: Any, kind: str, setup: TrainingSetup, fitted: Fitted) -> dict:
    """What the exported model is (`components.training.model_description`): enough to rebuild it."""
    vocabulary = run.transform_output.vocabulary_file_by_name(VOCAB_NAME)
    start = fitted.data.recorded.get("initialised_from", {})
    return {
        "family": setup.family.name, "task": task.name, "kind": kind,
        "hparams": start.get("architecture") or dataclasses.asdict(setup.hparams),
        "vocab_size": fitted.data.vocab_size, "num_classes": fitted.data.num_classes,
        # the asset holding the token vocabulary, or a subword model's SentencePiece model
        "vocabulary": os.path.basename(vocabulary) if vocabulary else SENTENCEPIECE,
        "tokenizer": run.settings["tokenizer"], "lowercase": run.settings.get("lowercase", False),
        "sequence_length": run.sequence_length,
        "trained_on": {"train_examples": setup.train_examples, "train_tokens": setup.train_tokens},
        # a fine-tuned model under a new head is the pushed model's architecture, not the registry's
        **({"initialised_from": start} if start else {}),
    }


def _fit(run: TrainerRun, task: Any, kind: str, setup: TrainingSetup, fn_args: FnArgs,
         defer_trial: bool, backup_dir: Optional[str] = None) -> Fitted:
    """The task's training data in bucketed batches, the precision and XLA choice, the model, and
    its fit; with `defer_trial`, an uncached acceleration trial is judged by the fit's first steps
    (`models.runtime.trial_gate`), which raise `TrialWanted` where it may pay."""
    family, strategy, data_config, global_batch, plan = (setup.family, setup.strategy, setup.data_config,
                                                          setup.global_batch, setup.plan)
    run.hparams = setup.hparams
    data = task.training_data(run)
    batches = dict(
        feature_spec=run.feature_spec, columns=data.columns, batch_size=global_batch,
        edges=bucket_edges(run.sequence_length, data_config.buckets, data.length_multiple or LM_LENGTH_MULTIPLE),
        config=data_config, same_shape_batches=setup.hparams.steps_per_execution, workers=setup.cluster.workers,
    )
    train_batches = training_batches(fn_args.train_files, seed=setup.seed + 1, example_map=data.train_map, **batches)
    # the same eval batches each time, so two measurements of the eval loss compare the same texts
    eval_batches = training_batches(fn_args.eval_files, seed=2, shuffle=False, example_map=data.eval_map, **batches)
    train_data, eval_data = ((train_batches.map(data.batch_map), eval_batches.map(data.batch_map)) if data.batch_map
                             else (train_batches, eval_batches))
    profile = batch_profile(train_batches, run.sequence_length)
    start = starting_point(fn_args, data.vocab_size)
    if start is None:
        acceleration = resolve_acceleration(setup, kind, data.vocab_size, train_data, data.num_classes,
                                            batch_shapes=profile["batch_shapes"], defer=defer_trial)
    else:
        acceleration = start.acceleration(setup)
    hparams = run.hparams = setup.hparams

    def build() -> Any:
        if start is not None:
            return start.build(kind, data.num_classes, hparams)
        return registry.build_model(family.name, kind, hparams, data.vocab_size, data.num_classes)

    building = time.monotonic()
    with strategy.scope(), precision_policy(hparams.precision):
        model = build()
        registry.compile_model(family.name, kind, model, hparams, plan.steps)
        if start is not None:
            start.group_loaded_layers(model)
    prepared = time.monotonic()
    callbacks, monitor_from_step = task.fit_settings(run, model)
    tokens_per_step = (data.sequences_per_example * global_batch * run.sequence_length
                       * (1.0 - profile["padding_share_at_full_length"]))
    if acceleration.deferred:
        callbacks.append(TrialGate(acceleration, family.name, plan.steps, profile["batch_shapes"],
                                   hparams.steps_per_execution, tokens_per_step, prepared - building))
    workers, budget = setup.cluster.workers, None
    if hparams.budget_seconds and workers > 1:  # every worker stops at the same step
        budget = TimeBudget(hparams.budget_seconds, every=BUDGET_CHECK_BATCHES,
                            agree=lambda over: across_workers(strategy, float(over), workers) > 0)
    elif hparams.budget_seconds:
        budget = TimeBudget(hparams.budget_seconds)
    metrics = train_model(
        model, train_data, eval_data, plan, patience=hparams.patience, budget=budget,
        backup_dir=backup_dir, writer=setup.cluster.is_chief, workers=workers,
        batch_size=global_batch,
        train_examples=setup.train_examples, log_dir=fn_args.model_run_dir, tokens_per_step=tokens_per_step,
        callbacks=callbacks, monitor_from_step=monitor_from_step, selected_by=data.selected_by,
    )
    if start is not None:
        data.recorded["initialised_from"] = start.record()
    return Fitted(data, acceleration, profile, build, model, metrics, prepared)
