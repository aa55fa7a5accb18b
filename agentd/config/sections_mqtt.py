"""Config section for the MQTT link to the fleet operator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentd.config._fields import section, setting


@dataclass(frozen=True, slots=True)
class MqttTlsConfig:
    enabled: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = setting(False, doc="Testing only: do not check the hostname.")


@dataclass(frozen=True, slots=True)
class MqttConfig:
    enabled: bool = False
    host: str = "localhost"
    port: int = setting(1883, min=1, max=65535)
    protocol: Literal["5", "3.1.1"] = setting("5", doc="Falls back to 3.1.1 if 5 is refused.")
    client_id: str = setting("", doc="Empty = agentd-<device id>.")
    username: str = setting("", doc="The password comes from the mqtt_password credential.")
    keepalive_s: int = setting(30, min=5, max=3600)
    base_topic: str = "agentd"
    health_interval_s: float = setting(30.0, min=1.0, max=3600.0)
    max_backoff_s: float = setting(60.0, min=1.0, max=3600.0)
    queue_limit: int = setting(1000, min=10, max=100000, doc="QoS 1 backlog while offline.")
    max_command_bytes: int = setting(4096, min=256, max=1048576)
    allow_dangerous_commands: bool = setting(
        True, doc="false disables set_prompt, reload_config and restart."
    )
    discovery: bool = setting(True, doc="Publish Home Assistant discovery.")
    discovery_prefix: str = "homeassistant"
    tls: MqttTlsConfig = section(MqttTlsConfig)
