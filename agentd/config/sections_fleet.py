"""Config sections for fleet integration: MQTT and GPIO."""

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


@dataclass(frozen=True, slots=True)
class ButtonConfig:
    pin: int = setting(-1, min=-1, max=53, doc="-1 = not fitted.")
    pull_up: bool = True
    bounce_ms: int = setting(30, min=0, max=1000)
    hold_s: float = setting(2.0, min=0.2, max=30.0, doc="Long press threshold.")


@dataclass(frozen=True, slots=True)
class ButtonsConfig:
    talk: ButtonConfig = section(ButtonConfig)
    talk_mode: Literal["hold", "press"] = "hold"
    cancel: ButtonConfig = section(ButtonConfig)
    mute: ButtonConfig = section(ButtonConfig)
    long_press_action: Literal["call_staff", "none"] = "call_staff"


@dataclass(frozen=True, slots=True)
class LedsConfig:
    driver: Literal["none", "gpio", "pwm", "rgb", "apa102"] = "none"
    pins: tuple[int, ...] = setting((), doc="gpio/pwm: one pin per LED; rgb: red, green, blue.")
    apa102_count: int = setting(3, min=1, max=255)
    apa102_spi_bus: int = setting(0, min=0, max=6)
    apa102_spi_device: int = setting(0, min=0, max=3)
    apa102_power_pin: int = setting(-1, min=-1, max=53, doc="e.g. GPIO5 on the 4-mic array.")
    brightness: float = setting(0.5, min=0.0, max=1.0)
    patterns: dict[str, str] = setting(
        factory=dict, doc="state -> pattern override, e.g. thinking = 'pulse'."
    )


@dataclass(frozen=True, slots=True)
class GpioConfig:
    enabled: bool = False
    pin_factory: Literal["auto", "lgpio", "rpigpio", "native", "mock"] = setting(
        "auto", doc="auto = gpiozero's own choice (lgpio on Bookworm); mock for tests."
    )
    buttons: ButtonsConfig = section(ButtonsConfig)
    leds: LedsConfig = section(LedsConfig)
    staff_call_pin: int = setting(-1, min=-1, max=53, doc="Output raised on a staff call.")
