"""Turn a parsed TOML mapping into frozen config dataclasses, or one clear ConfigError.

Walks the dataclass type hints: nested sections, lists of sections, tuples, Literal
choices, optional values, and the bounds declared with `setting()`. Unknown keys are
errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin

from agentd.errors import ConfigError

T = TypeVar("T")


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from mapping `data`, validating every key under `path`."""
    if not isinstance(data, dict):
        raise ConfigError(path, "expected a table", _short(data), "a TOML table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            _join(path, unknown[0]), "unknown key", None, "one of " + ", ".join(sorted(fields))
        )
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        if name not in data:
            if field.metadata.get("required") or (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise ConfigError(key_path, "missing required value")
            continue
        values[name] = _convert(hints[name], data[name], key_path, field.metadata)
    instance = cls(**values)
    check = getattr(instance, "validate", None)
    if callable(check):
        check(path)
    return instance


def _convert(hint: Any, value: Any, path: str, meta: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(get_args(hint)):
            return None
        errors: list[ConfigError] = []
        for option in options:
            try:
                return _convert(option, value, path, meta)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is typing.Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(path, "not an allowed value", value, ", ".join(map(repr, allowed)))
        return value
    if origin in (tuple, list):
        args = get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(path, "expected a list", _short(value), "a TOML array")
        item_hint = args[0] if args else Any
        items = [_convert(item_hint, v, f"{path}[{i}]", {}) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        _, val_hint = get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(path, "expected a table", _short(value), "a TOML table")
        return {k: _convert(val_hint, v, _join(path, k), {}) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path)  # type: ignore[arg-type]
    if hint is Any:
        return value
    return _scalar(hint, value, path, meta)


def _scalar(hint: Any, value: Any, path: str, meta: Any) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, "wrong type", _short(value), "true or false")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, "wrong type", _short(value), "an integer")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, "wrong type", _short(value), "a number")
        if math.isnan(value):  # TOML `nan` would pass every min/max comparison
            raise ConfigError(path, "not a number", value, "a number")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(path, "wrong type", _short(value), "a string")
    else:
        raise ConfigError(path, f"unsupported type {hint!r}")
    choices = meta.get("choices") if meta else None
    if choices is not None and value not in choices:
        raise ConfigError(path, "not an allowed value", value, ", ".join(map(repr, choices)))
    low = meta.get("min") if meta else None
    high = meta.get("max") if meta else None
    if low is not None and value < low:
        raise ConfigError(path, "out of range", value, _range(low, high))
    if high is not None and value > high:
        raise ConfigError(path, "out of range", value, _range(low, high))
    return value


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f">= {low}" if low is not None else f"<= {high}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= 60 else text[:57] + "..."


def to_dict(instance: Any) -> dict[str, Any]:
    """The effective config as plain data (for `check-config` and MQTT `status`)."""
    return dataclasses.asdict(instance)
