"""Where the acceleration trial keeps its choices (`models.runtime.acceleration_trial`): a JSON
file keyed by machine, software and model shape, so a trial runs once per machine and model
shape. It is kept in the user's cache (`~/.cache/textflow`, or `$TEXTFLOW_CACHE_DIR`: the tests
keep their own) and, when the Trainer names one, in the pipeline's root beside its artifacts, so
a fresh clone, a container or a Kubeflow pod that runs the same pipeline root finds the trials
the last run made (a `gs://...` root is read and written through `tf.io.gfile`)."""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

from models.runtime.atomic_file import write_atomically

CACHE_ENV = "TEXTFLOW_CACHE_DIR"
CACHE_FILE = "acceleration.json"


def cache_path() -> str:
    return os.path.join(os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "textflow"),
                        CACHE_FILE)


def _paths(shared_dir: Optional[str]) -> list[str]:
    return [cache_path()] + ([_join(shared_dir, CACHE_FILE)] if shared_dir else [])


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if "://" in folder else os.path.join(folder, name)


def _read(path: str) -> dict:
    try:
        if "://" in path:
            import tensorflow as tf

            with tf.io.gfile.GFile(path) as f:
                entries = json.load(f)
        else:
            with open(path) as f:
                entries = json.load(f)
        return entries if isinstance(entries, dict) else {}
    except Exception:  # noqa: BLE001 - missing, unreadable or not JSON: the trial runs again
        return {}


def read_cache(shared_dir: Optional[str] = None) -> dict:
    """The cached choices of the user's cache and `shared_dir`'s (the user's win where both have a key)."""
    entries: dict = {}
    for path in reversed(_paths(shared_dir)):
        entries.update(_read(path))
    return entries


def write_cache(key: str, choice: dict, shared_dir: Optional[str] = None) -> None:
    """Adds one choice (`Choice.as_dict()`) to each cache, each written whole or not at all."""
    for path in _paths(shared_dir):
        entries = _read(path)
        entries[key] = {**choice, "cached": False}
        text = json.dumps(entries, indent=1, sort_keys=True)
        try:
            if "://" in path:  # an object store replaces an object whole
                import tensorflow as tf

                tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
                with tf.io.gfile.GFile(path, "w") as f:
                    f.write(text)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_atomically(path, text)
        except Exception as err:  # noqa: BLE001 - a read-only cache: the choice still holds for this run
            print(f"acceleration: could not cache the choice in {path}: {err}", file=sys.stderr)
