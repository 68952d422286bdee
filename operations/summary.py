"""The end-of-run summary the CLI prints, from a run's results (`operations.results`): the
data, then per family its headline metrics (its task's words), trivial baseline, training,
slices, each threshold's verdict, serving check and push."""

from __future__ import annotations

import math
from typing import Optional

from components.data.validation_report import Finding
from models.runtime.acceleration_trial import Candidate
from operations.results import FamilyResult
from tasks import registry as tasks


def describe_data(report: Optional[dict]) -> list[str]:
    """The data lines of the summary: counts, drift and skew measured, and every finding."""
    if report is None:
        return []
    counts = report["examples"]
    lines = [f"  data: {' / '.join(f'{n} {split}' for split, n in counts.items())} examples, span {report['span']}"]
    compared = [(f"skew, {split} against train", [m for m in report["skew"] if m.get("split", "eval") == split])
                for split in dict.fromkeys(m.get("split", "eval") for m in report["skew"])]
    compared.append((f"drift, train against span {report['previous_span']}", report["drift"]))
    for what, measurements in compared:
        if measurements:
            measured = ", ".join(f"{m['feature']} {m['value']:.3f} (limit {m['threshold']:g})" for m in measurements)
            lines.append(f"    {what}: {measured}")
    if report["previous_span"] is None:
        lines.append("    drift: not measured (no earlier span)")
    findings = [Finding(**f) for f in report["findings"]]
    lines += [f"    {f.line()}" for f in findings] or ["    no data findings"]
    return lines


def format_summary(results: list[FamilyResult], validation: Optional[dict] = None) -> str:
    """The end-of-run summary the CLI prints."""
    lines = ["", "Summary", *describe_data(validation)]
    for r in results:
        task = tasks.get(r.task)
        lines.append(
            f"  {r.family}{task.summary_label} ({r.model_name}, {int(r.training.get('parameters', 0)):,} parameters): "
            f"{task.headline(r.metrics)}, {int(r.metrics.get('example_count', 0))} test examples"
        )
        lines.append(f"    {r.trivial_baseline}")
        lines += describe_training(r.training)
        lines += _describe_slices(r)
        if not r.baseline_metrics:
            lines.append("    baseline: none (no blessed model of this family yet)")
        lines.append(f"    {'BLESSED' if r.blessed else 'NOT BLESSED'}:")
        lines += [f"      {check.describe()}" for check in r.checks]
        if not r.checks:
            lines.append("      no threshold had anything to check: no value bound is set (evaluation.max_cross_entropy is "
                         "null for word and subword tokens), no earlier blessed model, and the floor is off")
        lines += _describe_serving_check(r.serving_check)
        lines.append(f"    pushed to {r.pushed_to}" if r.pushed_to else "    not pushed")
    generative = [r for r in results if tasks.get(r.task).nats_per_token]
    if len(generative) > 1:
        side_by_side = ", ".join(f"{r.family} {_nats_per_token(r):.4f}" for r in generative)
        lines.append(f"  nats per test token (cross-entropy; hvae: negative ELBO, an upper bound): {side_by_side}")
    return "\n".join(lines)


def _kept_by(training: dict) -> str:
    """The validation numbers of the kept weights: the loss, and the metric that chose them if another."""
    chosen = training.get("selected_by", "val_loss")
    loss = f"validation loss {training.get('val_loss', math.nan):.4f}"
    if chosen == "val_loss":
        return loss
    return f"the best {chosen.removeprefix('val_').replace('_', ' ')} on validation, {training.get(chosen, math.nan):.4f}; {loss}"


def describe_start(start: dict) -> str:
    """The lineage of a fine-tuned model: the pushed model it started from and what it loaded."""
    trained_on = start.get("trained_on", {})
    loaded = (f"loaded {', '.join(start['loaded_layers'])}; new {', '.join(start['new_layers'])}; the loaded layers"
              if start["new_layers"] else "the whole model loaded,")
    return (f"initialised from {start['model']} version {start['version']} (its {start['task']}, trained on "
            f"{trained_on.get('train_examples', 0):,} texts): {loaded} at {start['loaded_rate']:g}x the learning rate"
            + (f", frozen for the first {start['frozen_steps']:,} steps" if start["frozen_steps"] else "")
            + (f"; its language modelling loss kept at weight {start['lm_weight']:g}" if start.get("lm_weight") else "")
            + (f"; pooling {start['pooling']}" if start.get("pooling", "max") != "max" else ""))


def describe_training(training: dict) -> list[str]:
    """How the Trainer ran: how long and on how much data, then replicas, precision and padding."""
    lines = []
    if "steps" in training:
        if training.get("stopped_at_budget"):
            stopped = (f"stopped at its {training['train_minutes']:g}-minute budget of {training['planned_steps']:,} "
                       f"planned steps")
        else:
            stopped = "stopped early" if training.get("stopped_early") else "ran to the end"
        tokens = f", {training['train_tokens']:,} tokens" if "train_tokens" in training else ""
        lines.append(
            f"    trained {training['steps']:,} steps ({training['epochs']:.2f} epochs, {training['examples_seen']:,} "
            f"examples of {training['train_examples']:,} training texts{tokens}; size {training.get('size')}), {stopped}; "
            f"kept the weights of step {training['best_step']:,} ({_kept_by(training)})"
        )
    start = training.get("initialised_from")
    if start:
        lines.append("    " + describe_start(start))
    if training.get("workers", 1) > 1:
        lines.append(
            f"    trained by {training['workers']} workers ({training['replicas']} replicas, global batch "
            f"{training['global_batch']}, sharded by {training['shard']})"
            + (f"; resumed from the backup at step {training['resumed_at_step']:,}" if training.get("resumed_at_step") else ""))
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
    metric = tasks.get(r.task).key_metric(r.metrics)
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
    """The number the generative families share: cross-entropy per token, or the VAE's bound on it."""
    return r.metrics.get(tasks.get(r.task).nats_per_token, math.nan)
