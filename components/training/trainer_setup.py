"""What every Trainer works out before it builds a model: the split sizes, the family's
hyper-parameters sized for them, the seed, the distribution strategy, the input settings and
the training plan (`trainer_module.run_fn` for every task)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from tfx.components.trainer.fn_args_utils import FnArgs

from components.data.splits import TEST, split_folder
from components.training.training_data import TrainingDataConfig, count_records, count_records_and_tokens
from models import registry
from models.runtime.acceleration import PRECISIONS, distribution_strategy, gpu_visible
from models.runtime.acceleration_trial import Choice, TrialSpec, choose, gpu_capabilities
from models.runtime.cluster import ClusterRole, across_workers, cluster_role
from models.runtime.training_length import TrainingPlan, plan_training
from tasks.base import Task


@dataclasses.dataclass
class TrainingSetup:
    family: registry.Family
    hparams: Any  # the family's config: `size: auto` resolved by the training split's tokens, the task's length
    train_examples: int
    train_tokens: int  # the real tokens of the task's `token_features` in the training split
    eval_examples: int  # the validation split's
    test_examples: int  # the test split's count: the Evaluator's decoded share is sized by it
    strategy: tf.distribute.Strategy
    data_config: TrainingDataConfig
    # the config's batch size is per replica of one machine; each step reads one batch for every
    # replica there, and workers share that global batch (more workers train the same steps, faster)
    global_batch: int
    plan: TrainingPlan
    transform_output: tft.TFTransformOutput  # read once here; the task's hooks read it through `TrainerRun`
    seed: int = 0  # every random generator's, set before anything is built (and again for a second start)
    trial_cache_dir: Optional[str] = None  # where the acceleration trials are cached besides the user's cache
    cluster: ClusterRole = dataclasses.field(default_factory=ClusterRole)  # this process's place among the workers


def training_setup(fn_args: FnArgs, task: Task) -> TrainingSetup:
    """Counts the splits, sizes the family's config by the task's rule, fills in the task's
    training length, seeds every random generator and plans the steps."""
    custom: dict[str, Any] = fn_args.custom_config
    family = registry.get(custom["family"])
    kind = task.model_kind(family.name)
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train_examples, train_tokens = count_records_and_tokens(
        fn_args.train_files, transform_output.transformed_feature_spec(), task.token_features)
    eval_examples = count_records(fn_args.eval_files)
    test_examples = count_records(sibling_split_files(fn_args.train_files, TEST))
    hparams = family.config_class(**custom["hparams"]).sized(train_tokens, task.size_rule)
    hparams = hparams.with_task_length(family.passes(kind, task.train_epochs), task.train_minutes)
    if hparams.jit_compile is True and not gpu_visible() and not registry.xla_compiles_on_cpu(family.name, hparams, kind):
        # the config refused this where the run started; a Trainer on another machine checks again
        raise ValueError(f"{family.name}.jit_compile is true, but this machine has no GPU and {registry.XLA_CPU_CRASH}")
    seed = custom.get("seed", 0)
    tf_keras.utils.set_random_seed(seed)
    tf_keras.utils.disable_interactive_logging()  # epoch lines go to the log, not a progress bar
    strategy, cluster = distribution_strategy(hparams.strategy), cluster_role()
    global_batch = hparams.batch_size * strategy.num_replicas_in_sync // cluster.workers
    if global_batch % strategy.num_replicas_in_sync:
        raise ValueError(f"{family.name}.batch_size ({hparams.batch_size}) does not split evenly among the "
                         f"{strategy.num_replicas_in_sync} replicas of {cluster.workers} workers")
    plan = plan_training(hparams, train_examples, eval_examples, global_batch, cap=fn_args.train_steps,
                         steps_multiple=hparams.steps_per_execution)
    return TrainingSetup(family, hparams, train_examples, train_tokens, eval_examples, test_examples, strategy,
                         TrainingDataConfig(**custom.get("training_data", {})), global_batch, plan,
                         transform_output, seed, custom.get("trial_cache_dir"), cluster)


def sibling_split_files(file_patterns: list[str], split: str) -> list[str]:
    """The file patterns of another split of the Examples artifact that `file_patterns` (one
    split's, `<artifact>/Split-<name>/*`) belong to."""
    return [os.path.join(split_folder(os.path.dirname(os.path.dirname(pattern)), split), "*") for pattern in file_patterns[:1]]


def resolve_acceleration(setup: TrainingSetup, kind: str, vocab_size: int, train_data: tf.data.Dataset,
                         num_classes: int = 0, batch_shapes: int = 1, batches: int = 8, defer: bool = False) -> Choice:
    """Settles `precision: auto` and `jit_compile: auto` in `setup.hparams` (`models.runtime.acceleration_trial`),
    timing the candidates on the largest of the first `batches` training batches, for a training of
    the plan's steps in `batch_shapes` shapes (one per length bucket); returns the choice and why,
    for `training_metrics.json` and the summary. With `defer`, an uncached trial waits for the
    training's first steps to say whether it can pay (the choice's candidates are `deferred`)."""
    hparams = setup.hparams
    if hparams.precision != "auto" and hparams.jit_compile != "auto":
        return Choice(hparams.precision, hparams.jit_compile, "set in the config")
    sample = max((tf.nest.map_structure(lambda t: t.numpy(), b) for b in train_data.take(batches)),
                 key=lambda b: tf.nest.flatten(b)[-1].size)
    spec = TrialSpec(setup.family.name, kind, dataclasses.asdict(hparams), vocab_size, num_classes,
                     train_steps=setup.plan.steps, batch_shapes=batch_shapes)
    workers = setup.cluster.workers
    choice = choose(spec, sample, hparams.precision, hparams.jit_compile,
                    xla_left_out=registry.xla_left_out_on_cpu(setup.family.name, hparams, kind),
                    gpu_capabilities=gpu_capabilities(), shared_cache=setup.trial_cache_dir, defer=defer or workers > 1)
    if workers > 1:  # workers run no trial (it would time the cluster's all-reduces); they train as the chief chose
        if choice.deferred:
            choice = Choice(choice.precision, choice.jit_compile, f"no trial with {workers} workers, none cached")
        choice = chiefs_choice(setup, choice)
    setup.hparams = dataclasses.replace(hparams, precision=choice.precision, jit_compile=choice.jit_compile)
    return choice


def chiefs_choice(setup: TrainingSetup, choice: Choice) -> Choice:
    """The chief's precision and XLA choice, sent to every worker (each may have found another
    trial in its own cache): workers that trained in different precisions would not be one model."""
    code = PRECISIONS.index(choice.precision) * 2 + int(choice.jit_compile) + 1 if setup.cluster.is_chief else 0
    chiefs = round(across_workers(setup.strategy, float(code), setup.cluster.workers)) - 1
    precision, jit_compile = PRECISIONS[chiefs // 2], bool(chiefs % 2)
    if (precision, jit_compile) == (choice.precision, choice.jit_compile):
        return choice
    return Choice(precision, jit_compile, f"the chief's choice (this worker's own: {choice.label}, {choice.reason})")
