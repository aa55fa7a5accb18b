"""Home Assistant discovery payloads against HA's documented MQTT schemas, and live."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from agentd.events import LinkState
from agentd.mqtt import MqttService
from agentd.mqtt.commands import COMMAND_NAMES, parse_command
from agentd.mqtt.discovery import DeviceInfo, discovery_messages, removal_messages
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
# From https://www.home-assistant.io/integrations/{sensor,switch,number,button}.mqtt/ and
# https://www.home-assistant.io/integrations/mqtt/#discovery-messages (device / origin).
_STR = {"type": "string", "minLength": 1}
_TOPIC = {"type": "string", "pattern": r"^[^#+]+$"}
DEVICE = {
    "type": "object",
    "required": ["identifiers", "name"],
    "additionalProperties": False,
    "properties": {
        "identifiers": {"type": "array", "items": _STR, "minItems": 1},
        "name": _STR, "model": _STR, "manufacturer": _STR, "sw_version": _STR,
        "hw_version": _STR, "suggested_area": _STR, "configuration_url": _STR,
        "serial_number": _STR, "via_device": _STR, "connections": {"type": "array"},
    },
}  # fmt: skip
ORIGIN = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": _STR, "sw_version": {"type": "string"}, "support_url": _STR},
}
COMMON = {
    "unique_id": _STR, "object_id": _STR, "name": _STR, "icon": {"type": "string",
    "pattern": "^mdi:"}, "availability_topic": _TOPIC, "payload_available": _STR,
    "payload_not_available": _STR, "device": DEVICE, "origin": ORIGIN,
    "entity_category": {"enum": ["config", "diagnostic"]}, "value_template": _STR,
    "state_topic": _TOPIC,
}  # fmt: skip
PER_COMPONENT: dict[str, tuple[list[str], dict[str, Any]]] = {
    "sensor": (["state_topic"], {
        "unit_of_measurement": _STR,
        "device_class": {"enum": ["duration", "temperature", "data_size"]},
        "state_class": {"enum": ["measurement", "total", "total_increasing"]},
    }),
    "switch": (["command_topic"], {
        "command_topic": _TOPIC, "payload_on": _STR, "payload_off": _STR,
        "state_on": _STR, "state_off": _STR,
    }),
    "number": (["command_topic"], {
        "command_topic": _TOPIC, "min": {"type": "number"}, "max": {"type": "number"},
        "step": {"type": "number", "exclusiveMinimum": 0}, "unit_of_measurement": _STR,
        "mode": {"enum": ["auto", "box", "slider"]},
    }),
    "button": (["command_topic"], {"command_topic": _TOPIC, "payload_press": _STR}),
}  # fmt: skip
CONFIG_TOPIC = re.compile(r"^homeassistant/(sensor|switch|number|button)/([\w-]+)/([\w-]+)/config$")


def schema_for(component: str) -> dict[str, Any]:
    required, extra = PER_COMPONENT[component]
    return {
        "type": "object",
        "required": ["unique_id", "device", "availability_topic", *required],
        "additionalProperties": False,
        "properties": COMMON | extra,
    }


def messages() -> list[tuple[str, dict[str, Any]]]:
    info = DeviceInfo(DEVICE_ID, "Front desk", sw_version="0.1.0")
    return [(t, json.loads(p)) for t, p in discovery_messages("homeassistant", TOPICS, info)]


def test_every_entity_matches_home_assistant_schema() -> None:
    msgs = messages()
    components = [CONFIG_TOPIC.match(topic) for topic, _ in msgs]
    assert all(components), [t for t, _ in msgs]
    kinds = sorted(m.group(1) for m in components if m)
    assert kinds == ["button", "button", "number", "sensor", "sensor", "sensor", "sensor", "switch"]
    for match, (_, config) in zip(components, msgs, strict=True):
        assert match is not None and match.group(2) == DEVICE_ID
        jsonschema.validate(config, schema_for(match.group(1)))
        assert config["availability_topic"] == TOPICS.status
        assert config["device"] == msgs[0][1]["device"]  # one device for all entities
    unique = [c["unique_id"] for _, c in msgs]
    assert len(set(unique)) == len(unique)


def test_topics_are_consistent_with_commands_and_health() -> None:
    snapshot_keys = {"last_voice_to_voice_ms", "turns_today", "errors_today", "volume_percent"}
    for _, config in messages():
        for key in ("state_topic", "command_topic"):
            if key in config:
                assert config[key].startswith(TOPICS.root + "/")
        if "command_topic" in config:
            name = config["command_topic"].removeprefix(TOPICS.cmd_prefix)
            assert name in COMMAND_NAMES
            # what Home Assistant will send must be accepted by the command parser
            sent = [config.get(k) for k in ("payload_on", "payload_off", "payload_press")]
            sent.append("42" if "min" in config else None)  # a number's slider value
            for payload in sent:
                if payload is not None:
                    parse_command(name, payload.encode(), max_bytes=4096, allow_dangerous=False)
        template = config.get("value_template", "")
        if config.get("state_topic") == TOPICS.health:
            (field,) = re.findall(r"value_json\.(\w+)", template)
            assert field in snapshot_keys


def test_removal_messages_are_empty_retained_configs() -> None:
    removal = removal_messages("homeassistant", DEVICE_ID)
    assert [t for t, _ in removal] == [t for t, _ in messages()]
    assert {p for _, p in removal} == {""}


async def test_republished_when_home_assistant_comes_online(
    broker: Mosquitto, observers: list[Observer]
) -> None:
    obs = Observer(broker, "homeassistant/+/+/+/config")
    observers.append(obs)
    watcher = LinkWatcher()
    service = MqttService(mqtt_config(broker), device_config(), None, RecordingTarget(), health,
                          on_link_changed=watcher)  # fmt: skip
    service.start()
    await watcher.wait(LinkState.CONNECTED)
    first = await obs.await_for("homeassistant/#", count=8)
    late = Observer(broker, "homeassistant/+/+/+/config")  # e.g. HA starting later
    observers.append(late)
    assert all(m.retain for m in await late.await_for("homeassistant/#", count=8))
    obs.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
    again = await obs.await_for("homeassistant/#", count=16)
    assert {m.topic for m in again[8:]} == {m.topic for m in first}
    assert json.loads(again[-1].payload)["device"]["suggested_area"] == "Lobby"
    await service.stop()
