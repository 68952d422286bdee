"""Where the acceleration trial keeps its choices (`models.runtime.acceleration_trial`): one JSON
file per user, keyed by machine, software and model shape, so a trial runs once per machine and
model shape. `TEXTFLOW_CACHE_DIR` moves it (the tests keep their own)."""

from __future__ import annotations

import json
import os
import sys

from models.runtime.atomic_file import write_atomically

CACHE_ENV = "TEXTFLOW_CACHE_DIR"
CACHE_FILE = "acceleration.json"


def cache_path() -> str:
    return os.path.join(os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "textflow"),
                        CACHE_FILE)


def read_cache() -> dict:
    """The cached choices; an unreadable file counts as empty (the trial runs again)."""
    try:
        with open(cache_path()) as f:
            entries = json.load(f)
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
        return {}


def write_cache(key: str, choice: dict) -> None:
    """Adds one choice (`Choice.as_dict()`), written whole or not at all."""
    path = cache_path()
    entries = read_cache()
    entries[key] = {**choice, "cached": False}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomically(path, json.dumps(entries, indent=1, sort_keys=True))
    except OSError as err:  # a read-only home: the choice still holds for this run
        print(f"acceleration: could not cache the choice in {path}: {err}", file=sys.stderr)
