"""Checks on text that TFDV does not make by default, each found problem a `Finding` in words.

Every finding has a kind (the unit of the gate policy: `block` or `warn`), the split and
feature it concerns, a sentence saying what is wrong and why it matters, and a few examples
(split, position in the split, the start of the text) so a person can find the rows.
"""

from __future__ import annotations

import collections
from typing import Optional

import numpy as np

from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.data.text_profile import SplitText
from components.data.validation_report import Finding

KINDS = ("schema", "empty_text", "text_too_long", "out_of_vocabulary", "unseen_label", "missing_class",
         "duplicate_across_splits", "drift", "skew")
_SHOWN_EXAMPLES = 3
_VALUE_OUTSIDE_DOMAIN = (anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES,
                         anomalies_pb2.AnomalyInfo.BOOL_TYPE_UNEXPECTED_STRING)


def _snippet(split: SplitText, index: int, width: int = 50) -> str:
    text = split.texts[index]
    shown = repr(text if len(text) <= width else text[:width] + "...")
    return f"{split.name} example {index + 1}: {shown}"


def empty_texts(split: SplitText, text_column: str) -> list[Finding]:
    rows = [i for i, text in enumerate(split.texts) if not text.strip()]
    if not rows:
        return []
    return [Finding("empty_text", split.name, text_column,
                    f"{len(rows)} of {len(split.texts)} texts are empty or only whitespace; a model learns nothing "
                    f"from them and they distort the length statistics",
                    [_snippet(split, i) for i in rows[:_SHOWN_EXAMPLES]], value=len(rows), limit=0)]


def long_texts(split: SplitText, text_column: str, max_tokens: int) -> list[Finding]:
    lengths = split.lengths
    rows = [int(i) for i in (lengths > max_tokens).nonzero()[0]]
    if not rows:
        return []
    return [Finding("text_too_long", split.name, text_column,
                    f"{len(rows)} texts are longer than {max_tokens} tokens (the schema's max_sequence_length; "
                    f"longest {int(lengths.max())}): often several records fused into one by a broken delimiter",
                    [_snippet(split, i) for i in rows[:_SHOWN_EXAMPLES]], value=int(lengths.max()), limit=max_tokens)]


def coverage_findings(anomalies: anomalies_pb2.Anomalies, split: str, text_column: str,
                      coverage: float, min_coverage: float, vocabulary: str) -> list[Finding]:
    """TFDV's natural-language coverage anomalies (FEATURE_COVERAGE_*) of the text column, as findings."""
    info = anomalies.anomaly_info.get(text_column)
    reasons = [r for r in (info.reason if info else []) if anomalies_pb2.AnomalyInfo.Type.Name(r.type).startswith("FEATURE_COVERAGE")]
    if not reasons:
        return []
    return [Finding("out_of_vocabulary", split, text_column,
                    f"{1 - coverage:.1%} of the tokens are not in {vocabulary} (at most "
                    f"{1 - min_coverage:.1%} allowed): the model reads each of them as the one unknown token. "
                    f"TFDV: {' '.join(r.description for r in reasons)}", value=round(coverage, 4), limit=min_coverage)]


def label_findings(train: SplitText, evaluation: SplitText, label_column: str) -> list[Finding]:
    """A label (a tagger's: a tag) a held-out split (`evaluation`) has and train lacks (the model
    cannot predict it), and a class with no example there (not for tags: a rare tag missing from
    a held-out split is no reason to stop, and the per-tag table shows it has no support)."""
    train_counts = collections.Counter(train.label_values)
    eval_counts = collections.Counter(evaluation.label_values)
    rows_of = evaluation.tags if evaluation.tags is not None else [[label] for label in evaluation.labels]
    unit = "tokens" if evaluation.tags is not None else "examples"
    findings = []
    for label in sorted(set(eval_counts) - set(train_counts)):
        rows = [i for i, values in enumerate(rows_of) if label in values]
        findings.append(Finding("unseen_label", evaluation.name, label_column,
                                f"label {label!r} ({eval_counts[label]} {unit}) never occurs in train: no class of "
                                f"the model can predict it", [_snippet(evaluation, i) for i in rows[:_SHOWN_EXAMPLES]]))
    if evaluation.tags is not None:
        return findings
    for label in sorted(set(train_counts) - set(eval_counts)):
        findings.append(Finding("missing_class", evaluation.name, label_column,
                                f"class {label!r} ({train_counts[label]} train examples) has no {evaluation.name} "
                                f"example: how well the model predicts it cannot be measured there"))
    return findings


def duplicates_across_splits(train: SplitText, evaluation: SplitText, text_column: str) -> list[Finding]:
    """Held-out texts that also occur in train, exactly: that split then overstates quality on new text."""
    seen = {text for text in train.texts if text.strip()}
    rows = [i for i, text in enumerate(evaluation.texts) if text in seen]
    if not rows:
        return []
    name = evaluation.name
    return [Finding("duplicate_across_splits", f"train/{name}", text_column,
                    f"{len(rows)} of {len(evaluation.texts)} {name} texts also occur in train, word for word: the "
                    f"{name} split's numbers then overstate how the model does on text it has not seen",
                    [_snippet(evaluation, i) for i in rows[:_SHOWN_EXAMPLES]], value=len(rows), limit=0)]


def length_ratio_skew(train: SplitText, evaluation: SplitText, source: SplitText, source_train: SplitText,
                      target_column: str, limit: float) -> list[Finding]:
    """Skew of the target-to-source length ratio (tokens) between the splits: Jensen-Shannon
    divergence of its histograms. A translation or summary whose held-out targets are relatively
    longer or shorter than the train split's asks the model for output it was not trained to write."""
    def ratios(targets: SplitText, sources: SplitText) -> np.ndarray:
        return np.log2((targets.lengths + 1) / (sources.lengths + 1))

    edges = np.linspace(-3, 3, 25)
    histograms = [np.histogram(np.clip(ratios(t, s), -3, 3), bins=edges)[0] + 1e-9
                  for t, s in ((train, source_train), (evaluation, source))]
    p, q = (h / h.sum() for h in histograms)
    mean = (p + q) / 2
    divergence = float(0.5 * np.sum(p * np.log2(p / mean)) + 0.5 * np.sum(q * np.log2(q / mean)))
    if divergence <= limit:
        return []
    return [Finding("skew", evaluation.name, f"{target_column}/length_ratio",
                    f"Jensen-Shannon divergence {divergence:.3f} of the target-to-source length ratio against the "
                    f"train split, above the limit {limit:g}: the {evaluation.name} targets are relatively longer or shorter",
                    value=round(divergence, 4), limit=limit)]


def comparison_findings(anomalies: anomalies_pb2.Anomalies, kind: str, split: str, against: str) -> list[Finding]:
    """Drift or skew measurements above their thresholds, from TFDV's drift_skew_info;
    `against` says what `split` was compared with ("the previous span's train split")."""
    findings = []
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        measurements = info.drift_measurements if kind == "drift" else info.skew_measurements
        for m in measurements:
            if m.value <= m.threshold:
                continue
            measure = "Jensen-Shannon divergence" if m.type == m.JENSEN_SHANNON_DIVERGENCE else "L-infinity distance"
            findings.append(Finding(kind, split, feature,
                                    f"{measure} {m.value:.3f} against {against}, above the limit {m.threshold:g}",
                                    value=round(m.value, 4), limit=m.threshold))
    return findings


def schema_findings(anomalies_by_split: dict[str, anomalies_pb2.Anomalies], text_columns: set[str],
                    unseen_labels: Optional[set[tuple[str, str]]] = None) -> list[Finding]:
    """ExampleValidator's anomalies (the data against its schema) as findings of kind `schema`, less
    two it makes about what the text checks report better: "natural language stats are not
    computed" on a text column (StatisticsGen has no token statistics; TextValidator computes them
    and checks the constraints), and an unexpected value of a label column in a split where an
    `unseen_label` finding (split, feature in `unseen_labels`) already names it."""
    findings = []
    for split, anomalies in anomalies_by_split.items():
        for feature, info in sorted(anomalies.anomaly_info.items()):
            reasons = [r for r in info.reason
                       if not (feature in text_columns and r.type == anomalies_pb2.AnomalyInfo.STATS_NOT_AVAILABLE)
                       and not ((split, feature) in (unseen_labels or set())
                                and r.type in _VALUE_OUTSIDE_DOMAIN)]
            if reasons:
                findings.append(Finding("schema", split, feature,
                                        "; ".join(f"{r.short_description} ({r.description})" for r in reasons)))
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            findings.append(Finding("schema", split, "(whole dataset)", f"{info.short_description} ({info.description})"))
    return findings


def as_anomalies(findings: list[Finding], split: str) -> anomalies_pb2.Anomalies:
    """A split's findings in TFDV's Anomalies form (tools that read ExampleAnomalies can show them)."""
    anomalies = anomalies_pb2.Anomalies(anomaly_name_format=anomalies_pb2.Anomalies.SERIALIZED_PATH)
    for finding in findings:
        if split not in finding.split.split("/"):
            continue
        info = anomalies.anomaly_info[finding.feature]
        info.path.step[:] = [finding.feature]
        if finding.action == "block" or info.severity != anomalies_pb2.AnomalyInfo.ERROR:  # the gravest one counts
            info.severity = anomalies_pb2.AnomalyInfo.ERROR if finding.action == "block" else anomalies_pb2.AnomalyInfo.WARNING
        info.reason.add(type=anomalies_pb2.AnomalyInfo.CUSTOM_VALIDATION, short_description=finding.kind,
                        description=finding.explanation)
        info.short_description = finding.kind if len(info.reason) == 1 else "Multiple errors"
        info.description = " ".join(r.description for r in info.reason)
    return anomalies
