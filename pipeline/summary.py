"""What a run produced, read back from ML Metadata: per family its metrics (overall and per
slice), blessing, serving check and push.

The summary is built from the artifacts the run's executions published (cached ones
included), never from the runner's own memory, so it says what the metadata store says.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from typing import Optional

import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.data.text_checks import Finding
from components.data.text_validator import read_report
from components.serving.serving_check_report import read_serving_check
from components.training.trainer_module import METRICS_FILE
from models.acceleration_trial import Candidate
from pipeline.config import PAIR_TASKS, Config, branch_task, model_name
from pipeline.evaluation import FLOOR_BASELINES, Threshold, blessing_thresholds, describe_trivial_baseline
from pipeline.metadata_connection import open_store
from pipeline.pipeline import node_ids

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
            reference = f" ({FLOOR_BASELINES[t.metric]} {self.trivial:.4f})" if t.metric in FLOOR_BASELINES else ""
            return (f"{verdict}: {beaten} its trivial baseline{reference}: {t.metric} {self.candidate:.4f} "
                    f"{sign} {t.bound:.4f} (floor)")
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
    task: str  # "language_model", "vae", "classifier", "seq2seq" or "denoise"
    model_name: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    checks: list[ThresholdCheck]
    trivial_baseline: str  # the task's trivial baseline on the eval split, in words
    floor_on: bool  # whether beating the trivial baseline was required (evaluation.require_beat_baseline)
    blessed: bool
    pushed_to: Optional[str]
    training: dict[str, float]
    serving_check: Optional[dict] = None  # what components/serving/serving_check.py found
    slices: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # slice name -> metrics
    samples: list[dict] = dataclasses.field(default_factory=list)  # what the model does (pipeline.model_samples)


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


def blessing_checks(
    config: Config, family: str, metrics: dict[str, float], baseline: dict[str, float]
) -> list[ThresholdCheck]:
    """The thresholds of `pipeline.evaluation`, applied to the numbers the Evaluator computed."""
    checks = []
    for threshold in blessing_thresholds(config, family):
        value = metrics.get(threshold.metric, math.nan)
        trivial = metrics.get(FLOOR_BASELINES.get(threshold.metric, ""), math.nan)
        checks.append(ThresholdCheck(threshold, "value", value, threshold.value_passes(value), trivial=trivial))
        if threshold.max_worsening is not None and threshold.metric in baseline:
            before = baseline[threshold.metric]
            checks.append(ThresholdCheck(threshold, "change", value, threshold.change_passes(value - before), before))
    return checks


def _custom_int(artifact: metadata_store_pb2.Artifact, name: str) -> int:
    return artifact.custom_properties[name].int_value if name in artifact.custom_properties else 0


def family_results(config: Config) -> list[FamilyResult]:
    store = open_store(config)
    results = []
    for family in config.trained_families:
        ids = node_ids(config, family)
        evaluation = latest_outputs(store, config.name, ids["evaluator"])
        pushed = latest_outputs(store, config.name, ids["pusher"]).get("pushed_model", [])
        model_run = latest_outputs(store, config.name, ids["trainer"]).get("model_run", [])
        metrics, baseline = overall_metrics(evaluation["evaluation"][0].uri) if evaluation else ({}, {})
        blessing = evaluation.get("blessing", [])
        infra = latest_outputs(store, config.name, ids["serving_check"]).get("blessing", [])
        push = pushed[0] if pushed and _custom_int(pushed[0], "pushed") else None
        training = {}
        if model_run:
            path = os.path.join(model_run[0].uri, METRICS_FILE)
            if os.path.exists(path):
                with open(path) as f:
                    training = json.load(f)
        results.append(
            FamilyResult(
                family=family,
                task=branch_task(config, family),
                model_name=model_name(config, family),
                metrics=metrics,
                baseline_metrics=baseline,
                checks=blessing_checks(config, family, metrics, baseline),
                trivial_baseline=describe_trivial_baseline(config, family, metrics),
                floor_on=config.evaluation.require_beat_baseline,
                blessed=bool(blessing and _custom_int(blessing[0], "blessed")),
                pushed_to=push.custom_properties["pushed_destination"].string_value if push else None,
                training=training,
                serving_check=read_serving_check(infra[0].uri) if infra else None,
                slices=slice_metrics(evaluation["evaluation"][0].uri) if evaluation else {},
                samples=_samples(config, store, family),
            )
        )
    return results


def _samples(config: Config, store: metadata_store.MetadataStore, family: str) -> list[dict]:
    """What the trained model does on the first eval examples (`pipeline.model_samples`), for the report."""
    task = branch_task(config, family)
    count = config.evaluation.report_examples
    if not count:
        return []
    from tfx.utils import path_utils

    from pipeline import model_samples

    model = latest_outputs(store, config.name, node_ids(config, family)["trainer"]).get("model", [])
    examples = latest_outputs(store, config.name, "TextExampleGen").get("examples", [])
    if not model or not examples:
        return []
    path = path_utils.serving_model_path(model[0].uri)
    text = config.data.first_text_column
    if task == "classifier":
        records = model_samples.eval_records(examples[0].uri, model_samples.CLASSIFIED_EXAMPLES)
        return model_samples.classifier_samples(path, records, text, config.data.label_column, count)
    records = model_samples.eval_records(examples[0].uri, count)
    if task in PAIR_TASKS:
        return model_samples.seq2seq_samples(path, records)
    if task == "vae":
        return model_samples.vae_samples(path, records, text)
    return model_samples.language_model_samples(path, records, text)


def data_validation(config: Config) -> Optional[dict]:
    """The latest TextValidator report (findings, comparisons, example counts), if any."""
    found = latest_outputs(open_store(config), config.name, "TextValidator").get("anomalies", [])
    return read_report(found[0].uri) if found else None


def describe_data(report: Optional[dict]) -> list[str]:
    """The data lines of the summary: counts, drift and skew measured, and every finding."""
    if report is None:
        return []
    counts = report["examples"]
    lines = [f"  data: {counts['train']} train / {counts['eval']} eval examples, span {report['span']}"]
    for kind, against in (("skew", "eval against train"), ("drift", f"train against span {report['previous_span']}")):
        if report[kind]:
            measured = ", ".join(f"{m['feature']} {m['value']:.3f} (limit {m['threshold']:g})" for m in report[kind])
            lines.append(f"    {kind}, {against}: {measured}")
    if report["previous_span"] is None:
        lines.append("    drift: not measured (no earlier span)")
    findings = [Finding(**f) for f in report["findings"]]
    lines += [f"    {f.line()}" for f in findings] or ["    no data findings"]
    return lines


def _headline(r: FamilyResult) -> str:
    m = r.metrics
    if r.task == "classifier":
        return (
            f"accuracy {m.get('accuracy', math.nan):.4f}, AUC {m.get('auc', math.nan):.4f}, "
            f"macro precision {m.get('macro_precision', math.nan):.4f}, macro recall {m.get('macro_recall', math.nan):.4f}"
        )
    if r.task in ("seq2seq", "denoise"):
        scores = [f"BLEU {m.get('bleu', math.nan):.2f}", f"chrF {m.get('chrf', math.nan):.2f}"]
        return (  # the score the task is judged by first
            f"{', '.join(scores if r.task == 'seq2seq' else scores[::-1])} on "
            f"{int(m.get('decoded_examples', 0))} decoded eval examples, cross-entropy "
            f"{m.get('cross_entropy_per_token', math.nan):.4f} nats/target token (teacher-forced), token accuracy "
            f"{m.get('token_accuracy', math.nan):.3f}"
        )
    if r.task == "vae":
        return (
            f"negative ELBO {m.get('negative_elbo_per_token', math.nan):.4f} nats/token (bounds cross-entropy), "
            f"KL {m.get('kl_per_sequence', math.nan):.2f} nats/text, reconstruction accuracy "
            f"{m.get('reconstruction_accuracy', math.nan):.3f} teacher-forced / "
            f"{m.get('sampled_reconstruction_accuracy', math.nan):.3f} sampled "
            f"({m.get('shuffled_z_sampled_accuracy', math.nan):.3f} from another text's z), edit similarity "
            f"{m.get('edit_similarity', math.nan):.3f}, z worth {m.get('shuffled_z_nll_gap', math.nan):.2f} nats/text, "
            f"{int(m.get('active_units', 0))} active latent units"
        )
    return (
        f"cross-entropy {m.get('cross_entropy_per_token', math.nan):.4f} nats/token "
        f"({m.get('bits_per_token', math.nan):.3f} bits), perplexity {m.get('perplexity', math.nan):.2f}, "
        f"token accuracy {m.get('token_accuracy', math.nan):.3f}"
    )


def format_summary(results: list[FamilyResult], validation: Optional[dict] = None) -> str:
    """The end-of-run summary the CLI prints."""
    lines = ["", "Summary", *describe_data(validation)]
    for r in results:
        kind = f" {r.task}" if r.task in ("classifier", "seq2seq", "denoise") else ""
        lines.append(
            f"  {r.family}{kind} ({r.model_name}, {int(r.training.get('parameters', 0)):,} parameters): "
            f"{_headline(r)}, {int(r.metrics.get('example_count', 0))} eval examples"
        )
        lines.append(f"    {r.trivial_baseline}")
        lines += describe_training(r.training)
        lines += _describe_slices(r)
        if not r.baseline_metrics:
            lines.append("    baseline: none (no blessed model of this family yet)")
        lines.append(f"    {'BLESSED' if r.blessed else 'NOT BLESSED'}:")
        lines += [f"      {check.describe()}" for check in r.checks]
        lines += _describe_serving_check(r.serving_check)
        lines.append(f"    pushed to {r.pushed_to}" if r.pushed_to else "    not pushed")
    generative = [r for r in results if r.task in ("language_model", "vae")]
    if len(generative) > 1:
        side_by_side = ", ".join(f"{r.family} {_nats_per_token(r):.4f}" for r in generative)
        lines.append(f"  nats per eval token (cross-entropy; hvae: negative ELBO, an upper bound): {side_by_side}")
    return "\n".join(lines)


def describe_training(training: dict) -> list[str]:
    """How the Trainer ran: how long and on how much data, then replicas, precision and padding."""
    lines = []
    if "steps" in training:
        stopped = "stopped early" if training.get("stopped_early") else "ran to the end"
        lines.append(
            f"    trained {training['steps']:,} steps ({training['epochs']:.2f} epochs, {training['examples_seen']:,} "
            f"examples of {training['train_examples']:,} training texts; size {training.get('size')}), {stopped}; "
            f"kept the weights of step {training['best_step']:,} (eval loss {training.get('val_loss', math.nan):.4f})"
        )
    if "padding_share" in training:
        lines.append(
            f"    trained on {training.get('replicas', 1)} replica(s) in {training.get('precision', 'float32')}, "
            f"{training.get('batching')} batches: {training['padding_share']:.1%} padding "
            f"({training['padding_share_at_full_length']:.1%} at the full sequence length)"
        )
    chosen = training.get("acceleration")
    if chosen and chosen.get("reason") != "set in the config":
        label = Candidate(chosen["precision"], bool(chosen.get("jit_compile"))).label
        if chosen.get("cached"):
            how = "from the cached trial"
        else:
            how = f"trials took {chosen['trial_seconds']:.0f} s" if chosen.get("trial_seconds") else "no trial"
        lines.append(f"    precision and XLA auto: {label} ({how}): {chosen['reason']}")
    return lines


def _describe_slices(r: FamilyResult) -> list[str]:
    """One line per sliced feature: the blessing metric and example count of each of its slices."""
    metric = r.checks[0].threshold.metric if r.checks else None
    by_feature: dict[str, list[str]] = {}
    for name, values in r.slices.items():
        feature, _, value = name.partition("=")
        by_feature.setdefault(feature, []).append(
            f"{value} {values.get(metric, math.nan):.4f} ({int(values.get('example_count', 0))})"
        )
    return [f"    {metric} by {feature}: {', '.join(parts)}" for feature, parts in by_feature.items()]


def _describe_serving_check(found: Optional[dict]) -> list[str]:
    """The serving check's verdict in a line or two (and each problem it found)."""
    if found is None:
        return ["    serving check: not run"]
    latency = found.get("latency")
    timing = (f"serving_default p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms "
              f"({latency['requests']} requests of {latency['batch_size']})" if latency else "no latency measured")
    signatures = len(found.get("signatures", {}))
    verdict = "passed" if found["blessed"] else "FAILED"
    return [f"    serving check {verdict}: {signatures} signatures called in a separate process; {timing}"] + [
        f"      {problem}" for problem in found["problems"]
    ]


def _nats_per_token(r: FamilyResult) -> float:
    """The number the generative families share (DESIGN.md section 5)."""
    return r.metrics.get("negative_elbo_per_token" if r.task == "vae" else "cross_entropy_per_token", math.nan)
