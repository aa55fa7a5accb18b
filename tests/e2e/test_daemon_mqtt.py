"""The daemon against a real Mosquitto: availability, state, discovery, remote commands.

Commands go through the real broker with the real CLI clients (`mosquitto_rr` for MQTT 5
request/response) to the real daemon, and their effects are checked on the daemon.
"""

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
from tests.helpers.mqtt_clients import request, retained

pytestmark = pytest.mark.timeout(120)

DEVICE = "kiosk-cmd"


def mqtt_toml(broker: Mosquitto) -> str:
    return f"""
[device]
id = "{DEVICE}"
name = "Test kiosk"

[mqtt]
enabled = true
host = "{broker.host}"
port = {broker.port}
health_interval_s = 1.0
max_backoff_s = 1.0
"""


async def rr(broker: Mosquitto, command: str, payload: str = "") -> dict[str, Any]:
    return await request(broker, DEVICE, command, payload)


async def test_daemon_commands_over_mqtt(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    turns = [{"visitor": "Hello there, anyone around?", "reply": "Hello! How can I help?",
              "pause_before_ms": 3000}]  # fmt: skip
    scenario = write_scenario(tmp_path / "s.toml", turns, tail_ms=60000)
    kiosk = SimulatedKiosk(scenario, tmp_path / "out", profile=FAST, extra_toml=mqtt_toml(broker))
    try:
        service = await kiosk.start()
        # CONNECTED is reported after the command subscriptions were sent on the link.
        await kiosk.wait_for(lambda: service.reporting.links["mqtt"].value == "connected", 10)
        status = await rr(broker, "status")
        assert status["ok"] and status["result"]["links"]["mqtt"] == "connected"

        online = await asyncio.to_thread(retained, broker, f"agentd/{DEVICE}/status")
        discovery = await asyncio.to_thread(
            retained, broker, f"homeassistant/device/{DEVICE}/config"
        )

        played_before = len(kiosk.speaker.played)
        say = await rr(broker, "say", json.dumps({"text": "The museum closes in ten minutes."}))
        assert say["ok"], say
        await kiosk.wait_for(lambda: kiosk.conversation.state is AgentState.SPEAKING, 10)
        await kiosk.wait_for(lambda: kiosk.conversation.state is AgentState.IDLE, 15)
        spoken = [c for _, c in kiosk.speaker.played[played_before:] if any(c)]
        announced = [r.text for r in kiosk.stack.tts.requests] if kiosk.stack else []

        volume = await rr(broker, "volume", "40")
        muted = await rr(broker, "mute")
        state_muted = kiosk.conversation.state
        unmuted = await rr(broker, "unmute")
        prompt = await rr(broker, "set_prompt", json.dumps({"prompt": "You are Ada, a robot."}))
        persona_file = tmp_path / "out" / "state" / "persona.txt"
        messages = kiosk.conversation.parts.history.messages_for_request("hi")
        bad_json = await rr(broker, "volume", "{not json")
        unknown = await rr(broker, "self_destruct")

        config = tmp_path / "out" / "kiosk.toml"
        good = config.read_text()
        config.write_text(good + "\n[audio.vad]\naggressiveness = 9\n")
        bad_reload = await rr(broker, "reload_config")
        config.write_text(good)
        good_reload = await rr(broker, "reload_config")
        still_running = not kiosk._task.done() if kiosk._task else False

        restart = await rr(broker, "restart")
        task = kiosk._task
        assert task is not None
        code = await asyncio.wait_for(task, 10)
        kiosk._task = None
    finally:
        await kiosk.stop()
        broker.kill()

    assert f"agentd/{DEVICE}/status online" in online
    assert any('"platform":"sensor"' in line for line in discovery)
    assert any('"platform":"switch"' in line for line in discovery)
    assert "The museum closes in ten minutes." in " ".join(announced)
    assert len(spoken) > 25  # > 0.5 s of audible announcement
    assert volume["ok"] and service.audio.speaker.volume == pytest.approx(0.4)
    assert muted["ok"] and state_muted is AgentState.MUTED and unmuted["ok"]
    assert prompt["ok"] and persona_file.read_text() == "You are Ada, a robot."
    assert messages[0]["content"] == "You are Ada, a robot."
    assert not bad_json["ok"] and not unknown["ok"]
    assert not bad_reload["ok"] and "audio.vad.aggressiveness" in json.dumps(bad_reload)
    assert good_reload["ok"] and still_running
    assert restart["ok"] and code == 75  # EX_TEMPFAIL: systemd's Restart=on-failure restarts


async def test_no_secret_ever_reaches_mqtt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Canary keys (cloud and MQTT password) never appear in any MQTT traffic."""
    import secrets as pysecrets

    api_canary = f"sk-canary-{pysecrets.token_hex(12)}"
    mqtt_canary = f"pw-canary-{pysecrets.token_hex(12)}"
    broker = Mosquitto(
        tmp_path, users={DEVICE: mqtt_canary, "watcher": "watcher-pw"}, allow_anonymous=False
    ).start()
    watch = subprocess.Popen(
        # line-buffered: the test waits on each line; a pipe would block-buffer them
        ["stdbuf", "-oL", "mosquitto_sub", "-h", broker.host, "-p", str(broker.port),
         "-u", "watcher", "-P", "watcher-pw", "-t", "#", "-v", "-V", "5"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = LineReader(watch)
    monkeypatch.setenv("MQTT_PASSWORD", mqtt_canary)
    extra = mqtt_toml(broker) + f'username = "{DEVICE}"\n'
    turns = [{"visitor": "Hello, is anyone there?", "reply": "Yes, I am here.",
              "pause_before_ms": 600}]  # fmt: skip
    scenario = write_scenario(tmp_path / "s.toml", turns, tail_ms=8000)
    kiosk = SimulatedKiosk(
        scenario, tmp_path / "out", profile=FAST, extra_toml=extra, api_key=api_canary
    )
    try:
        service = await kiosk.start()
        await kiosk.wait_for(lambda: service.reporting.links["mqtt"].value == "connected", 10)
        assert kiosk.stack is not None
        kiosk.stack.tts.faults.status = 401  # an auth fault: its report must not echo the key
        # Every request of the turn: a reply prepared at the comma and dropped when the
        # visitor goes on may take the first fault with it, its response never read.
        kiosk.stack.tts.faults.remaining = 5
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 1, 20)
        status = await asyncio.to_thread(
            subprocess.run,
            ["mosquitto_rr", "-h", broker.host, "-p", str(broker.port), "-u", "watcher",
             "-P", "watcher-pw", "-V", "5", "-W", "10", "-t", f"agentd/{DEVICE}/cmd/status",
             "-e", f"agentd/{DEVICE}/reply/console", "-m", ""],
            capture_output=True, text=True, timeout=15, check=False,
        )  # fmt: skip
        # The watcher has the fault event and the turn's metrics (what is asserted below).
        await kiosk.wait_for(
            lambda: (
                lines.has(f"agentd/{DEVICE}/event/fault")
                and lines.has(f"agentd/{DEVICE}/metrics/turn")
            ),
            10,
        )
    finally:
        await kiosk.stop()
        broker.kill()
        traffic = lines.close()
    assert f"agentd/{DEVICE}/event/fault" in traffic  # the fault was published ...
    assert f"agentd/{DEVICE}/metrics/turn" in traffic
    assert '"ok": true' in status.stdout or '"ok":true' in status.stdout
    for canary in (api_canary, mqtt_canary):  # ... and no secret anywhere
        assert canary not in traffic
        assert canary not in status.stdout
