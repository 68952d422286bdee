"""What ML Metadata knows about the models a workspace's runs trained.

Each `Model` artifact is followed through the metadata store: the Trainer execution that made
it (and what it read: examples and their span, schema, transform graph), then the executions
that took it as their candidate `model`: the Evaluator's `ModelEvaluation` and `ModelBlessing`,
the serving check's `InfraBlessing`, the Pusher's `PushedModel` (where it went).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from ml_metadata.proto import metadata_store_pb2

from components.serving.serving_check_report import read_serving_check
from pipeline.config import Config
from pipeline.metadata_connection import open_store, store_exists

_INPUT, _OUTPUT = metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.OUTPUT


@dataclasses.dataclass
class ModelRecord:
    """One trained candidate: where it came from, how it was judged, where it went."""

    branch: str  # the pipeline branch that trained it: rnn, hvae, rnn_classifier, ...
    uri: str
    trained_at: float  # seconds since the epoch
    trainer_inputs: dict[str, list[str]]  # lineage: examples, transform_graph, schema -> URIs
    data_span: Optional[int]
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    blessed: Optional[bool] = None  # None: not evaluated
    evaluation_uri: Optional[str] = None
    serving_check: Optional[dict] = None  # the serving check's findings (components/serving/serving_check.py)
    destination: Optional[str] = None  # <serving_dir>/<name>/<version> when pushed
    pushed_at: Optional[float] = None

    @property
    def version(self) -> Optional[int]:
        return int(os.path.basename(self.destination)) if self.destination else None


def _node(store, execution_id: int) -> str:
    """A component id (`Trainer_rnn`) from the node context of one of its executions."""
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == "node":
            return context.name.split(".", 1)[1]
    return ""


def _inputs_by_key(store, execution_id: int) -> dict[str, list]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type == _INPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    result: dict[str, list] = {}
    for event in events:
        result.setdefault(event.path.steps[0].key, []).append(artifacts[event.artifact_id])
    return result


def _data_span(store, examples: list) -> Optional[int]:
    """The span of the data a Trainer read: on its examples, or on the raw examples Transform read."""
    for artifact in examples:
        if "span" in artifact.custom_properties:
            return artifact.custom_properties["span"].int_value
        produced_by = [e.execution_id for e in store.get_events_by_artifact_ids([artifact.id]) if e.type == _OUTPUT]
        if produced_by:
            upstream = _inputs_by_key(store, produced_by[0]).get("examples", [])
            if upstream and upstream != examples:
                return _data_span(store, upstream)
    return None


def model_records(config: Config) -> list[ModelRecord]:
    """Every model the pipeline of this workspace trained, oldest first, with its evaluation and push."""
    from operations.results import overall_metrics

    if not store_exists(config):
        return []
    store = open_store(config)
    records = []
    for model in store.get_artifacts_by_type("Model"):
        events = store.get_events_by_artifact_ids([model.id])
        produced_by = [e.execution_id for e in events if e.type == _OUTPUT]
        if not produced_by:
            continue
        inputs = _inputs_by_key(store, produced_by[0])
        span = _data_span(store, inputs.get("examples", []))
        record = ModelRecord(
            branch=_node(store, produced_by[0]).removeprefix("Trainer_"),
            uri=model.uri,
            trained_at=model.create_time_since_epoch / 1000,
            trainer_inputs={key: [a.uri for a in artifacts] for key, artifacts in inputs.items()},
            data_span=span,
        )
        # the executions that read it as the candidate (not as another run's baseline)
        for execution_id in {e.execution_id for e in events if e.type == _INPUT and e.path.steps[0].key == "model"}:
            outputs = [e.artifact_id for e in store.get_events_by_execution_ids([execution_id]) if e.type == _OUTPUT]
            for artifact in store.get_artifacts_by_id(outputs):
                if artifact.type == "ModelBlessing":
                    record.blessed = artifact.custom_properties["blessed"].int_value == 1
                elif artifact.type == "ModelEvaluation":
                    record.evaluation_uri = artifact.uri
                    record.metrics = overall_metrics(artifact.uri)[0]
                elif artifact.type == "InfraBlessing":
                    record.serving_check = read_serving_check(artifact.uri)
                elif artifact.type == "PushedModel" and artifact.custom_properties["pushed"].int_value == 1:
                    record.destination = artifact.custom_properties["pushed_destination"].string_value
                    record.pushed_at = artifact.create_time_since_epoch / 1000
        records.append(record)
    return sorted(records, key=lambda r: r.trained_at)


def find_push(config: Config, model: str, version: int) -> Optional[ModelRecord]:
    """The record of the model a run pushed to `<serving_dir>/<model>/<version>`; None when no run did."""
    destination = os.path.join(os.path.abspath(config.serving_dir), model, str(version))
    pushed = [r for r in model_records(config) if r.destination == destination]
    return pushed[-1] if pushed else None
