"""Config sections for the daemon itself: identity, logging, privacy, systemd."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentd.config._fields import setting


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """Who this kiosk is (MQTT topics, Home Assistant device, logs)."""

    id: str = setting("", doc="Device id; empty = derived from the hostname.")
    name: str = setting("agentd kiosk", doc="Human name shown in Home Assistant.")
    location: str = setting("", doc="Free text, e.g. 'Front desk, building A'.")


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Where logs go and what they may contain."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    backend: Literal["auto", "journal", "stderr"] = setting(
        "auto", doc="auto = journal when started by systemd (JOURNAL_STREAM set), else stderr."
    )
    log_transcripts: bool = setting(False, doc="Log what visitors and the agent said.")


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    """Audio retention: nothing is written to disk unless a debug option says so."""

    record_audio_dir: str = setting("", doc="Debug only: write each turn's audio here.")
    allow_remote_capture: bool = setting(
        False,
        doc="Let an operator record the next turns over MQTT (cmd/capture) for debugging; "
        "capture is always shown in health, on the LEDs and in the journal.",
    )
    capture_dir: str = setting("", doc="Where captured turns wait; empty = <state_dir>/capture.")
    capture_max_turns: int = setting(5, min=1, max=20, doc="Most turns one cmd/capture may ask.")
    capture_max_bytes: int = setting(
        20_000_000, min=100_000, max=500_000_000, doc="All stored captures together."
    )
    capture_max_age_s: float = setting(
        3600.0, min=60.0, max=604800.0, doc="Captures not retrieved by then are deleted."
    )


@dataclass(frozen=True, slots=True)
class SystemdConfig:
    """sd_notify behaviour; the interval itself comes from WatchdogSec= via WATCHDOG_USEC."""

    stall_after_s: float = setting(
        2.0, min=0.2, max=60.0, doc="Audio loop silent this long = stalled; pings stop."
    )
    state_dir: str = setting(
        "/var/lib/agentd", doc="Writable state (persisted persona); StateDirectory= in the unit."
    )
