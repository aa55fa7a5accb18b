"""Home Assistant MQTT discovery, per-entity configs.

We publish one retained config per entity under
`<prefix>/<component>/<device_id>/<object_id>/config` (the per-entity layout every Home
Assistant release since 0.x understands; the newer single-topic device discovery needs
2024.11+, and kiosks often sit next to older installations). All entities share one
`device` block, so Home Assistant still groups them as one device.

Entities: sensors state / last voice-to-voice latency / turns today / errors today (all
read from retained topics, so they survive a Home Assistant restart), a mute switch, a
volume number (0..100 %), and buttons restart-conversation / test-speaker. Availability
is the device's `status` topic (LWT), with HA's default `online`/`offline` payloads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agentd.mqtt.topics import STATUS_OFFLINE, STATUS_ONLINE, Topics

TEST_SPEAKER_TEXT = "This is a speaker test."


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The Home Assistant `device` block."""

    device_id: str
    name: str
    model: str = "agentd voice kiosk"
    manufacturer: str = "agentd"
    sw_version: str = ""
    suggested_area: str = ""


def discovery_messages(prefix: str, topics: Topics, device: DeviceInfo) -> list[tuple[str, str]]:
    """Every (config topic, JSON payload) to publish retained at QoS 1."""
    out: list[tuple[str, str]] = []
    for component, object_id, entity in _entities(topics):
        config = _common(topics, device, object_id) | entity
        topic = f"{prefix.strip('/')}/{component}/{device.device_id}/{object_id}/config"
        out.append((topic, json.dumps(config, separators=(",", ":"))))
    return out


def removal_messages(prefix: str, device_id: str) -> list[tuple[str, str]]:
    """Empty retained configs remove the entities from Home Assistant."""
    return [
        (f"{prefix.strip('/')}/{component}/{device_id}/{object_id}/config", "")
        for component, object_id, _ in _entities(Topics("x", device_id))
    ]


def _common(topics: Topics, device: DeviceInfo, object_id: str) -> dict[str, object]:
    block: dict[str, object] = {
        "identifiers": [f"agentd_{device.device_id}"],
        "name": device.name,
        "model": device.model,
        "manufacturer": device.manufacturer,
        "sw_version": device.sw_version,
    }
    if device.suggested_area:
        block["suggested_area"] = device.suggested_area
    return {
        "unique_id": f"agentd_{device.device_id}_{object_id}",
        "object_id": f"{device.device_id}_{object_id}",
        "availability_topic": topics.status,
        "payload_available": STATUS_ONLINE,
        "payload_not_available": STATUS_OFFLINE,
        "device": block,
        "origin": {"name": "agentd", "sw_version": device.sw_version},
    }


def _entities(topics: Topics) -> list[tuple[str, str, dict[str, object]]]:
    health = topics.health
    return [
        ("sensor", "state", {
            "name": "State",
            "state_topic": topics.state,
            "icon": "mdi:account-voice",
        }),
        ("sensor", "latency", {
            "name": "Last voice-to-voice latency",
            "state_topic": health,
            "value_template": "{{ value_json.last_voice_to_voice_ms }}",
            "unit_of_measurement": "ms",
            "device_class": "duration",
            "state_class": "measurement",
        }),
        ("sensor", "turns_today", {
            "name": "Turns today",
            "state_topic": health,
            "value_template": "{{ value_json.turns_today }}",
            "state_class": "total_increasing",
            "icon": "mdi:counter",
        }),
        ("sensor", "errors", {
            "name": "Errors today",
            "state_topic": health,
            "value_template": "{{ value_json.errors_today }}",
            "state_class": "total_increasing",
            "entity_category": "diagnostic",
            "icon": "mdi:alert-circle-outline",
        }),
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
            "value_template": "{{ value_json.volume_percent }}",
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
            "icon": "mdi:speaker-play",
        }),
    ]  # fmt: skip
