"""What a run produced, read back from ML Metadata once: per family its metrics (overall and per
slice), each threshold with TFMA's verdict on it, blessing, serving check, push, training and
samples; and the data validation the run rests on. The summary, the run record and the report
are all made from this one result.

It is built from the artifacts the run's executions published (cached ones included), never
from the runner's own memory, so it says what the metadata store says. TensorFlow (through
TFMA) is imported only to read an evaluation, and to load a model for its samples.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.data.splits import TEST, split_folder
from components.data.validation_report import read_report
from components.serving.serving_check_report import read_serving_check
from components.training.metrics_file import read_training_metrics
from pipeline.config import Config, branch_task, model_name, node_ids
from pipeline.metadata_connection import open_store
from tasks.base import Threshold

_DONE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


@dataclasses.dataclass
class ThresholdCheck:
    """One threshold of the blessing decision, with the numbers it compared."""

    threshold: Threshold
    kind: str  # "value" or "change"
    candidate: float  # the candidate's metric
    passed: bool
    baseline: Optional[float] = None  # the last blessed model's (change thresholds)
    trivial: Optional[float] = None  # the trivial baseline's own number (floor thresholds)

    @property
    def change(self) -> float:
        return self.candidate - self.baseline

    def describe(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        t = self.threshold
        sign = ">=" if t.higher_is_better else "<="
        if self.kind == "value" and t.floor:
            beaten = "beats" if self.passed else "does not beat"
            reference = f" ({t.trivial_metric} {self.trivial:.4f})" if t.trivial_metric else ""
            strictly = ">" if t.higher_is_better else "<"  # a floor is passed only strictly beyond it
            return (f"{verdict}: {beaten} its trivial baseline{reference}: {t.metric} {self.candidate:.4f} "
                    f"{strictly} {t.bound:.4f} (floor)")
        if self.kind == "value":
            return f"{verdict}: {t.metric} {self.candidate:.4f} {sign} {t.bound:.4f} (value threshold)"
        return (
            f"{verdict}: {t.metric} change {self.change:+.4f} vs baseline {self.baseline:.4f} "
            f"{sign} {t.allowed_change:+.4f} (change threshold)"
        )

    def record(self) -> dict:
        """The check as the run keeps it: metric, candidate, baseline, threshold, pass or fail, in words."""
        limit = self.threshold.bound if self.kind == "value" else self.threshold.allowed_change
        kind = "floor" if self.kind == "value" and self.threshold.floor else self.kind
        return {"metric": self.threshold.metric, "kind": kind, "candidate": self.candidate,
                "baseline": self.baseline, "threshold": limit, "passed": self.passed, "explanation": self.describe()}


@dataclasses.dataclass
class FamilyResult:
    family: str
    task: str  # the task the branch was trained and evaluated as (`tasks.registry`)
    model_name: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    checks: list[ThresholdCheck]
    trivial_baseline: str  # the task's trivial baseline on the test split, in words
    floor_on: bool  # whether beating the trivial baseline was required (evaluation.require_beat_baseline)
    blessed: bool
    pushed_to: Optional[str]
    training: dict[str, float]
    serving_check: Optional[dict] = None  # what components/serving/serving_check.py found
    slices: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # slice name -> metrics
    samples: list[dict] = dataclasses.field(default_factory=list)  # what the model does (Task.samples)


def latest_outputs(store: metadata_store.MetadataStore, pipeline_name: str, node_id: str) -> dict[str, list]:
    """Output artifacts (by output key) of a node's most recent finished execution."""
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    if context is None:
        return {}
    executions = [e for e in store.get_executions_by_context(context.id) if e.last_known_state in _DONE]
    if not executions:
        return {}
    latest = max(executions, key=lambda e: e.id)
    events = [e for e in store.get_events_by_execution_ids([latest.id]) if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    outputs: dict[str, list] = {}
    for event in events:
        outputs.setdefault(event.path.steps[0].key, []).append(artifacts[event.artifact_id])
    return outputs


def overall_metrics(evaluation_uri: str) -> tuple[dict[str, float], dict[str, float]]:
    """(candidate, baseline) metrics of the overall slice; baseline is empty on a first run."""
    candidate: dict[str, float] = {}
    baseline: dict[str, float] = {}
    import tensorflow_model_analysis as tfma

    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        if metrics_for_slice.slice_key.single_slice_keys:
            continue
        for item in metrics_for_slice.metric_keys_and_values:
            if item.key.is_diff:
                continue
            target = baseline if item.key.model_name == "baseline" else candidate
            target[item.key.name] = item.value.double_value.value
    return candidate, baseline


def slice_metrics(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """The candidate's metrics per slice ("length_bucket=64-255 tokens" -> metrics), overall left out."""
    import tensorflow_model_analysis as tfma

    slices: dict[str, dict[str, float]] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        keys = metrics_for_slice.slice_key.single_slice_keys
        if not keys:
            continue
        name = ", ".join(f"{k.column}={_slice_value(k)}" for k in keys)
        for item in metrics_for_slice.metric_keys_and_values:
            if not item.key.is_diff and item.key.model_name != "baseline":
                slices.setdefault(name, {})[item.key.name] = item.value.double_value.value
    return dict(sorted(slices.items(), key=lambda item: _natural_order(item[0])))


def _natural_order(name: str) -> list:
    """Numbers inside a slice name compare as numbers: 64-255 tokens before 256-1023 tokens."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _slice_value(key) -> str:
    kind = key.WhichOneof("kind")
    value = getattr(key, kind)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def failed_thresholds(evaluation_uri: str) -> Optional[set[tuple[str, bool]]]:
    """The thresholds TFMA's validation failed, as (metric, is a change threshold); None when the
    Evaluator wrote no validation result."""
    import tensorflow_model_analysis as tfma

    try:
        result = tfma.load_validation_result(evaluation_uri)
    except (OSError, IndexError, ValueError):
        return None
    return {(failure.metric_key.name, failure.metric_key.is_diff)
            for per_slice in result.metric_validations_per_slice for failure in per_slice.failures}


def blessing_checks(thresholds: list[Threshold], metrics: dict[str, float], baseline: dict[str, float],
                    failed: Optional[set[tuple[str, bool]]]) -> list[ThresholdCheck]:
    """Each threshold with the numbers the Evaluator computed and the verdict TFMA's validation
    gave it (`failed`); a change threshold only where a baseline was compared."""
    checks = []
    for threshold in thresholds:
        value = metrics.get(threshold.metric, math.nan)
        trivial = metrics.get(threshold.trivial_metric or "", math.nan)
        if threshold.bound is not None:
            passed = failed is not None and (threshold.metric, False) not in failed and not math.isnan(value)
            checks.append(ThresholdCheck(threshold, "value", value, passed, trivial=trivial))
        if threshold.max_worsening is not None and threshold.metric in baseline:
            passed = failed is not None and (threshold.metric, True) not in failed
            checks.append(ThresholdCheck(threshold, "change", value, passed, baseline[threshold.metric]))
    return checks


def _custom_int(artifact: metadata_store_pb2.Artifact, name: str) -> int:
    return artifact.custom_properties[name].int_value if name in artifact.custom_properties else 0


@dataclasses.dataclass
class RunResults:
    """A run's results as ML Metadata holds them."""

    families: list[FamilyResult]
    data_validation: Optional[dict]  # the TextValidator's report (components/data/validation_report.py)


def read_run(config: Config) -> RunResults:
    """The results of the workspace's latest run of `config`'s pipeline, read once."""
    store = open_store(config)
    return RunResults(family_results(config, store), data_validation(config, store))


def family_results(config: Config, store: Optional[metadata_store.MetadataStore] = None) -> list[FamilyResult]:
    store = store or open_store(config)
    results = []
    for family in config.trained_families:
        ids = node_ids(config, family)
        evaluation = latest_outputs(store, config.name, ids["evaluator"])
        pushed = latest_outputs(store, config.name, ids["pusher"]).get("pushed_model", [])
        model_run = latest_outputs(store, config.name, ids["trainer"]).get("model_run", [])
        evaluation_uri = evaluation["evaluation"][0].uri if evaluation else None
        metrics, baseline = overall_metrics(evaluation_uri) if evaluation_uri else ({}, {})
        blessing = evaluation.get("blessing", [])
        infra = latest_outputs(store, config.name, ids["serving_check"]).get("blessing", [])
        push = pushed[0] if pushed and _custom_int(pushed[0], "pushed") else None
        training = read_training_metrics(model_run[0].uri) if model_run else {}
        task = branch_task(config, family)
        results.append(
            FamilyResult(
                family=family,
                task=task.name,
                model_name=model_name(config, family),
                metrics=metrics,
                baseline_metrics=baseline,
                checks=blessing_checks(task.thresholds(config.evaluation), metrics, baseline,
                                       failed_thresholds(evaluation_uri) if evaluation_uri else None),
                trivial_baseline=task.trivial_baseline(config.evaluation, metrics),
                floor_on=config.evaluation.require_beat_baseline,
                blessed=bool(blessing and _custom_int(blessing[0], "blessed")),
                pushed_to=push.custom_properties["pushed_destination"].string_value if push else None,
                training=training,
                serving_check=read_serving_check(infra[0].uri) if infra else None,
                slices=slice_metrics(evaluation_uri) if evaluation_uri else {},
                samples=_samples(config, store, family),
            )
        )
    return results


def _samples(config: Config, store: metadata_store.MetadataStore, family: str) -> list[dict]:
    """What the trained model does on the first test examples (`Task.samples`), for the report."""
    count = config.evaluation.report_examples
    if not count:
        return []
    from tfx.utils import path_utils

    model = latest_outputs(store, config.name, node_ids(config, family)["trainer"]).get("model", [])
    examples = latest_outputs(store, config.name, "TextExampleGen").get("examples", [])
    if not model or not examples:
        return []
    return branch_task(config, family).samples(path_utils.serving_model_path(model[0].uri),
                                               split_folder(examples[0].uri, TEST), config.data, count)


def data_validation(config: Config, store: Optional[metadata_store.MetadataStore] = None) -> Optional[dict]:
    """The latest TextValidator report (findings, comparisons, example counts), if any."""
    found = latest_outputs(store or open_store(config), config.name, "TextValidator").get("anomalies", [])
    return read_report(found[0].uri) if found else None


