"""Typed YAML: a mapping checked against a dataclass's annotated fields, so that an unknown key or
a value of the wrong type is refused with the key's full name (`data.text_colum`, `rnn.units`)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the key."""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of names to {_type_name(typing.get_args(tp)[1])}"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Checks `value` against the annotation `tp`; returns it (ints widen to floats)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for option in inner[:-1]:  # the first type the value fits
            try:
                return coerce(value, option, key)
            except ConfigError:
                pass
        if len(inner) > 1:
            try:
                return coerce(value, inner[-1], key)
            except ConfigError:
                raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}") from None
        return coerce(value, inner[0], key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
        (item_type,) = typing.get_args(tp)
        return [coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
        _, item_type = typing.get_args(tp)
        return {str(k): coerce(v, item_type, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping of settings, got {value!r}")
        return build(tp, value, key + ".")
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp, True)
    if not ok:
        raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
    return float(value) if tp is float else value


# keys an older config may hold, and what took their place
RETIRED_KEYS = {
    "data.eval_percent": "the eval split is now two: 'data.validation_percent' (the split early stopping chooses "
                         "the kept weights on) and 'data.test_percent' (the split the Evaluator judges on); "
                         "each is 10 by default",
}


def build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Builds dataclass `cls` from a mapping, refusing unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init and f.name != "families"}
    kwargs = {}
    for key, value in values.items():
        if prefix + key in RETIRED_KEYS:
            raise ConfigError(f"config key '{prefix}{key}' is no longer read: {RETIRED_KEYS[prefix + key]}")
        if key not in known:
            raise ConfigError(
                f"unknown config key '{prefix}{key}' (known keys here: {', '.join(sorted(known))})"
            )
        kwargs[key] = coerce(value, hints[key], prefix + key)
    try:
        return cls(**kwargs)
    except ValueError as err:  # a dataclass's own range checks
        raise ConfigError(f"config section '{prefix.rstrip('.') or 'top level'}': {err}") from err
