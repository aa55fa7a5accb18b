"""agentd configuration: one TOML file, validated once into frozen dataclasses.

`load_config(path)` returns `Config` or raises `ConfigError` naming the key path, the
bad value and what is allowed. Profiles can be layered with a top-level
`include = ["/opt/agentd/hardware/respeaker-2mic/agentd.toml"]`; the including file wins.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentd.config._fields import section, setting
from agentd.config._loader import build, to_dict
from agentd.config.sections_audio import AudioConfig
from agentd.config.sections_core import DeviceConfig, LoggingConfig, PrivacyConfig, SystemdConfig
from agentd.config.sections_engagement import EngagementConfig
from agentd.config.sections_gpio import GpioConfig
from agentd.config.sections_llm import LlmConfig
from agentd.config.sections_mqtt import MqttConfig
from agentd.config.sections_stt import SttConfig
from agentd.config.sections_tts import FallbackConfig, TtsConfig
from agentd.config.sections_turn import TurnEndConfig
from agentd.errors import ConfigError

DEFAULT_PATH = "/etc/agentd/agentd.toml"
MAX_CONFIG_BYTES = 1 << 20  # a real config is a few kB; /dev/zero must not eat the RAM


@dataclass(frozen=True, slots=True)
class Config:
    include: tuple[str, ...] = setting((), doc="Config files merged underneath this one.")
    device: DeviceConfig = section(DeviceConfig)
    logging: LoggingConfig = section(LoggingConfig)
    privacy: PrivacyConfig = section(PrivacyConfig)
    systemd: SystemdConfig = section(SystemdConfig)
    audio: AudioConfig = section(AudioConfig)
    stt: SttConfig = section(SttConfig)
    turn_end: TurnEndConfig = section(TurnEndConfig)
    llm: LlmConfig = section(LlmConfig)
    tts: TtsConfig = section(TtsConfig)
    fallback: FallbackConfig = section(FallbackConfig)
    mqtt: MqttConfig = section(MqttConfig)
    gpio: GpioConfig = section(GpioConfig)
    engagement: EngagementConfig = section(EngagementConfig)


def load_config(path: str | Path) -> Config:
    """Read, merge includes, and validate; every failure is a ConfigError."""
    return parse_config(_read_merged(Path(path), depth=0))


def parse_config(data: dict[str, Any]) -> Config:
    """Validate already-parsed TOML data."""
    return build(Config, data)


def _read_merged(path: Path, depth: int) -> dict[str, Any]:
    if depth > 4:
        raise ConfigError("include", "includes nested too deep", str(path), "at most 4 levels")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError("", f"config file {path} is larger than {MAX_CONFIG_BYTES} bytes")
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError("", f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    includes = data.get("include", [])
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError("include", "wrong type", includes, "a list of file paths")
    merged: dict[str, Any] = {}
    for include in includes:
        target = (path.parent / include).resolve()
        merged = _deep_merge(merged, _read_merged(target, depth + 1))
    merged = _deep_merge(merged, data)
    merged.pop("include", None)
    return merged


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


__all__ = ["DEFAULT_PATH", "Config", "ConfigError", "load_config", "parse_config", "to_dict"]
