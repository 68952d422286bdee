"""TextValidator: text-aware data validation after ExampleValidator, with a gate policy per kind.

ExampleValidator checks each feature against the schema; for a free-text column that says
little. This component reads the examples back, tokenized as Transform will tokenize them,
and adds what a person reviewing text data looks for (`components/data/text_checks.py`):
empty texts, over-long texts, tokens outside the train vocabulary (TFDV's natural-language
coverage check against the schema's `natural_language_domain`), unseen or missing labels,
texts shared by train and eval, drift against the previous span and skew between train and
eval (TFDV comparators: Jensen-Shannon divergence of text lengths and of the token
distribution, L-infinity distance of the labels). ExampleValidator's own anomalies become
findings of kind `schema`. Each finding gets the action its kind has in the policy (`block` or
`warn`); `DataGate` stops the run on any `block`.

Outputs: `statistics` (ExampleStatistics of the derived text features, per split, with the
natural-language statistics of the text column) and `anomalies` (ExampleAnomalies: TFDV's
Anomalies per split, and every finding with the checks' context in `text_validation.json`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.components.common import resolver as resolver_strategy
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import io_utils

from components.data import text_checks
from components.data.splits import SPLITS, TRAIN
from components.data.text_profile import (LENGTH_FEATURE, TOKEN_FEATURE, SplitText, nl_statistics, read_split,
                                     split_profile, read_vocabulary, text_statistics, train_vocabulary)
from components.data.validation_report import REPORT_FILE

STATS_FILE = "FeatureStats.pb"  # where StatisticsGen keeps a split's statistics, so TFX tools read ours too
ANOMALIES_FILE = "SchemaDiff.pb"  # likewise for ExampleValidator's anomalies


@dataclasses.dataclass
class Settings:
    """What the executor needs from the project config (passed as JSON)."""

    text_column: str
    label_column: Optional[str]
    tokenizer: str
    lowercase: bool
    max_vocab_size: int
    drift: dict[str, float]  # text_length_js, token_js, label_linf
    skew: dict[str, float]
    policy: dict[str, str]  # finding kind -> block | warn
    # A seq2seq run's further text columns (more source columns, the target): each is checked
    # for empty and over-long texts as the text column is.
    other_text_columns: list[str] = dataclasses.field(default_factory=list)
    target_column: Optional[str] = None  # a seq2seq target (one of other_text_columns): pair checks
    tag_column: Optional[str] = None  # a tagger's tags: the text column holds token lists, the labels are the tags
    # a fine-tuning run's: the pushed model's vocabulary (its asset, one token per line), which the
    # run's Transform takes whole; the text column's coverage is then measured against it
    vocabulary_file: Optional[str] = None
    vocabulary_name: str = "the train split's vocabulary"  # what the findings and the report call it

    @property
    def labels(self) -> Optional[str]:
        """The column whose values the label checks count: a classifier's labels or a tagger's tags."""
        return self.label_column or self.tag_column


class LatestPerSpanStrategy(resolver_strategy.ResolverStrategy):
    """Every span's latest Examples, so the TextValidator can find the span before the current one.
    Resolved when the TextValidator runs (after ExampleGen), so the current span is among them."""

    def resolve_artifacts(self, store: Any, input_dict: dict[str, list[types.Artifact]]) -> dict[str, list[types.Artifact]]:
        resolved = {}
        for key, artifacts in input_dict.items():
            latest: dict[int, types.Artifact] = {}
            for artifact in sorted(artifacts, key=lambda a: a.id):
                latest[span_of(artifact)] = artifact
            resolved[key] = [latest[span] for span in sorted(latest)]
        return resolved


def span_of(artifact: types.Artifact) -> int:
    """The span ExampleGen's driver recorded (a custom property in this TFX; the typed property otherwise)."""
    return artifact.get_int_custom_property("span") if artifact.has_custom_property("span") else artifact.span


def text_constraints(schema: schema_pb2.Schema, text_column: str) -> tuple[float, int]:
    """(min vocabulary coverage, max tokens per text) from the text column's natural_language_domain;
    (0, 0) when the schema sets none (the check is then not made)."""
    for feature in schema.feature:
        if feature.name == text_column and feature.HasField("natural_language_domain"):
            domain = feature.natural_language_domain
            return domain.coverage.min_coverage, domain.sequence_length_constraints.max_sequence_length
    return 0.0, 0


def comparator_schema(settings: Settings, kind: str) -> schema_pb2.Schema:
    """A schema of the derived features whose drift (or skew) comparators hold the configured limits."""
    limits = settings.drift if kind == "drift" else settings.skew
    schema = schema_pb2.Schema()
    compared = [(LENGTH_FEATURE, schema_pb2.INT, "jensen_shannon_divergence", limits["text_length_js"]),
                (TOKEN_FEATURE, schema_pb2.BYTES, "jensen_shannon_divergence", limits["token_js"])]
    if settings.labels:
        compared.append((settings.labels, schema_pb2.BYTES, "infinity_norm", limits["label_linf"]))
    for name, feature_type, measure, threshold in compared:
        feature = schema.feature.add(name=name, type=feature_type)
        comparator = feature.drift_comparator if kind == "drift" else feature.skew_comparator
        getattr(comparator, measure).threshold = threshold
    return schema


def validate_text(splits: dict[str, SplitText], previous_train: Optional[SplitText], schema: schema_pb2.Schema,
                  settings: Settings, previous_span: Optional[int] = None) -> tuple[list[text_checks.Finding], dict[str, statistics_pb2.DatasetFeatureStatisticsList], dict]:
    """All text checks; returns the findings (without actions), the statistics per split, and context."""
    text, label = settings.text_column, settings.labels
    train = splits[TRAIN]
    vocabulary = (read_vocabulary(settings.vocabulary_file) if settings.vocabulary_file
                  else train_vocabulary(train, settings.max_vocab_size))
    stats = {name: text_statistics(split, text, label, vocabulary) for name, split in splits.items()}
    min_coverage, max_tokens = text_constraints(schema, text)
    findings = column_findings(splits, stats, text, schema, settings.vocabulary_name)
    skew = {}
    held_out = [name for name in splits if name != TRAIN]  # validation and test
    for held in held_out:
        if label:
            findings += text_checks.label_findings(train, splits[held], label)
        findings += text_checks.duplicates_across_splits(train, splits[held], text)
        skew[held] = tfdv.validate_statistics(stats[TRAIN], comparator_schema(settings, "skew"),
                                              serving_statistics=stats[held])
        findings += text_checks.comparison_findings(skew[held], "skew", held, "the train split")
    drift = None
    if previous_train is not None:
        previous_stats = text_statistics(previous_train, text, label, vocabulary)
        drift = tfdv.validate_statistics(stats[TRAIN], comparator_schema(settings, "drift"), previous_statistics=previous_stats)
        findings += text_checks.comparison_findings(drift, "drift", TRAIN, f"span {previous_span}'s train split")
    context = {
        "profiles": {name: split_profile(split, stats[name], text) for name, split in splits.items()},
        "schema": describe_schema(schema),
        "min_vocabulary_coverage": round(min_coverage, 6),
        "max_text_tokens": max_tokens,
        "vocabulary_size": len(vocabulary),
        "vocabulary": settings.vocabulary_name,
        "skew": [{"split": held, **row} for held in held_out for row in _measurements(skew[held], "skew")],
        "drift": _measurements(drift, "drift") if drift is not None else [],
    }
    return findings, stats, context


def column_findings(splits: dict[str, SplitText], stats: dict[str, statistics_pb2.DatasetFeatureStatisticsList],
                    column: str, schema: schema_pb2.Schema,
                    vocabulary: str = "the train split's vocabulary") -> list[text_checks.Finding]:
    """Empty and over-long texts, and vocabulary coverage (TFDV, from each split's statistics),
    of one text column, under the schema's constraints for it."""
    min_coverage, max_tokens = text_constraints(schema, column)
    coverage_schema = schema_pb2.Schema(feature=[f for f in schema.feature if f.name == column])
    findings: list[text_checks.Finding] = []
    for name, split in splits.items():
        findings += text_checks.empty_texts(split, column)
        if max_tokens:
            findings += text_checks.long_texts(split, column, max_tokens)
        if min_coverage:
            coverage = nl_statistics(stats[name], column).feature_coverage
            anomalies = tfdv.validate_statistics(stats[name], coverage_schema)
            findings += text_checks.coverage_findings(anomalies, name, column, coverage, min_coverage, vocabulary)
    return findings


def other_column_findings(splits: dict[str, SplitText], column: str, schema: schema_pb2.Schema,
                          settings: Settings) -> list[text_checks.Finding]:
    """`column_findings` of one further text column (a target, a second source), its coverage
    against that column's own train vocabulary."""
    vocabulary = train_vocabulary(splits[TRAIN], settings.max_vocab_size)
    stats = {name: text_statistics(split, column, None, vocabulary) for name, split in splits.items()}
    return column_findings(splits, stats, column, schema)


def pair_findings(sources: dict[str, SplitText], targets: dict[str, SplitText], target_column: str,
                  settings: Settings) -> list[text_checks.Finding]:
    """Checks of (source, target) pairs: pairs both in train and in a held-out split, and skew of
    the length ratio."""
    def pairs(split: str) -> SplitText:
        texts = [f"{s} => {t}" for s, t in zip(sources[split].texts, targets[split].texts)]
        return SplitText(split, texts, None, [])

    findings = []
    for held in (name for name in sources if name != TRAIN):
        findings += text_checks.duplicates_across_splits(pairs(TRAIN), pairs(held), f"{settings.text_column}/{target_column}")
        findings += text_checks.length_ratio_skew(targets[TRAIN], targets[held], sources[held], sources[TRAIN],
                                                  target_column, settings.skew["text_length_js"])
    return findings


def describe_schema(schema: schema_pb2.Schema) -> list[dict]:
    """Each feature of the schema in a line a reviewer can read: type, presence, domain and constraints."""
    rows = []
    for feature in schema.feature:
        domain = feature.WhichOneof("domain_info") or ""
        constraints = []
        if domain == "natural_language_domain":
            nl = feature.natural_language_domain
            if nl.coverage.min_coverage:
                constraints.append(f"min vocabulary coverage {nl.coverage.min_coverage:.2f}")
            if nl.sequence_length_constraints.max_sequence_length:
                constraints.append(f"{nl.sequence_length_constraints.min_sequence_length}-"
                                   f"{nl.sequence_length_constraints.max_sequence_length} tokens")
        elif domain == "domain":
            values = next((list(d.value) for d in schema.string_domain if d.name == feature.domain), [])
            constraints.append(f"values {', '.join(values[:10])}" + (" ..." if len(values) > 10 else ""))
        rows.append({"feature": feature.name, "type": schema_pb2.FeatureType.Name(feature.type),
                     "presence": f"at least {feature.presence.min_fraction:.0%} of examples" if feature.presence.min_fraction else "optional",
                     "domain": domain.replace("_domain", "").replace("domain", "values") or "-",
                     "constraints": "; ".join(constraints) or "-"})
    return rows


def _measurements(anomalies: anomalies_pb2.Anomalies, kind: str) -> list[dict]:
    """Every comparison TFDV made (also those under their limits), for the report."""
    rows = []
    for info in anomalies.drift_skew_info:
        for m in info.drift_measurements if kind == "drift" else info.skew_measurements:
            rows.append({"feature": ".".join(info.path.step), "measure": anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(m.type),
                         "value": round(m.value, 4), "threshold": m.threshold, "passed": m.value <= m.threshold})
    return rows


def _previous_span(current: types.Artifact, candidates: list[types.Artifact]) -> Optional[types.Artifact]:
    earlier = [c for c in candidates if span_of(c) < span_of(current)]
    return max(earlier, key=lambda c: (span_of(c), c.id)) if earlier else None


def _schema_anomalies(artifact: types.Artifact) -> dict[str, anomalies_pb2.Anomalies]:
    found = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        if os.path.exists(path):
            found[split] = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
    return found


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        settings = Settings(**json.loads(exec_properties["settings"]))
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"])))
        read = lambda artifact, split: read_split(artifact, split, settings.text_column, settings.label_column,  # noqa: E731
                                                  settings.tokenizer, settings.lowercase, settings.tag_column)
        splits = {split: read(examples, split) for split in SPLITS}
        previous = _previous_span(examples, input_dict.get("previous_examples", []))
        findings, stats, context = validate_text(splits, read(previous, TRAIN) if previous else None, schema, settings,
                                                 span_of(previous) if previous else None)
        for column in settings.other_text_columns:
            column_splits = {split: read_split(examples, split, column, None, settings.tokenizer, settings.lowercase)
                             for split in SPLITS}
            findings += other_column_findings(column_splits, column, schema, settings)
            if column == settings.target_column:
                findings += pair_findings(splits, column_splits, column, settings)
        schema_anomalies = _schema_anomalies(artifact_utils.get_single_instance(input_dict["schema_anomalies"]))
        unseen = {(f.split, f.feature) for f in findings if f.kind == "unseen_label"}
        text_columns = {settings.text_column, *settings.other_text_columns}
        findings = text_checks.schema_findings(schema_anomalies, text_columns, unseen) + findings
        for finding in findings:
            finding.action = settings.policy[finding.kind]

        statistics = artifact_utils.get_single_instance(output_dict["statistics"])
        anomalies = artifact_utils.get_single_instance(output_dict["anomalies"])
        for artifact in (statistics, anomalies):
            artifact.split_names = artifact_utils.encode_split_names(list(SPLITS))
            artifact.set_int_custom_property("span", span_of(examples))
        for split in SPLITS:
            io_utils.write_bytes_file(os.path.join(artifact_utils.get_split_uri([statistics], split), STATS_FILE),
                                      stats[split].SerializeToString())
            io_utils.write_bytes_file(os.path.join(artifact_utils.get_split_uri([anomalies], split), ANOMALIES_FILE),
                                      text_checks.as_anomalies(findings, split).SerializeToString())
        report = {
            "span": span_of(examples),
            "previous_span": span_of(previous) if previous else None,
            "examples": {split: len(splits[split].texts) for split in SPLITS},
            **context,
            "policy": settings.policy,
            "findings": [dataclasses.asdict(f) for f in findings],
        }
        io_utils.write_string_file(os.path.join(anomalies.uri, REPORT_FILE), json.dumps(report, indent=1))
        blocking = sum(f.action == "block" for f in findings)
        anomalies.set_int_custom_property("blocking", blocking)
        anomalies.set_int_custom_property("warnings", len(findings) - blocking)


class TextValidatorSpec(ComponentSpec):
    PARAMETERS = {"settings": ExecutionParameter(type=str)}
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
        "schema_anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "previous_examples": ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }
    OUTPUTS = {
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
    }


class TextValidator(base_component.BaseComponent):
    """Text checks, drift and skew, with the gate policy's action on each finding."""

    SPEC_CLASS = TextValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, schema: types.BaseChannel, schema_anomalies: types.BaseChannel,
                 previous_examples: Optional[types.BaseChannel], settings: Settings):
        spec = TextValidatorSpec(
            examples=examples,
            schema=schema,
            schema_anomalies=schema_anomalies,
            previous_examples=previous_examples,
            settings=json.dumps(dataclasses.asdict(settings)),
            statistics=types.Channel(type=standard_artifacts.ExampleStatistics),
            anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
        )
        super().__init__(spec=spec)
