"""The engagement state everywhere (issue 14), through the real daemon: a visitor engages
it and says goodbye; the retained MQTT `engagement` document (read by the real
`mosquitto_sub`), Home Assistant's engagement entity and the LEDs (MockFactory pins)
follow waiting -> engaged -> waiting."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agentd.events import AgentState
from agentd.sim.harness import SimulatedKiosk
from tests.e2e.conftest import FAST, LineReader, write_scenario
from tests.helpers.mosquitto import Mosquitto
from tests.helpers.mqtt_clients import retained

pytestmark = pytest.mark.timeout(120)

DEVICE = "kiosk-eng"
RED, GREEN, BLUE = 5, 6, 13


def daemon_toml(broker: Mosquitto) -> str:
    return f"""
[device]
id = "{DEVICE}"
name = "Engagement kiosk"

[mqtt]
enabled = true
host = "{broker.host}"
port = {broker.port}
max_backoff_s = 1.0

[gpio]
enabled = true
pin_factory = "mock"

[gpio.leds]
driver = "rgb"
pins = [{RED}, {GREEN}, {BLUE}]
brightness = 1.0
"""


def retained_json(broker: Mosquitto, topic: str) -> Any:
    """The retained document on `topic`, as a fresh `mosquitto_sub` is sent it."""
    (line,) = retained(broker, topic)
    return json.loads(line.split(" ", 1)[1])


async def test_engagement_transitions_on_mqtt_home_assistant_and_leds(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    topic = f"agentd/{DEVICE}/engagement"
    watch = subprocess.Popen(
        ["stdbuf", "-oL", "mosquitto_sub", "-h", broker.host, "-p", str(broker.port),
         "-t", topic, "-q", "1"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = LineReader(watch)
    turns = [
        {"visitor": "Where is the lift, please?", "reply": "It is on your right.",
         "pause_before_ms": 1500},
        {"visitor": "Thanks, goodbye.", "reply": "Goodbye!", "pause_before_ms": 2500},
    ]  # fmt: skip
    scenario = write_scenario(tmp_path / "s.toml", turns, tail_ms=4000)
    kiosk = SimulatedKiosk(scenario, tmp_path / "out", profile=FAST,
                           extra_toml=daemon_toml(broker))  # fmt: skip
    try:
        service = await kiosk.start()
        await kiosk.wait_for(lambda: service.reporting.links["mqtt"].value == "connected", 10)
        await kiosk.wait_for(lambda: lines.has('"state":"waiting"'), 10)
        waiting_doc = await asyncio.to_thread(retained_json, broker, topic)
        discovery = await asyncio.to_thread(
            retained_json, broker, f"homeassistant/device/{DEVICE}/config"
        )
        # engaged by the visitor's speech (open mode, the default), then idle between turns
        await kiosk.wait_for(lambda: service.reporting.engagement == "engaged", 20)
        engaged_doc = await asyncio.to_thread(retained_json, broker, topic)
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) >= 1, 20)
        await kiosk.wait_for(lambda: kiosk.conversation.state is AgentState.IDLE, 10)
        lights = service.gpio.lights
        assert lights is not None
        engaged_idle_shown = lights.engaged
        red = service.gpio.factory.pin(RED)
        # slow_blink white: the red channel reaches full (idle is dim white, no state is red)
        await kiosk.wait_for(lambda: red.state == 1.0, 5)
        # the goodbye turn is answered, then the conversation ends
        await kiosk.wait_for(lambda: service.reporting.engagement == "waiting", 30)
        await kiosk.wait_for(lambda: lines.has('"reason":"goodbye"'), 10)
        ended_doc = await asyncio.to_thread(retained_json, broker, topic)
        assert lights.settled(5)
        pins_after = [service.gpio.factory.pin(p).state for p in (RED, GREEN, BLUE)]
        waiting_idle_shown = not lights.engaged and lights.state is AgentState.IDLE
    finally:
        await kiosk.stop()
        broker.kill()
        stream = lines.close()

    assert waiting_doc == {"state": "waiting", "reason": "start", "modes": ["open", "button"]}
    assert engaged_doc["state"] == "engaged" and engaged_doc["reason"] == "speech"
    assert ended_doc["state"] == "waiting" and ended_doc["reason"] == "goodbye"
    states = [json.loads(line)["state"] for line in stream.splitlines()]
    assert states == ["waiting", "engaged", "waiting"], stream
    entity = discovery["components"]["engagement"]
    assert entity["state_topic"] == topic and entity["value_template"] == "{{ value_json.state }}"
    assert entity["options"] == ["waiting", "engaged"]
    assert engaged_idle_shown and waiting_idle_shown
    assert pins_after == pytest.approx([0.15, 0.15, 0.15])  # waiting: idle's dim white
