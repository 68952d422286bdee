"""`--set KEY=VALUE` for the benchmarks: a preset's model config with some settings changed."""

from __future__ import annotations

import dataclasses
from typing import Any


def preset_with(preset: Any, settings: list[str]) -> tuple[Any, dict]:
    """The preset (a config dataclass) with `KEY=VALUE` settings applied, each value typed like
    the preset's own, and those settings; an unknown key stops the benchmark naming the known ones."""
    fields = {f.name for f in dataclasses.fields(preset)}
    changed = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        if key not in fields:
            raise SystemExit(f"--set {setting}: {type(preset).__name__} has no setting '{key}' (it has {', '.join(sorted(fields))})")
        kind = type(getattr(preset, key))
        changed[key] = value.lower() in ("1", "true", "yes", "on") if kind is bool else kind(value)
    return dataclasses.replace(preset, **changed), changed
