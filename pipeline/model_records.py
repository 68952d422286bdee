"""What ML Metadata knows about a pushed model version: the push, its blessing, its evaluation.

A version under the serving directory is traced back through the metadata store: the
`PushedModel` artifact whose destination is that folder, the Pusher execution that wrote it,
the `ModelBlessing` that execution read, and the Evaluator's `ModelEvaluation` next to that
blessing. The evaluation's files are hashed, so the audit log records which numbers a
promotion rested on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Optional

from ml_metadata.proto import metadata_store_pb2

from pipeline.config import Config
from pipeline.summary import open_store


@dataclasses.dataclass(frozen=True)
class PushRecord:
    destination: str
    blessed: bool
    evaluation_uri: Optional[str]


_INPUT, _OUTPUT = metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.OUTPUT


def find_push(config: Config, model: str, version: int) -> Optional[PushRecord]:
    """The pipeline's record of `<serving_dir>/<model>/<version>`; None when no run pushed it."""
    if not os.path.exists(config.metadata_path):
        return None
    store = open_store(config)
    destination = os.path.join(os.path.abspath(config.serving_dir), model, str(version))
    pushes = [
        a for a in store.get_artifacts_by_type("PushedModel")
        if a.custom_properties["pushed_destination"].string_value == destination
        and a.custom_properties["pushed"].int_value == 1
    ]
    if not pushes:
        return None
    (pushed_by,) = [e.execution_id for e in store.get_events_by_artifact_ids([pushes[-1].id]) if e.type == _OUTPUT]
    inputs = [e for e in store.get_events_by_execution_ids([pushed_by]) if e.type == _INPUT]
    blessings = [a for a in store.get_artifacts_by_id([e.artifact_id for e in inputs]) if a.type == "ModelBlessing"]
    if not blessings:
        return PushRecord(destination, False, None)
    blessing = blessings[0]
    (evaluated_by,) = [e.execution_id for e in store.get_events_by_artifact_ids([blessing.id]) if e.type == _OUTPUT]
    outputs = [e.artifact_id for e in store.get_events_by_execution_ids([evaluated_by]) if e.type == _OUTPUT]
    evaluations = [a for a in store.get_artifacts_by_id(outputs) if a.type == "ModelEvaluation"]
    return PushRecord(
        destination,
        blessing.custom_properties["blessed"].int_value == 1,
        evaluations[0].uri if evaluations else None,
    )


def hash_folder(path: str) -> str:
    """SHA-256 over every file under `path` (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode("utf-8") + b"\0")
            with open(full, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()
