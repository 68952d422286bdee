"""The benchmarks' settings: `--set KEY=VALUE` on a preset's model config, and `--precision
auto` / `--xla auto` settled as the Trainer settles them."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Optional, Union


def preset_with(preset: Any, settings: list[str]) -> tuple[Any, dict]:
    """The preset (a config dataclass) with `KEY=VALUE` settings applied, each value typed like
    the preset's own, and those settings; an unknown key stops the benchmark naming the known ones."""
    fields = {f.name for f in dataclasses.fields(preset)}
    changed = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        if key not in fields:
            raise SystemExit(f"--set {setting}: {type(preset).__name__} has no setting '{key}' (it has {', '.join(sorted(fields))})")
        changed[key] = _typed(value, getattr(preset, key))
    return dataclasses.replace(preset, **changed), changed


def _typed(value: str, like: Any) -> Any:
    """`value` as the type of the preset's `like`; `none` is None (a size's value, or off), and
    a setting the preset leaves None takes a number."""
    if value.lower() in ("none", "null"):
        return None
    if like is None:
        try:
            return int(value)
        except ValueError:
            return float(value)
    if isinstance(like, bool):
        return value.lower() in ("1", "true", "yes", "on")
    return type(like)(value)


def settle_acceleration(family: str, config: Any, vocab_size: int, batch: Any, precision: str,
                        xla: Union[bool, str], xla_left_out: Optional[str], train_steps: int) -> tuple[str, bool, Optional[dict]]:
    """(precision, xla, the choice for the JSON line): `auto` runs the Trainer's timed trial
    (`models.runtime.acceleration_trial`) on `batch`, one numpy batch of the benchmark's own, for a
    training of `train_steps` steps in one batch shape; fixed settings are returned as they are,
    with no choice."""
    if "auto" not in (precision, xla):
        return precision, bool(xla), None
    from models import registry
    from models.runtime.acceleration_trial import TrialSpec, choose, gpu_capabilities

    kind = registry.get(family).objective  # the benchmarks train each family's own objective
    spec = TrialSpec(family, kind, dataclasses.asdict(config), vocab_size, train_steps=train_steps)
    choice = choose(spec, batch, precision, xla,
                    xla_left_out=xla_left_out, gpu_capabilities=gpu_capabilities(),
                    log=lambda message: print(message, file=sys.stderr, flush=True))
    return choice.precision, choice.jit_compile, choice.as_dict()
