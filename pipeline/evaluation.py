"""The Evaluator's TFMA config for a family's branch: its task's metrics over the whole test split
and its slices, and its task's blessing thresholds (`tasks/`: `Task.thresholds`).

Besides the configured limits, every task has a floor: its trivial baseline on the same eval
split, computed by the Evaluator itself (the majority class for a classifier, the train split's
unigram model for a language model or the VAE, copying the source for an encoder-decoder). The
floor is a value threshold on a metric that measures the margin over that baseline
(`accuracy_above_chance`, `cross_entropy_below_unigram`, ...), so it is part of TFMA's blessing
like every other threshold: a model below it is neither blessed, nor pushed, nor the next run's
comparison baseline. `evaluation.require_beat_baseline: false` leaves the floor out (the
metrics are still computed).
"""

from __future__ import annotations

import json
import math

import tensorflow_model_analysis as tfma

from components.evaluation.classifier_metrics import PROBABILITIES
from components.training.transform_module import LABEL_FEATURE, LENGTH_BUCKET_FEATURE
from pipeline.config import Config, branch_task
from tasks.base import Threshold


def blessing_thresholds(config: Config, family: str) -> list[Threshold]:
    """The thresholds a family's candidate must pass; change thresholds compare it with the
    last blessed model of the same branch."""
    return branch_task(config, family).thresholds(config.evaluation)


def describe_trivial_baseline(config: Config, family: str, metrics: dict[str, float]) -> str:
    """The task's trivial baseline on the test split and what beating it takes, in words."""
    return branch_task(config, family).trivial_baseline(config.evaluation, metrics)


def _tfma_threshold(threshold: Threshold) -> tfma.MetricThreshold:
    """TFMA's bounds are inclusive; a floor is passed only strictly beyond its bound (a model that
    equals its trivial baseline has not beaten it), so its bound is the next number past it."""
    value = threshold.bound
    if value is None:  # only the change is bounded: an open bound, as TFMA fails a first run's metric it checked nothing on
        value = -math.inf if threshold.higher_is_better else math.inf
    elif threshold.floor:
        value = math.nextafter(value, math.inf if threshold.higher_is_better else -math.inf)
    value_threshold = tfma.GenericValueThreshold(
        **{"lower_bound" if threshold.higher_is_better else "upper_bound": {"value": value}})
    change = None
    if threshold.max_worsening is not None:
        direction = tfma.MetricDirection.HIGHER_IS_BETTER if threshold.higher_is_better else tfma.MetricDirection.LOWER_IS_BETTER
        change = tfma.GenericChangeThreshold(direction=direction, absolute={"value": threshold.allowed_change})
    return tfma.MetricThreshold(value_threshold=value_threshold, change_threshold=change)


def slicing_specs(config: Config, family: str) -> list[tfma.SlicingSpec]:
    """The whole test split, each text-length bucket (a Transform output) and, for a task that
    slices by the label, each label value (a raw feature)."""
    specs = [tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[LENGTH_BUCKET_FEATURE])]
    if branch_task(config, family).slice_by_label:
        specs.append(tfma.SlicingSpec(feature_keys=[config.data.label_column]))
    return specs


def eval_config(config: Config, family: str) -> tfma.EvalConfig:
    """TFMA config for one family's Evaluator: its task's metrics over the whole test split and
    its slices, with its blessing thresholds on the whole split (a threshold without a slicing
    spec would judge every slice).

    The model type is fixed to a generic TF2 SavedModel: TFMA then uses the signatures only,
    instead of first trying to revive the model as Keras layers. Every family's
    `transform_features` runs first, so slices can use the Transform's `length_bucket` (and a
    classifier's label is the Transform's class id)."""
    task = branch_task(config, family)
    overall = [tfma.SlicingSpec()]
    thresholds = {
        t.metric: [tfma.PerSliceMetricThreshold(slicing_specs=overall, threshold=_tfma_threshold(t))]
        for t in task.thresholds(config.evaluation)
    }
    labels = dict(label_key=LABEL_FEATURE, prediction_key=PROBABILITIES) if task.evaluates_labels else {}
    model_spec = tfma.ModelSpec(signature_name=task.eval_signature, model_type=tfma.TF_GENERIC,
                                preprocessing_function_names=["transform_features"], **labels)
    metrics = [tfma.MetricConfig(class_name="ExampleCount")]
    for module_name, class_name, name, settings in task.metric_configs(config):
        metrics.append(tfma.MetricConfig(class_name=class_name, module=module_name, config=json.dumps(settings) if settings else "",
                                         per_slice_thresholds=thresholds.get(name, [])))
    return tfma.EvalConfig(
        model_specs=[model_spec],
        slicing_specs=slicing_specs(config, family),
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )
