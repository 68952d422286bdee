"""What the Evaluator computes and what a model must reach to be blessed, per task.

The thresholds are listed once, here: `eval_config` turns them into TFMA's config and the
run summary (`pipeline.summary`) checks the same list against the numbers TFMA wrote.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow_model_analysis as tfma

from components.classifier_metrics import PROBABILITIES
from components.transform_module import LABEL_FEATURE, LENGTH_BUCKET_FEATURE
from pipeline.config import Config, branch_task

LM_METRICS_MODULE = "components.lm_metrics"
CLASSIFIER_METRICS_MODULE = "components.classifier_metrics"
VAE_METRICS_MODULE = "components.vae_metrics"


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A value threshold on one metric and, optionally, how much worse than the baseline it may get."""

    metric: str
    bound: float  # lowest (higher_is_better) or highest allowed value
    higher_is_better: bool
    max_worsening: Optional[float] = None  # change threshold against the last blessed model

    def value_passes(self, value: float) -> bool:
        return value >= self.bound if self.higher_is_better else value <= self.bound

    @property
    def allowed_change(self) -> float:
        """The signed change limit: -max_worsening when higher is better, else +max_worsening."""
        return -self.max_worsening if self.higher_is_better else self.max_worsening

    def change_passes(self, change: float) -> bool:
        return change >= self.allowed_change if self.higher_is_better else change <= self.allowed_change


def blessing_thresholds(config: Config, family: str) -> list[Threshold]:
    """The thresholds a family's candidate must pass; change thresholds compare it with the
    last blessed model of the same branch."""
    limits = config.evaluation
    task = branch_task(config, family)
    if task == "classifier":
        return [
            Threshold("accuracy", limits.min_accuracy, True, limits.max_accuracy_drop),
            Threshold("auc", limits.min_auc, True),
        ]
    # The VAE's negative ELBO bounds its cross-entropy per token from above: same limits.
    metric = "negative_elbo_per_token" if task == "vae" else "cross_entropy_per_token"
    return [Threshold(metric, limits.max_cross_entropy, False, limits.max_increase)]


def _tfma_threshold(threshold: Threshold) -> tfma.MetricThreshold:
    bound = {"lower_bound" if threshold.higher_is_better else "upper_bound": {"value": threshold.bound}}
    change = None
    if threshold.max_worsening is not None:
        direction = tfma.MetricDirection.HIGHER_IS_BETTER if threshold.higher_is_better else tfma.MetricDirection.LOWER_IS_BETTER
        change = tfma.GenericChangeThreshold(direction=direction, absolute={"value": threshold.allowed_change})
    return tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(**bound), change_threshold=change)


def slicing_specs(config: Config, family: str) -> list[tfma.SlicingSpec]:
    """The whole eval split, each text-length bucket (a Transform output) and, for a
    classifier, each label value (a raw feature)."""
    specs = [tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[LENGTH_BUCKET_FEATURE])]
    if branch_task(config, family) == "classifier":
        specs.append(tfma.SlicingSpec(feature_keys=[config.data.label_column]))
    return specs


def eval_config(config: Config, family: str) -> tfma.EvalConfig:
    """TFMA config for one family's Evaluator: its task's metrics over the whole eval split and
    its slices, with its blessing thresholds on the whole split (a threshold without a slicing
    spec would judge every slice).

    The model type is fixed to a generic TF2 SavedModel: TFMA then uses the signatures only,
    instead of first trying to revive the model as Keras layers. Every family's
    `transform_features` runs first, so slices can use the Transform's `length_bucket`."""
    overall = [tfma.SlicingSpec()]
    thresholds = {
        t.metric: [tfma.PerSliceMetricThreshold(slicing_specs=overall, threshold=_tfma_threshold(t))]
        for t in blessing_thresholds(config, family)
    }
    task = branch_task(config, family)
    if task == "classifier":
        module = CLASSIFIER_METRICS_MODULE
        names = {"Accuracy": "accuracy", "AUC": "auc", "MacroPrecision": "macro_precision", "MacroRecall": "macro_recall"}
        # The label is the Transform's class id, so TFMA runs `transform_features` on each example.
        model_spec = tfma.ModelSpec(
            signature_name="serving_default",
            model_type=tfma.TF_GENERIC,
            preprocessing_function_names=["transform_features"],
            label_key=LABEL_FEATURE,
            prediction_key=PROBABILITIES,
        )
    elif task == "vae":
        module = VAE_METRICS_MODULE
        names = {
            "NegativeElboPerToken": "negative_elbo_per_token", "KLPerSequence": "kl_per_sequence",
            "ReconstructionAccuracy": "reconstruction_accuracy",
            "SampledReconstructionAccuracy": "sampled_reconstruction_accuracy", "ActiveUnits": "active_units",
        }
        # `evaluate` also returns what serving does not need: greedy reconstructions, mu.
        model_spec = tfma.ModelSpec(signature_name="evaluate", model_type=tfma.TF_GENERIC,
                                    preprocessing_function_names=["transform_features"])
    else:
        module = LM_METRICS_MODULE
        names = {"CrossEntropyPerToken": "cross_entropy_per_token", "Perplexity": "perplexity", "BitsPerToken": "bits_per_token",
                 "TokenAccuracy": "token_accuracy"}
        model_spec = tfma.ModelSpec(signature_name="serving_default", model_type=tfma.TF_GENERIC,
                                    preprocessing_function_names=["transform_features"])
    metrics = [tfma.MetricConfig(class_name="ExampleCount")]
    for class_name, name in names.items():
        metrics.append(tfma.MetricConfig(class_name=class_name, module=module, per_slice_thresholds=thresholds.get(name, [])))
    return tfma.EvalConfig(
        model_specs=[model_spec],
        slicing_specs=slicing_specs(config, family),
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )
