"""Promotion of pushed models for TensorFlow Serving: labels, rollback, `models.config`, audit log.

The promotion state (each model's labels and the history of stable versions that rollback
walks back) lives in `<serving_dir>/labels.json`. `<serving_dir>/models.config` is what
TensorFlow Serving reads: a `ModelServerConfig` message (each labelled model with a
specific-version policy and its `version_labels`) built from the state and written in
protobuf's text format. Each file is written to a temporary sibling and renamed over the old
one, the state first, so an interrupted promotion leaves the previous files whole; a lock file
keeps two promotions from interleaving. Every push, promotion and rollback is then appended to
`<serving_dir>/audit.jsonl`, which is only ever appended to.

A model name must name a folder directly inside the serving directory (`check_model_name`), so
no command can point TensorFlow Serving outside it. A serving directory written by an earlier
textflow, with the state in a `# textflow-state:` comment line of `models.config`, is read as
it is and migrated by the next promotion or rollback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import re
from typing import Iterator, Optional

from components.serving.serving_audit import append_audit
from models.runtime.atomic_file import write_atomically

MODELS_CONFIG = "models.config"
STATE_FILE = "labels.json"
LOCK_FILE = ".promotion.lock"
LABELS = ("stable", "canary")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LEGACY_STATE_PREFIX = "# textflow-state: "


class PromotionError(ValueError):
    """A promotion or rollback that cannot be done; the message says why."""


@dataclasses.dataclass
class ModelLabels:
    """The labels of one served model and the stable versions it had, oldest first."""

    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    stable_history: list[int] = dataclasses.field(default_factory=list)


def check_model_name(serving_dir: str, name: str) -> None:
    """Raises PromotionError unless `name` is a served model's name: letters, digits, '.',
    '_' and '-' (not first), at most 128 characters, naming a folder directly inside
    `serving_dir` (so no path separators, '..', absolute paths or control characters)."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise PromotionError(
            f"{name!r} is not a served model name: use 1 to 128 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit (a folder directly inside {serving_dir})")
    folder = os.path.join(serving_dir, name)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise PromotionError(f"{folder} is a file, not a served model's folder")
    if os.path.islink(folder) or not os.path.isdir(folder):
        served = ", ".join(sorted(n for n in os.listdir(serving_dir) if _is_model_folder(serving_dir, n))) \
            if os.path.isdir(serving_dir) else ""
        raise PromotionError(f"no served model {name!r} in {serving_dir} (models there: {served or 'none'})")


def check_version(serving_dir: str, name: str, version: int) -> None:
    """Raises PromotionError unless `version` is a positive integer naming a pushed version of `name`."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PromotionError(f"version must be a positive integer, got {version!r}")
    if version not in versions(serving_dir, name):
        known = ", ".join(map(str, versions(serving_dir, name))) or "none"
        raise PromotionError(f"{name} has no pushed version {version} under {serving_dir} (pushed: {known})")


def _is_model_folder(serving_dir: str, name: str) -> bool:
    return bool(MODEL_NAME.fullmatch(name)) and os.path.isdir(os.path.join(serving_dir, name)) \
        and not os.path.islink(os.path.join(serving_dir, name))


def versions(serving_dir: str, model: str) -> list[int]:
    """The pushed versions of `model` (folders named by a positive integer holding a saved_model.pb)."""
    base = os.path.join(serving_dir, model)
    if not MODEL_NAME.fullmatch(model) or not os.path.isdir(base):
        return []
    return sorted(
        int(name) for name in os.listdir(base)
        if name.isdigit() and name == str(int(name)) and int(name) > 0
        and os.path.exists(os.path.join(base, name, "saved_model.pb"))
    )


def resolve_version(serving_dir: str, name: str, version: Optional[int] = None, label: Optional[str] = None) -> int:
    """The pushed version a command means: the one a label points at, the one given, or the
    latest; PromotionError naming what is missing otherwise."""
    if label:
        entry = read_state(serving_dir).get(name)
        version = entry.labels.get(label) if entry else None
        if version is None:
            raise PromotionError(f"{name} has no '{label}' label in {os.path.join(serving_dir, STATE_FILE)}")
    pushed = versions(serving_dir, name)
    version = version if version is not None else (pushed[-1] if pushed else None)
    if version not in pushed:
        raise PromotionError(f"{name} has no pushed version{'' if version is None else f' {version}'} under {serving_dir} "
                             f"(pushed: {', '.join(map(str, pushed)) or 'none'})")
    return version


def read_state(serving_dir: str) -> dict[str, ModelLabels]:
    """The promotion state: from `labels.json`, or from an earlier textflow's comment line in
    `models.config`; empty when nothing was promoted yet. A file that cannot be read, or that
    names a model or version that is not pushed, is an error naming the file."""
    path = os.path.join(serving_dir, STATE_FILE)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
            models = raw["models"]
            state = {name: _model_labels(entry) for name, entry in models.items()}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as err:
            raise PromotionError(f"{path} is not a textflow promotion state file ({type(err).__name__}: {err}); "
                                 "it was left as it is") from None
    else:
        state = _legacy_state(serving_dir)
    _check_state(serving_dir, path, state)
    return state


def _model_labels(entry: dict) -> ModelLabels:
    labels, history = entry["labels"], entry["stable_history"]
    if not isinstance(labels, dict) or not isinstance(history, list):
        raise ValueError("'labels' must be an object and 'stable_history' a list")
    for value in [*labels.values(), *history]:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"version {value!r} is not an integer")
    return ModelLabels(dict(labels), list(history))


def _legacy_state(serving_dir: str) -> dict[str, ModelLabels]:
    """The state an earlier textflow kept in the first line of `models.config` (none: {})."""
    path = os.path.join(serving_dir, MODELS_CONFIG)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    if not first.startswith(_LEGACY_STATE_PREFIX):
        raise PromotionError(f"{path} was not written by textflow (there is no {STATE_FILE} beside it, and its first "
                             "line is not an earlier textflow's state record); it was left as it is")
    try:
        raw = json.loads(first[len(_LEGACY_STATE_PREFIX):])
        return {name: _model_labels(entry) for name, entry in raw.items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as err:
        raise PromotionError(f"{path}: its state record cannot be read ({err}); it was left as it is") from None


def _check_state(serving_dir: str, path: str, state: dict[str, ModelLabels]) -> None:
    """Every model of the state is a served folder, every label a known one on a pushed version."""
    for name, entry in state.items():
        if not _is_model_folder(serving_dir, name):
            raise PromotionError(f"{path} names {name!r}, which is not a model folder in {serving_dir}; it was left as it is")
        pushed = versions(serving_dir, name)
        for label, version in entry.labels.items():
            if label not in LABELS:
                raise PromotionError(f"{path}: unknown label {label!r} of {name}; it was left as it is")
            if version not in pushed:
                raise PromotionError(f"{path}: {name}'s {label} label points at version {version}, which is not pushed "
                                     f"(pushed: {', '.join(map(str, pushed)) or 'none'}); it was left as it is")


def check_models_config(serving_dir: str) -> None:
    """Raises PromotionError, naming the file, when `models.config` is not a ModelServerConfig
    text proto, or serves a model outside the serving directory or a version not pushed."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = os.path.join(serving_dir, MODELS_CONFIG)
    if not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    except (OSError, UnicodeDecodeError, text_format.ParseError) as err:
        raise PromotionError(f"{path} is not a TensorFlow Serving model config ({err}); it was left as it is") from None
    for model in config.model_config_list.config:
        expected = os.path.abspath(os.path.join(serving_dir, model.name))
        if not _is_model_folder(serving_dir, model.name) or model.base_path != expected:
            raise PromotionError(f"{path} serves {model.name!r} from {model.base_path}, which is not a model folder "
                                 f"of {serving_dir}; it was left as it is")
        missing = sorted(set(model.model_version_policy.specific.versions) - set(versions(serving_dir, model.name)))
        if missing:
            raise PromotionError(f"{path} serves versions {missing} of {model.name}, which are not pushed; "
                                 "it was left as it is")


def render_models_config(serving_dir: str, state: dict[str, ModelLabels]) -> str:
    """`models.config` for `state`: a ModelServerConfig message in protobuf's text format."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()  # an empty list still says "these models, none yet"
    for name, entry in sorted(state.items()):
        if not entry.labels:
            continue
        model = config.model_config_list.config.add()
        model.name = name
        model.base_path = os.path.abspath(os.path.join(serving_dir, name))
        model.model_platform = "tensorflow"
        model.model_version_policy.specific.versions.extend(sorted(set(entry.labels.values())))
        for label, version in sorted(entry.labels.items()):
            model.version_labels[label] = version
    return text_format.MessageToString(config)


def render_state(state: dict[str, ModelLabels]) -> str:
    """`labels.json` for `state`."""
    record = {name: dataclasses.asdict(labels) for name, labels in sorted(state.items())}
    return json.dumps({"models": record}, indent=2, sort_keys=True) + "\n"


def _write_state(serving_dir: str, state: dict[str, ModelLabels]) -> None:
    """The state file, then the models.config it implies, each atomically."""
    _write_atomically(os.path.join(serving_dir, STATE_FILE), render_state(state))
    _write_atomically(os.path.join(serving_dir, MODELS_CONFIG), render_models_config(serving_dir, state))


def _write_atomically(path: str, text: str) -> None:
    """Replaces `path` whole, under the promotion lock (so an interrupted earlier write's
    temporary siblings are removed first)."""
    write_atomically(path, text, before_rename=lambda staging, final: _before_rename(staging, final),
                     remove_leftovers=True)


def _before_rename(staging: str, path: str) -> None:
    """A seam for fault-injection tests: runs after the temporary file is complete."""


@contextlib.contextmanager
def promotion_lock(serving_dir: str) -> Iterator[None]:
    """An exclusive lock on the serving directory's promotion state (released if the process dies)."""
    os.makedirs(serving_dir, exist_ok=True)
    with open(os.path.join(serving_dir, LOCK_FILE), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise PromotionError(f"another promotion of {serving_dir} is in progress; try again when it ends") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_for_change(serving_dir: str) -> dict[str, ModelLabels]:
    """The state, with both files checked, before a change is written (under the lock)."""
    state = read_state(serving_dir)
    check_models_config(serving_dir)
    return state


def promote(serving_dir: str, model: str, version: int, label: str, reason: Optional[str] = None,
            evaluation_hash: Optional[str] = None) -> dict:
    """Points `label` of `model` at a pushed `version`; returns the audit entry."""
    check_model_name(serving_dir, model)
    if label not in LABELS:
        raise PromotionError(f"unknown label {label!r} (use {' or '.join(LABELS)})")
    check_version(serving_dir, model, version)
    with promotion_lock(serving_dir):
        state = _read_for_change(serving_dir)
        entry = state.setdefault(model, ModelLabels())
        entry.labels[label] = version
        if label == "stable" and entry.stable_history[-1:] != [version]:
            entry.stable_history.append(version)
        _write_state(serving_dir, state)
        return append_audit(serving_dir, "promote", model, version, label, reason, evaluation_hash)


def rollback(serving_dir: str, model: str, reason: Optional[str] = None) -> dict:
    """Moves `model`'s stable label back to the stable version before the current one."""
    check_model_name(serving_dir, model)
    with promotion_lock(serving_dir):
        state = _read_for_change(serving_dir)
        entry = state.get(model)
        if entry is None or len(entry.stable_history) < 2:
            raise PromotionError(f"{model} has no earlier stable version to roll back to")
        entry.stable_history.pop()
        entry.labels["stable"] = entry.stable_history[-1]
        _write_state(serving_dir, state)
        return append_audit(serving_dir, "rollback", model, entry.labels["stable"], "stable", reason)
