"""Config drift: a hash of the effective configuration and the hardware profile it layers.

Two kiosks that should behave alike show the same `config_hash` in `health`; when they
differ, `cmd/config` on each returns the effective config to diff. Secrets are never in
the config (credentials come from `$CREDENTIALS_DIRECTORY` or the environment), so the
hash cannot leak one; the `secrets` block lists them as set/unset only, and every string
is passed through the journal's redactor in case an operator pasted a key into a value.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agentd.config import Config, to_dict

HASH_CHARS = 16  # 64 bits: collisions between a fleet's configs are not a concern
MAX_INCLUDE_DEPTH = 4  # the loader's own limit (agentd/config/__init__.py)


def config_hash(config: Config) -> str:
    """sha256 of the effective config as canonical JSON (sorted keys), shortened."""
    canonical = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_CHARS]


def hardware_profiles(config_path: str) -> list[str]:
    """The files the config includes (the hardware profile first), resolved, in merge order.

    The loader merges includes away, so they are read again here: cheap (a few kB) and
    only at start and reload. An unreadable file yields what could be read.
    """
    if not config_path:
        return []
    out: list[str] = []
    _collect(Path(config_path), out, 0)
    return out


def _collect(path: Path, out: list[str], depth: int) -> None:
    if depth > MAX_INCLUDE_DEPTH:
        return
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    includes = data.get("include", [])
    if not isinstance(includes, list):
        return
    for include in includes:
        if isinstance(include, str):
            target = (path.parent / include).resolve()
            _collect(target, out, depth + 1)
            out.append(str(target))


def effective_config(
    config: Config,
    *,
    secrets: Mapping[str, str],
    profiles: list[str],
    redact: Callable[[str], str] = str,
) -> dict[str, object]:
    """What `cmd/config` returns: the effective config, its hash, profiles, secrets set/unset."""
    return {
        "config_hash": config_hash(config),
        "hardware_profiles": profiles,
        "secrets": {
            name: "set" if value.startswith("set") else "unset" for name, value in secrets.items()
        },
        "config": _redacted(to_dict(config), redact),
    }


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {str(k): _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v, redact) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value
