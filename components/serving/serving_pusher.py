"""ServingPusher: TFX's Pusher with an atomic, never-overwriting push and no duplicate versions.

It pushes only a model with both blessings, the Evaluator's and the serving check's
(`components.serving.serving_check`), and pushes the serving check's copy, which carries TensorFlow
Serving's warm-up requests.

TensorFlow Serving watches `<base>/<version>/`; a half-copied version directory can be picked
up, so the model is copied into a hidden temporary sibling and renamed into place. A version
directory that exists is never written. When the same SavedModel (same `fingerprint.pb`) is
already there, as after a re-run with nothing changed, that version is reported instead of
pushing a copy. Each new version is recorded in the serving directory's audit log with a hash
of the evaluation it rests on (the optional `evaluation` input).
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional

from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import io_utils, path_utils, proto_utils

from components.serving.serving_audit import append_audit, hash_folder

FINGERPRINT_FILE = "fingerprint.pb"
EVALUATION_KEY = "evaluation"


def _versions(base: str) -> list[int]:
    if not fileio.exists(base):
        return []
    return sorted(int(name.rstrip("/")) for name in fileio.listdir(base) if name.rstrip("/").isdigit())


def _read(path: str) -> Optional[bytes]:
    if not fileio.exists(path):
        return None
    with fileio.open(path, "rb") as f:
        return f.read()


def find_pushed_copy(model_path: str, base: str) -> Optional[int]:
    """The version under `base` that holds this exact SavedModel, if any."""
    fingerprint = _read(os.path.join(model_path, FINGERPRINT_FILE))
    if fingerprint is None:
        return None
    for version in reversed(_versions(base)):
        if _read(os.path.join(base, str(version), FINGERPRINT_FILE)) == fingerprint:
            return version
    return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_abandoned_staging(base: str) -> None:
    """Removes the temporary copies of pushes whose process died before its rename (killed);
    those of a push still running, in another process, are left alone."""
    for name in fileio.listdir(base):
        name = name.rstrip("/")
        pid = name.rsplit("-", 1)[-1]
        if name.startswith(".tmp-") and pid.isdigit() and not _process_alive(int(pid)):
            fileio.rmtree(os.path.join(base, name))


def push_atomically(model_path: str, base: str) -> int:
    """Copies the SavedModel to `base/<new version>/` through a temporary sibling; returns it."""
    fileio.makedirs(base)
    remove_abandoned_staging(base)
    version = max([int(time.time())] + [v + 1 for v in _versions(base)])
    staging = os.path.join(base, f".tmp-{version}-{os.getpid()}")
    try:
        io_utils.copy_dir(model_path, staging)
        fileio.rename(staging, os.path.join(base, str(version)), overwrite=False)
    finally:
        if fileio.exists(staging):  # only when the copy or the rename failed
            fileio.rmtree(staging)
    return version


class Executor(pusher_executor.Executor):
    """Pushes a blessed model to a filesystem destination (TensorFlow Serving layout)."""

    def GetModelPath(self, input_dict: dict[str, list[types.Artifact]]) -> str:
        """The serving check's warmed-up copy when it made one, else the Trainer's model."""
        infra = input_dict.get(standard_component_specs.INFRA_BLESSING_KEY)
        if infra and artifact_utils.get_single_instance(infra).get_int_custom_property("has_model"):
            return path_utils.stamped_model_path(artifact_utils.get_single_instance(infra).uri)
        return super().GetModelPath(input_dict)

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        base = destination.filesystem.base_directory
        version = find_pushed_copy(model_path, base)
        if version is None:
            version = push_atomically(model_path, base)
            evaluation = input_dict.get(EVALUATION_KEY)
            evaluation_hash = hash_folder(artifact_utils.get_single_instance(evaluation).uri) if evaluation else None
            append_audit(os.path.dirname(base.rstrip("/")), "push", os.path.basename(base.rstrip("/")), version,
                         evaluation_hash=evaluation_hash)
        io_utils.copy_dir(model_path, model_push.uri)  # the artifact keeps its own copy, as in TFX
        self._MarkPushed(model_push, pushed_destination=os.path.join(base, str(version)), pushed_version=str(version))


class ServingPusherSpec(standard_component_specs.PusherSpec):
    """TFX's Pusher inputs, plus the evaluation the blessing rests on (for the audit log)."""

    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
    }


class ServingPusher(pusher_component.Pusher):
    """Pusher whose executor pushes atomically, never rewrites a version and logs each push."""

    SPEC_CLASS = ServingPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 push_destination: pusher_pb2.PushDestination, infra_blessing: Optional[types.BaseChannel] = None,
                 evaluation: Optional[types.BaseChannel] = None):
        base_component.BaseComponent.__init__(self, spec=ServingPusherSpec(
            model=model, model_blessing=model_blessing, infra_blessing=infra_blessing, evaluation=evaluation,
            push_destination=push_destination, pushed_model=types.Channel(type=standard_artifacts.PushedModel),
        ))
