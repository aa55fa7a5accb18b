"""The engagement state on MQTT (issue 14): a retained `engagement` document and the Home
Assistant entity that reads it, against a real Mosquitto with the real `mosquitto_sub`."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from typing import Any

import pytest

from agentd.conversation.engagement import EngagementState
from agentd.events import AgentState, LinkState
from agentd.mqtt import MqttService
from agentd.mqtt.topics import ENGAGEMENT_STATES
from agentd.service.reporting import Reporting
from agentd.service.sdnotify import Notifier
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
ROOT = f"agentd/{DEVICE_ID}"
DISCOVERY = f"homeassistant/device/{DEVICE_ID}/config"


def retained(broker: Mosquitto, *topics: str) -> dict[str, str]:
    """topic -> payload of the retained messages a fresh `mosquitto_sub` is sent."""
    argv = ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-v",
            "--retained-only", "-W", "2"]  # fmt: skip
    for topic in topics:
        argv += ["-t", topic]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


# Home Assistant drops these keys from json_attributes (homeassistant/components/mqtt/
# mixins.py, MQTT_ATTRIBUTES_BLOCKED; the ones a document of ours could carry).
HA_BLOCKED_ATTRIBUTES = {"state", "name", "icon", "device_class", "unique_id", "available"}


def ha_attributes(discovery: dict[str, Any], retained_payloads: dict[str, str]) -> dict[str, Any]:
    """The engagement entity's attributes as Home Assistant keeps them."""
    entity = discovery["components"]["engagement"]
    document = json.loads(retained_payloads[entity["json_attributes_topic"]])
    return {k: v for k, v in document.items() if k not in HA_BLOCKED_ATTRIBUTES}


def ha_state(discovery: dict[str, Any], retained_payloads: dict[str, str]) -> str:
    """What Home Assistant shows for the engagement entity: its value_template (the one
    shape `{{ value_json.<key> }}`, evaluated as Jinja2 would) on its state topic."""
    entity = discovery["components"]["engagement"]
    key = re.fullmatch(r"\{\{ value_json\.(\w+) \}\}", entity["value_template"])
    assert key is not None, entity["value_template"]
    value = str(json.loads(retained_payloads[entity["state_topic"]])[key.group(1)])
    assert value in entity["options"]  # an enum sensor refuses any other value
    return value


def test_engagement_values_are_the_policy_states() -> None:
    assert tuple(s.value for s in EngagementState) == ENGAGEMENT_STATES


async def test_transitions_change_the_retained_document_and_the_ha_entity(
    broker: Mosquitto, observers: list[Observer]
) -> None:
    obs = Observer(broker, f"{ROOT}/engagement")
    observers.append(obs)
    reporting = Reporting(Notifier({}), started_at=lambda: 0.0)
    reporting.engagement_modes = ("wake_word", "button")
    reporting.engagement_changed(EngagementState.WAITING, "start")  # before MQTT runs
    watcher = LinkWatcher()
    service = MqttService(mqtt_config(broker), device_config(), None, RecordingTarget(), health,
                          on_link_changed=watcher)  # fmt: skip
    reporting.attach_mqtt(service)
    service.start()
    try:
        await watcher.wait(LinkState.CONNECTED)
        await obs.await_for(f"{ROOT}/engagement", count=1)
        seen = await asyncio.to_thread(retained, broker, f"{ROOT}/engagement", DISCOVERY)
        discovery = json.loads(seen[DISCOVERY])
        assert json.loads(seen[f"{ROOT}/engagement"]) == {
            "state": "waiting", "reason": "start", "modes": ["wake_word", "button"]}  # fmt: skip
        assert ha_state(discovery, seen) == "waiting"

        reporting.state_changed(AgentState.IDLE)
        reporting.engagement_changed(EngagementState.ENGAGED, "wake_word")
        await obs.await_for(f"{ROOT}/engagement", count=2)
        seen = await asyncio.to_thread(retained, broker, f"{ROOT}/engagement", f"{ROOT}/state")
        assert ha_state(discovery, seen) == "engaged"
        assert ha_attributes(discovery, seen) == {"reason": "wake_word",
                                                  "modes": ["wake_word", "button"]}  # fmt: skip
        assert seen[f"{ROOT}/state"] == "idle"  # `state` stays the bare enum value

        reporting.engagement_changed(EngagementState.ENGAGED, "wake_word")  # no change
        reporting.engagement_changed(EngagementState.WAITING, "window_closed")
        msgs = await obs.await_for(f"{ROOT}/engagement", count=3)
        assert [json.loads(m.payload)["state"] for m in msgs] == ["waiting", "engaged", "waiting"]
        seen = await asyncio.to_thread(retained, broker, f"{ROOT}/engagement")
        assert ha_state(discovery, seen) == "waiting"
        assert json.loads(seen[f"{ROOT}/engagement"])["reason"] == "window_closed"

        broker.kill()  # a broker that restarts empty gets the document again on reconnect
        broker.start()
        await watcher.wait(LinkState.BACKOFF)
        await watcher.wait(LinkState.CONNECTED)
        seen = await asyncio.to_thread(retained, broker, f"{ROOT}/engagement")
        assert json.loads(seen[f"{ROOT}/engagement"])["reason"] == "window_closed"
    finally:
        await service.stop()
