"""Home Assistant MQTT discovery: one device-based discovery message per kiosk.

Published retained at QoS 1 on `<prefix>/device/<device_id>/config` (device-based
discovery, Home Assistant 2024.11+): the `device` and `origin` blocks and the
availability once at the root, every entity under `components` with its `platform`
(https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload).
Availability is the device's retained `status` topic (LWT, `online`/`offline`).

Entities: the conversation state and the engagement state (waiting / engaged; enum
sensors, the engagement's reason and modes as attributes), voice-to-voice latency, turns today;
diagnostic sensors (entity_category `diagnostic`) for errors, the last self-test's echo
delay / echo coupling / noise floor / clipping / near-field margin (the visitor's level
over the gate's threshold, unknown unless a level was given) / array agreement margin
(mic arrays: the visitor's coherence over min_coherence), the config hash and the
capture state;
a mute switch, a volume number (0..100 %), and buttons restart-conversation, test-speaker
and self-test. All sensors read retained topics, so they survive a Home Assistant
restart.

Kiosks that published the older per-entity configs
(`<prefix>/<component>/<device_id>/<object_id>/config`) are cleaned up by publishing
`legacy_removal_messages` (see docs/mqtt.md for Home Assistant's migration steps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agentd.events import AgentState
from agentd.mqtt.topics import ENGAGEMENT_STATES, STATUS_OFFLINE, STATUS_ONLINE, Topics

TEST_SPEAKER_TEXT = "This is a speaker test."
ORIGIN_URL = "https://github.com/agentd/agentd"  # support_url shown in Home Assistant
DIAGNOSTIC = "diagnostic"
_LEGACY = (
    ("sensor", "state"), ("sensor", "latency"), ("sensor", "turns_today"), ("sensor", "errors"),
    ("switch", "mute"), ("number", "volume"), ("button", "restart_conversation"),
    ("button", "test_speaker"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The Home Assistant `device` block."""

    device_id: str
    name: str
    model: str = "agentd voice kiosk"
    manufacturer: str = "agentd"
    sw_version: str = ""
    suggested_area: str = ""


def discovery_topic(prefix: str, device_id: str) -> str:
    return f"{prefix.strip('/')}/device/{device_id}/config"


def discovery_messages(prefix: str, topics: Topics, device: DeviceInfo) -> list[tuple[str, str]]:
    """The (topic, JSON payload) to publish retained at QoS 1: one device message."""
    block: dict[str, object] = {
        "identifiers": [f"agentd_{device.device_id}"],
        "name": device.name,
        "model": device.model,
        "manufacturer": device.manufacturer,
    }
    if device.sw_version:
        block["sw_version"] = device.sw_version
    if device.suggested_area:
        block["suggested_area"] = device.suggested_area
    origin: dict[str, object] = {"name": "agentd", "support_url": ORIGIN_URL}
    if device.sw_version:
        origin["sw_version"] = device.sw_version
    components = {
        object_id: {"platform": platform, "unique_id": f"agentd_{device.device_id}_{object_id}"}
        | entity
        for platform, object_id, entity in _entities(topics)
    }
    payload = {
        "device": block,
        "origin": origin,
        "availability": [
            {
                "topic": topics.status,
                "payload_available": STATUS_ONLINE,
                "payload_not_available": STATUS_OFFLINE,
            }
        ],
        "components": components,
    }
    topic = discovery_topic(prefix, device.device_id)
    return [(topic, json.dumps(payload, separators=(",", ":")))]


def removal_messages(prefix: str, device_id: str) -> list[tuple[str, str]]:
    """An empty retained device config removes the device's entities from Home Assistant."""
    return [(discovery_topic(prefix, device_id), "")]


def legacy_removal_messages(prefix: str, device_id: str) -> list[tuple[str, str]]:
    """Empty retained configs for the per-entity topics earlier versions published."""
    root = prefix.strip("/")
    return [(f"{root}/{c}/{device_id}/{o}/config", "") for c, o in _LEGACY]


def _health_value(path: str) -> str:
    """A template reading `health` that renders None (unknown) when a level is missing."""
    head, _, leaf = path.partition(".")
    if not leaf:
        return f"{{{{ value_json.{head} }}}}"
    return f"{{{{ value_json.{head}.{leaf} if value_json.{head} else None }}}}"


def _diagnostic_sensor(name: str, health: str, path: str, **extra: object) -> dict[str, object]:
    return {"name": name, "state_topic": health, "value_template": _health_value(path),
            "entity_category": DIAGNOSTIC, **extra}  # fmt: skip


def _entities(topics: Topics) -> list[tuple[str, str, dict[str, object]]]:
    health = topics.health
    return [
        ("sensor", "state", {
            "name": "Conversation state",
            "state_topic": topics.state,
            "device_class": "enum",
            "options": [s.value for s in AgentState],
            "icon": "mdi:account-voice",
        }),
        ("sensor", "engagement", {
            "name": "Engagement",
            "state_topic": topics.engagement,
            "value_template": "{{ value_json.state }}",
            # attributes: reason, modes (HA drops the document's `state`: a blocked name)
            "json_attributes_topic": topics.engagement,
            "device_class": "enum",
            "options": list(ENGAGEMENT_STATES),
            "icon": "mdi:account-check",
        }),
        ("sensor", "latency", {
            "name": "Last voice-to-voice latency",
            "state_topic": health,
            "value_template": _health_value("last_voice_to_voice_ms"),
            "unit_of_measurement": "ms",
            "device_class": "duration",
            "state_class": "measurement",
            "entity_category": DIAGNOSTIC,
        }),
        ("sensor", "turns_today", {
            "name": "Turns today",
            "state_topic": health,
            "value_template": _health_value("turns_today"),
            "state_class": "total_increasing",
            "icon": "mdi:counter",
        }),
        ("sensor", "errors", _diagnostic_sensor(
            "Errors today", health, "errors_today", state_class="total_increasing",
            icon="mdi:alert-circle-outline")),
        # since the daemon started: replies agentd dropped unheard (the visitor went on)
        ("sensor", "wasted_llm_requests", _diagnostic_sensor(
            "Wasted LLM requests", health, "llm_requests_wasted",
            state_class="total_increasing", icon="mdi:cash-remove")),
        ("sensor", "echo_delay", _diagnostic_sensor(
            "Self-test echo delay", health, "self_test.echo_delay_ms", unit_of_measurement="ms",
            device_class="duration", state_class="measurement", icon="mdi:timer-outline")),
        ("sensor", "echo_coupling", _diagnostic_sensor(
            "Self-test echo coupling", health, "self_test.echo_coupling_db",
            unit_of_measurement="dB", state_class="measurement", icon="mdi:speaker-wireless")),
        ("sensor", "noise_floor", _diagnostic_sensor(
            "Self-test noise floor", health, "self_test.noise_floor_dbfs",
            unit_of_measurement="dBFS", state_class="measurement", icon="mdi:waveform")),
        ("sensor", "clipping", _diagnostic_sensor(
            "Self-test mic clipping", health, "self_test.clipped_percent",
            unit_of_measurement="%", state_class="measurement", icon="mdi:sine-wave")),
        ("sensor", "near_field_margin", _diagnostic_sensor(
            "Self-test near-field margin", health, "self_test.near_field_margin_db",
            unit_of_measurement="dB", state_class="measurement", icon="mdi:account-voice")),
        # mic arrays only (null otherwise): visitor coherence minus min_coherence
        ("sensor", "coherence_margin", _diagnostic_sensor(
            "Self-test array agreement margin", health, "self_test.near_field_coherence_margin",
            state_class="measurement", icon="mdi:microphone-variant")),
        ("sensor", "config_hash", _diagnostic_sensor(
            "Config hash", health, "config_hash", icon="mdi:file-cog-outline")),
        ("sensor", "capture", _diagnostic_sensor(
            "Turn capture (turns left)", health, "capture.armed_turns",
            icon="mdi:record-rec")),
        ("switch", "mute", {
            "name": "Mute",
            "command_topic": topics.cmd("mute"),
            "payload_on": "ON",
            "payload_off": "OFF",
            "state_topic": topics.state,
            "value_template": "{{ 'ON' if value == 'muted' else 'OFF' }}",
            "state_on": "ON",
            "state_off": "OFF",
            "icon": "mdi:microphone-off",
        }),
        ("number", "volume", {
            "name": "Volume",
            "command_topic": topics.cmd("volume"),
            "state_topic": health,
            "value_template": _health_value("volume_percent"),
            "min": 0,
            "max": 100,
            "step": 1,
            "unit_of_measurement": "%",
            "mode": "slider",
            "icon": "mdi:volume-high",
        }),
        ("button", "restart_conversation", {
            "name": "Restart conversation",
            "command_topic": topics.cmd("reset_conversation"),
            "payload_press": "PRESS",
            "icon": "mdi:restart",
        }),
        ("button", "test_speaker", {
            "name": "Test speaker",
            "command_topic": topics.cmd("say"),
            "payload_press": json.dumps({"text": TEST_SPEAKER_TEXT}),
            "entity_category": DIAGNOSTIC,
            "icon": "mdi:speaker-play",
        }),
        ("button", "self_test", {
            "name": "Audio self-test",
            "command_topic": topics.cmd("self_test"),
            "payload_press": "PRESS",
            "entity_category": DIAGNOSTIC,
            "icon": "mdi:microphone-question",
        }),
    ]  # fmt: skip
