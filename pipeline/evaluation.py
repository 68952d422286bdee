"""What the Evaluator computes and what a model must reach to be blessed, per task.

The thresholds are listed once, here: `eval_config` turns them into TFMA's config and the
run summary (`pipeline.summary`) checks the same list against the numbers TFMA wrote.

Besides the configured limits, every task has a floor: its trivial baseline on the same eval
split, computed by the Evaluator itself (the majority class for a classifier, the train split's
unigram model for a language model or the VAE). The floor is a value threshold on a metric that
measures the margin over that baseline (`accuracy_above_chance`, `cross_entropy_below_unigram`,
`negative_elbo_below_unigram`), so it is part of TFMA's blessing like every other threshold:
a model below it is neither blessed, nor pushed, nor the next run's comparison baseline.
`evaluation.require_beat_baseline: false` leaves the floor out (the metrics are still computed).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow_model_analysis as tfma

from components.evaluation.classifier_metrics import CHANCE_STANDARD_ERRORS, PROBABILITIES, chance_accuracy_floor
from components.training.transform_module import LABEL_FEATURE, LENGTH_BUCKET_FEATURE
from pipeline.config import Config, branch_task

LM_METRICS_MODULE = "components.evaluation.lm_metrics"
CLASSIFIER_METRICS_MODULE = "components.evaluation.classifier_metrics"
VAE_METRICS_MODULE = "components.evaluation.vae_metrics"
UNIGRAM_METRICS_MODULE = "components.evaluation.unigram_metrics"
SEQ2SEQ_METRICS_MODULE = "components.evaluation.seq2seq_metrics"
# The floor metric of each task and the trivial baseline's own number it is measured against.
FLOOR_BASELINES = {
    "accuracy_above_chance": "majority_class_accuracy",
    "cross_entropy_below_unigram": "unigram_cross_entropy",
    "negative_elbo_below_unigram": "unigram_cross_entropy",
    "bleu_above_copy": "copy_bleu",
    "chrf_above_copy": "copy_chrf",
}
# What a pair task's decoded output is judged by: (metric, its floor metric, config keys of the limits).
PAIR_SCORES = {"seq2seq": ("bleu", "bleu_above_copy", "min_bleu", "max_bleu_drop"),
               "denoise": ("chrf", "chrf_above_copy", "min_chrf", "max_chrf_drop")}


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A value threshold on one metric and, optionally, how much worse than the baseline it may get."""

    metric: str
    bound: float  # lowest (higher_is_better) or highest allowed value
    higher_is_better: bool
    max_worsening: Optional[float] = None  # change threshold against the last blessed model
    floor: bool = False  # the trivial-baseline floor (see the module docstring)

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
    floor = limits.require_beat_baseline
    task = branch_task(config, family)
    if task == "classifier":
        thresholds = [
            Threshold("accuracy", limits.min_accuracy, True, limits.max_accuracy_drop),
            Threshold("auc", max(limits.min_auc, limits.baseline_min_auc) if floor else limits.min_auc, True,
                      floor=floor and limits.baseline_min_auc > limits.min_auc),
        ]
        return thresholds + ([Threshold("accuracy_above_chance", 0.0, True, floor=True)] if floor else [])
    if task in PAIR_SCORES:
        metric, above_copy, minimum, max_drop = PAIR_SCORES[task]
        thresholds = [Threshold(metric, getattr(limits, minimum), True, getattr(limits, max_drop))]
        return thresholds + ([Threshold(above_copy, 0.0, True, floor=True)] if floor else [])
    # The VAE's negative ELBO bounds its cross-entropy per token from above: same limits.
    metric = "negative_elbo_per_token" if task == "vae" else "cross_entropy_per_token"
    thresholds = [Threshold(metric, limits.max_cross_entropy, False, limits.max_increase)]
    if floor:
        below = "negative_elbo_below_unigram" if task == "vae" else "cross_entropy_below_unigram"
        thresholds.append(Threshold(below, limits.baseline_margin, True, floor=True))
    return thresholds


def describe_trivial_baseline(config: Config, family: str, metrics: dict[str, float]) -> str:
    """The task's trivial baseline on the eval split and what beating it takes, in words."""
    limits = config.evaluation
    task = branch_task(config, family)
    state = "" if limits.require_beat_baseline else " (floor off: evaluation.require_beat_baseline is false)"
    nan = float("nan")
    if task == "classifier":
        majority = metrics.get("majority_class_accuracy", nan)
        examples = int(metrics.get("example_count", 0))
        needed = chance_accuracy_floor(majority, examples)
        too_few = (" (above 1: this eval split is too small to show that any model beats a constant answer)"
                   if needed > 1 else "")
        return (f"trivial baseline: majority class accuracy {majority:.4f} on {examples} eval examples; beating it takes "
                f"accuracy >= {needed:.4f} (+{CHANCE_STANDARD_ERRORS:g} standard errors) and AUC >= "
                f"{max(limits.min_auc, limits.baseline_min_auc):.2f}{too_few}{state}")
    if task in PAIR_SCORES:
        metric = PAIR_SCORES[task][0]
        copy = metrics.get(f"copy_{metric}", nan)
        copied = "the corrupted input" if task == "denoise" else "the source"
        return (f"trivial baseline: copying {copied}, {metric} {copy:.2f} on {int(metrics.get('decoded_examples', 0))} "
                f"decoded eval examples; beating it takes {metric} above {copy:.2f}{state}")
    unigram = metrics.get("unigram_cross_entropy", nan)
    what = "negative ELBO" if task == "vae" else "cross-entropy"
    return (f"trivial baseline: the train split's unigram model, {unigram:.4f} nats/token on the eval split; beating it "
            f"takes {what} <= {unigram - limits.baseline_margin:.4f} ({limits.baseline_margin:g} below){state}")


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
        names = {"Accuracy": "accuracy", "AUC": "auc", "MacroPrecision": "macro_precision", "MacroRecall": "macro_recall",
                 "MajorityClassAccuracy": "majority_class_accuracy", "AccuracyAboveChance": "accuracy_above_chance"}
        # The label is the Transform's class id, so TFMA runs `transform_features` on each example.
        model_spec = tfma.ModelSpec(
            signature_name="serving_default",
            model_type=tfma.TF_GENERIC,
            preprocessing_function_names=["transform_features"],
            label_key=LABEL_FEATURE,
            prediction_key=PROBABILITIES,
        )
    elif task in PAIR_SCORES:
        module = SEQ2SEQ_METRICS_MODULE
        names = {"CorpusBleu": "bleu", "CorpusChrf": "chrf",  # not "Bleu": TFMA has its own by that name
                 "CopyBleu": "copy_bleu", "CopyChrf": "copy_chrf",
                 "BleuAboveCopy": "bleu_above_copy", "ChrfAboveCopy": "chrf_above_copy",
                 "DecodedExamples": "decoded_examples"}
        # `evaluate` scores the targets teacher-forced and decodes a sample with beam search.
        model_spec = tfma.ModelSpec(signature_name="evaluate", model_type=tfma.TF_GENERIC,
                                    preprocessing_function_names=["transform_features"])
    elif task == "vae":
        module = VAE_METRICS_MODULE
        names = {
            "NegativeElboPerToken": "negative_elbo_per_token", "KLPerSequence": "kl_per_sequence",
            "ReconstructionAccuracy": "reconstruction_accuracy",
            "SampledReconstructionAccuracy": "sampled_reconstruction_accuracy", "ActiveUnits": "active_units",
            "ShuffledZSampledAccuracy": "shuffled_z_sampled_accuracy", "EditSimilarity": "edit_similarity",
            "ShuffledZEditSimilarity": "shuffled_z_edit_similarity", "ShuffledZNllGap": "shuffled_z_nll_gap",
        }
        unigram = {"UnigramCrossEntropy": "unigram_cross_entropy", "NegativeElboBelowUnigram": "negative_elbo_below_unigram"}
        # `evaluate` also returns what serving does not need: greedy reconstructions, mu.
        model_spec = tfma.ModelSpec(signature_name="evaluate", model_type=tfma.TF_GENERIC,
                                    preprocessing_function_names=["transform_features"])
    else:
        module = LM_METRICS_MODULE
        names = {"CrossEntropyPerToken": "cross_entropy_per_token", "Perplexity": "perplexity", "BitsPerToken": "bits_per_token",
                 "TokenAccuracy": "token_accuracy"}
        unigram = {"UnigramCrossEntropy": "unigram_cross_entropy", "CrossEntropyBelowUnigram": "cross_entropy_below_unigram"}
        model_spec = tfma.ModelSpec(signature_name="serving_default", model_type=tfma.TF_GENERIC,
                                    preprocessing_function_names=["transform_features"])
    metrics = [tfma.MetricConfig(class_name="ExampleCount")]
    if task in PAIR_SCORES:
        cross_entropy = {"CrossEntropyPerToken": "cross_entropy_per_token", "Perplexity": "perplexity",
                         "TokenAccuracy": "token_accuracy"}
        modules = [(module, names), (LM_METRICS_MODULE, cross_entropy)]
    else:
        modules = [(module, names)] + ([(UNIGRAM_METRICS_MODULE, unigram)] if task != "classifier" else [])
    for module_name, module_metrics in modules:
        for class_name, name in module_metrics.items():
            metrics.append(tfma.MetricConfig(class_name=class_name, module=module_name,
                                             per_slice_thresholds=thresholds.get(name, [])))
    return tfma.EvalConfig(
        model_specs=[model_spec],
        slicing_specs=slicing_specs(config, family),
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )
