"""Promotion of pushed models for TensorFlow Serving: labels, rollback, `models.config`, audit log.

State lives in one file, `<serving_dir>/models.config`: the TensorFlow Serving
`ModelServerConfig` text proto (each labelled model with a specific-version policy and its
`version_labels`), headed by a comment line holding textflow's own record (the labels and the
history of stable versions that rollback walks back). A change is written to a temporary
sibling and renamed over the file, so a promotion that is interrupted leaves the previous
file whole; a lock file keeps two promotions from interleaving. Every push, promotion and
rollback is then appended to `<serving_dir>/audit.jsonl`, which is only ever appended to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
from typing import Iterator, Optional

from components.serving_audit import append_audit

MODELS_CONFIG = "models.config"
LOCK_FILE = ".promotion.lock"
LABELS = ("stable", "canary")
_STATE_PREFIX = "# textflow-state: "


class PromotionError(ValueError):
    """A promotion or rollback that cannot be done; the message says why."""


@dataclasses.dataclass
class ModelLabels:
    """The labels of one served model and the stable versions it had, oldest first."""

    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    stable_history: list[int] = dataclasses.field(default_factory=list)


def versions(serving_dir: str, model: str) -> list[int]:
    """The pushed versions of `model` (numeric folders holding a saved_model.pb)."""
    base = os.path.join(serving_dir, model)
    if not os.path.isdir(base):
        return []
    return sorted(
        int(name) for name in os.listdir(base)
        if name.isdigit() and os.path.exists(os.path.join(base, name, "saved_model.pb"))
    )


def read_state(serving_dir: str) -> dict[str, ModelLabels]:
    """textflow's record from `models.config` (empty when nothing was promoted yet)."""
    path = os.path.join(serving_dir, MODELS_CONFIG)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    if not first.startswith(_STATE_PREFIX):
        raise PromotionError(f"{path} was not written by textflow (its first line is not the '{_STATE_PREFIX.strip()}' record)")
    raw = json.loads(first[len(_STATE_PREFIX):])
    return {name: ModelLabels(dict(entry["labels"]), list(entry["stable_history"])) for name, entry in raw.items()}


def render_models_config(serving_dir: str, state: dict[str, ModelLabels]) -> str:
    """The `ModelServerConfig` text proto for `state`, headed by the state record."""
    record = {name: dataclasses.asdict(labels) for name, labels in sorted(state.items())}
    lines = [_STATE_PREFIX + json.dumps(record, sort_keys=True), "model_config_list {"]
    for name, entry in sorted(state.items()):
        if not entry.labels:
            continue
        lines += [
            "  config {",
            f'    name: "{name}"',
            f'    base_path: "{os.path.abspath(os.path.join(serving_dir, name))}"',
            '    model_platform: "tensorflow"',
            "    model_version_policy {",
            "      specific {",
            *[f"        versions: {v}" for v in sorted(set(entry.labels.values()))],
            "      }",
            "    }",
            *[f'    version_labels {{ key: "{label}" value: {v} }}' for label, v in sorted(entry.labels.items())],
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _write_atomically(path: str, text: str) -> None:
    """Writes `text` to a temporary sibling, flushes it to disk, then renames it over `path`.
    Temporary siblings an interrupted earlier write left behind are removed first."""
    folder, name = os.path.split(path)
    for leftover in os.listdir(folder):
        if leftover.startswith(f"{name}.tmp-"):
            os.remove(os.path.join(folder, leftover))
    staging = f"{path}.tmp-{os.getpid()}"
    try:
        with open(staging, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _before_rename(staging, path)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)


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


def promote(serving_dir: str, model: str, version: int, label: str, reason: Optional[str] = None,
            evaluation_hash: Optional[str] = None) -> dict:
    """Points `label` of `model` at a pushed `version`; returns the audit entry."""
    if label not in LABELS:
        raise PromotionError(f"unknown label {label!r} (use {' or '.join(LABELS)})")
    if version not in versions(serving_dir, model):
        known = ", ".join(map(str, versions(serving_dir, model))) or "none"
        raise PromotionError(f"{model} has no pushed version {version} under {serving_dir} (pushed: {known})")
    with promotion_lock(serving_dir):
        state = read_state(serving_dir)
        entry = state.setdefault(model, ModelLabels())
        entry.labels[label] = version
        if label == "stable" and entry.stable_history[-1:] != [version]:
            entry.stable_history.append(version)
        _write_atomically(os.path.join(serving_dir, MODELS_CONFIG), render_models_config(serving_dir, state))
        return append_audit(serving_dir, "promote", model, version, label, reason, evaluation_hash)


def rollback(serving_dir: str, model: str, reason: Optional[str] = None) -> dict:
    """Moves `model`'s stable label back to the stable version before the current one."""
    with promotion_lock(serving_dir):
        state = read_state(serving_dir)
        entry = state.get(model)
        if entry is None or len(entry.stable_history) < 2:
            raise PromotionError(f"{model} has no earlier stable version to roll back to")
        entry.stable_history.pop()
        entry.labels["stable"] = entry.stable_history[-1]
        _write_atomically(os.path.join(serving_dir, MODELS_CONFIG), render_models_config(serving_dir, state))
        return append_audit(serving_dir, "rollback", model, entry.labels["stable"], "stable", reason)
