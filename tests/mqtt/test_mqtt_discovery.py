"""Home Assistant discovery payloads against HA's documented MQTT schemas, and live."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from agentd.conversation.engagement import EngagementState
from agentd.events import AgentState, LinkState
from agentd.mqtt import MqttService
from agentd.mqtt.commands import COMMAND_NAMES, parse_command
from agentd.mqtt.discovery import (
    DeviceInfo,
    discovery_messages,
    legacy_removal_messages,
    removal_messages,
)
from agentd.mqtt.topics import Topics
from tests.helpers.mosquitto import Mosquitto
from tests.mqtt.conftest import (
    DEVICE_ID,
    LinkWatcher,
    Observer,
    RecordingTarget,
    device_config,
    health,
    mqtt_config,
)

pytestmark = pytest.mark.timeout(60)
TOPICS = Topics("agentd", DEVICE_ID)
# Key lists from Home Assistant's documentation (each schema lists every key HA documents
# for the platform; additionalProperties=False catches a typo or an undocumented key):
#   device-based discovery, device and origin blocks, availability:
#     https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload
#     https://www.home-assistant.io/integrations/mqtt/#discovery-messages
#   platforms: https://www.home-assistant.io/integrations/sensor.mqtt/
#     https://www.home-assistant.io/integrations/switch.mqtt/
#     https://www.home-assistant.io/integrations/number.mqtt/
#     https://www.home-assistant.io/integrations/button.mqtt/
#   entity categories, sensor device/state classes:
#     https://developers.home-assistant.io/docs/core/entity/#generic-properties
#     https://www.home-assistant.io/integrations/sensor/#device-class
_STR = {"type": "string", "minLength": 1}
_TOPIC = {"type": "string", "pattern": r"^[^#+]+$"}
DEVICE = {
    "type": "object",
    "required": ["identifiers", "name"],
    "additionalProperties": False,
    "properties": {
        "identifiers": {"type": "array", "items": _STR, "minItems": 1},
        "name": _STR, "model": _STR, "model_id": _STR, "manufacturer": _STR,
        "sw_version": _STR, "hw_version": _STR, "suggested_area": _STR,
        "configuration_url": _STR, "serial_number": _STR, "via_device": _STR,
        "connections": {"type": "array"},
    },
}  # fmt: skip
ORIGIN = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": _STR, "sw_version": _STR, "support_url": _STR},
}
AVAILABILITY = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["topic"],
        "additionalProperties": False,
        "properties": {"topic": _TOPIC, "payload_available": _STR,
                       "payload_not_available": _STR, "value_template": _STR},
    },
}  # fmt: skip
# Shared options allowed at the root of a device-based discovery payload.
ROOT = {
    "type": "object",
    "required": ["device", "origin", "components"],
    "additionalProperties": False,
    "properties": {
        "device": DEVICE, "origin": ORIGIN, "components": {"type": "object", "minProperties": 1},
        "availability": AVAILABILITY, "availability_mode": {"enum": ["all", "any", "latest"]},
        "availability_topic": _TOPIC, "payload_available": _STR, "payload_not_available": _STR,
        "state_topic": _TOPIC, "command_topic": _TOPIC, "qos": {"enum": [0, 1, 2]},
        "encoding": {"type": "string"},
    },
}  # fmt: skip
# Options every entity platform documents (MQTT entity common options).
COMMON = {
    "platform": _STR, "unique_id": _STR, "name": _STR, "object_id": _STR,
    "default_entity_id": _STR, "icon": {"type": "string", "pattern": "^mdi:"},
    "entity_category": {"enum": ["config", "diagnostic"]}, "enabled_by_default": {},
    "value_template": _STR, "state_topic": _TOPIC, "json_attributes_topic": _TOPIC,
    "json_attributes_template": _STR, "qos": {"enum": [0, 1, 2]}, "encoding": {},
    "availability": AVAILABILITY,
}  # fmt: skip
PER_PLATFORM: dict[str, tuple[list[str], dict[str, Any]]] = {
    "sensor": (["state_topic"], {
        "unit_of_measurement": _STR,
        "device_class": {"enum": ["duration", "enum", "signal_strength", "sound_pressure"]},
        "state_class": {"enum": ["measurement", "total", "total_increasing"]},
        "options": {"type": "array", "items": _STR, "minItems": 1},
        "suggested_display_precision": {"type": "integer"}, "expire_after": {},
        "force_update": {"type": "boolean"}, "last_reset_value_template": _STR,
    }),
    "switch": (["command_topic"], {
        "command_topic": _TOPIC, "payload_on": _STR, "payload_off": _STR,
        "state_on": _STR, "state_off": _STR, "optimistic": {}, "retain": {},
        "device_class": {"enum": ["outlet", "switch"]},
    }),
    "number": (["command_topic"], {
        "command_topic": _TOPIC, "command_template": _STR, "min": {"type": "number"},
        "max": {"type": "number"}, "step": {"type": "number", "exclusiveMinimum": 0},
        "unit_of_measurement": _STR, "mode": {"enum": ["auto", "box", "slider"]},
        "optimistic": {}, "retain": {}, "device_class": _STR,
    }),
    "button": (["command_topic"], {
        "command_topic": _TOPIC, "command_template": _STR, "payload_press": _STR,
        "retain": {}, "device_class": {"enum": ["identify", "restart", "update"]},
    }),
}  # fmt: skip
DIAGNOSTIC = {"latency", "errors", "wasted_llm_requests", "echo_delay", "echo_coupling",
              "noise_floor", "clipping", "near_field_margin", "coherence_margin", "config_hash",
              "capture", "self_test", "test_speaker"}  # fmt: skip


def schema_for(platform: str) -> dict[str, Any]:
    required, extra = PER_PLATFORM[platform]
    return {
        "type": "object",
        "required": ["platform", "unique_id", *required],
        "additionalProperties": False,
        "properties": COMMON | extra,
    }


def message() -> tuple[str, dict[str, Any]]:
    info = DeviceInfo(DEVICE_ID, "Front desk", sw_version="0.1.0", suggested_area="Lobby")
    ((topic, payload),) = discovery_messages("homeassistant", TOPICS, info)
    return topic, json.loads(payload)


def test_device_discovery_matches_home_assistant_schema() -> None:
    topic, config = message()
    assert topic == f"homeassistant/device/{DEVICE_ID}/config"
    jsonschema.validate(config, ROOT)
    assert config["availability"] == [
        {"topic": TOPICS.status, "payload_available": "online", "payload_not_available": "offline"}
    ]
    assert config["origin"]["name"] == "agentd" and config["origin"]["sw_version"] == "0.1.0"
    components = config["components"]
    platforms = sorted(c["platform"] for c in components.values())
    assert platforms == ["button"] * 3 + ["number"] + ["sensor"] * 14 + ["switch"]
    for object_id, entity in components.items():
        jsonschema.validate(entity, schema_for(entity["platform"]))
        assert re.fullmatch(r"[\w-]+", object_id)
        assert (entity.get("entity_category") == "diagnostic") == (object_id in DIAGNOSTIC)
    unique = [c["unique_id"] for c in components.values()]
    assert len(set(unique)) == len(unique)
    assert components["state"]["options"] == [s.value for s in AgentState]
    engagement = components["engagement"]
    assert engagement["options"] == [s.value for s in EngagementState]
    assert engagement["device_class"] == "enum"
    assert engagement["state_topic"] == engagement["json_attributes_topic"] == TOPICS.engagement
    assert engagement["value_template"] == "{{ value_json.state }}"
    assert components["self_test"]["command_topic"] == TOPICS.cmd("self_test")


def test_schema_check_can_fail() -> None:
    _, config = message()
    config["components"]["latency"]["unit"] = "ms"  # a typo of unit_of_measurement
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config["components"]["latency"], schema_for("sensor"))
    del config["origin"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, ROOT)


_PLAIN = re.compile(r"\{\{ value_json\.(\w+) \}\}")
_GUARDED = re.compile(r"\{\{ value_json\.(\w+)\.(\w+) if value_json\.(\w+) else None \}\}")


def _render(template: str, value_json: dict[str, Any]) -> str:
    """Our two template shapes, evaluated as Jinja2 would (jinja2 is not installed here):
    `{{ value_json.a }}` and `{{ value_json.a.b if value_json.a else None }}`."""
    if plain := _PLAIN.fullmatch(template):
        return str(value_json[plain.group(1)])
    guarded = _GUARDED.fullmatch(template)
    assert guarded and guarded.group(1) == guarded.group(3), template
    outer = value_json[guarded.group(1)]
    return str(outer[guarded.group(2)]) if outer else "None"


def test_topics_are_consistent_with_commands_and_health() -> None:
    _, config = message()
    health_doc: dict[str, Any] = {
        "last_voice_to_voice_ms": 812.0, "turns_today": 3, "errors_today": 0,
        "llm_requests_wasted": 2,
        "volume_percent": 60, "config_hash": "0123456789abcdef",
        "self_test": {"echo_delay_ms": 42.0, "echo_coupling_db": -18.5,
                      "noise_floor_dbfs": -61.0, "clipped_percent": 0.0,
                      "near_field_margin_db": 8.5, "near_field_coherence_margin": 0.31},
        "capture": {"armed_turns": 2},
    }  # fmt: skip
    for entity in config["components"].values():
        for key in ("state_topic", "command_topic"):
            if key in entity:
                assert entity[key].startswith(TOPICS.root + "/")
        if "command_topic" in entity:
            name = entity["command_topic"].removeprefix(TOPICS.cmd_prefix)
            assert name in COMMAND_NAMES
            # what Home Assistant will send must be accepted by the command parser
            sent = [entity.get(k) for k in ("payload_on", "payload_off", "payload_press")]
            sent.append("42" if "min" in entity else None)  # a number's slider value
            for payload in sent:
                if payload is not None:
                    parse_command(name, payload.encode(), max_bytes=4096, allow_dangerous=False)
        if entity.get("state_topic") == TOPICS.engagement:
            document = {"state": "engaged", "reason": "wake_word", "modes": ["wake_word"]}
            assert _render(entity["value_template"], document) in entity["options"]
        if entity.get("state_topic") == TOPICS.health:
            rendered = _render(entity["value_template"], health_doc)
            assert rendered not in ("", "None"), entity
            before_any_test = _render(entity["value_template"], {**health_doc, "self_test": None})
            if "self_test" in entity["value_template"]:
                assert before_any_test == "None"  # HA shows "unknown", not an error


def test_removal_messages_are_empty_retained_configs() -> None:
    assert removal_messages("homeassistant", DEVICE_ID) == [(message()[0], "")]
    legacy = legacy_removal_messages("homeassistant", DEVICE_ID)
    assert {p for _, p in legacy} == {""} and len(legacy) == 8
    assert all(re.fullmatch(rf"homeassistant/\w+/{DEVICE_ID}/\w+/config", t) for t, _ in legacy)


async def test_republished_when_home_assistant_comes_online(
    broker: Mosquitto, observers: list[Observer]
) -> None:
    obs = Observer(broker, "homeassistant/device/+/config")
    observers.append(obs)
    # an earlier version's per-entity config, retained on the broker
    obs.client.publish(f"homeassistant/sensor/{DEVICE_ID}/state/config", "{}", qos=1,
                       retain=True).wait_for_publish(5)  # fmt: skip
    watcher = LinkWatcher()
    service = MqttService(mqtt_config(broker), device_config(), None, RecordingTarget(), health,
                          on_link_changed=watcher)  # fmt: skip
    service.start()
    await watcher.wait(LinkState.CONNECTED)
    first = await obs.await_for("homeassistant/device/+/config", count=1)
    late = Observer(broker, "homeassistant/#")  # e.g. HA starting later
    observers.append(late)
    seen = await late.await_for("homeassistant/device/+/config", count=1)
    assert all(m.retain for m in seen)
    assert not [m for m in late.messages if "/sensor/" in m.topic]  # the legacy one is gone
    obs.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
    again = await obs.await_for("homeassistant/device/+/config", count=2)
    assert again[1].payload == first[0].payload
    assert json.loads(again[-1].payload)["device"]["suggested_area"] == "Lobby"
    await service.stop()
