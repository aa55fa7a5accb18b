"""Link-level faults through the real daemon: STT refused/auth, network gone, audio
device faults, MQTT broker restart. Each: the daemon keeps running, the visitor hears
something within 2 s where a turn was in flight, the fault is reported, and the next
turn after the fault clears works.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agentd.events import LinkState
from agentd.sim.harness import SimulatedKiosk
from tests.e2e.conftest import FAST, LineReader, write_scenario
from tests.helpers.mosquitto import Mosquitto

pytestmark = pytest.mark.timeout(240)

# Issue 7: "network gone for 60 s" (AGENTD_NETWORK_DOWN_S shortens it for local runs).
NETWORK_DOWN_S = float(os.environ.get("AGENTD_NETWORK_DOWN_S", "60"))

TIMEOUTS_TOML = """
[stt]
final_timeout_s = 2.0
connect_timeout_s = 1.0
max_backoff_s = 2.0
auth_retry_s = 5.0

[llm]
first_token_timeout_s = 1.5
max_retries = 0

[tts]
first_byte_timeout_s = 1.0
"""


def _turns(count: int, pause_ms: int = 500) -> list[dict[str, Any]]:
    return [
        {
            "visitor": f"Question number {i + 1}, please.",
            "reply": f"Sure, answer {i + 1}.",
            "pause_before_ms": pause_ms,
        }
        for i in range(count)
    ]


def _heard_after(kiosk: SimulatedKiosk, at_ms: float) -> float | None:
    for played_at, chunk in kiosk.speaker.played:
        if played_at >= at_ms and any(chunk):
            return float(played_at) - at_ms
    return None


async def test_stt_refused_then_auth_refused_then_recovers(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.toml", _turns(4, pause_ms=900), tail_ms=6000)
    kiosk = SimulatedKiosk(scenario, tmp_path / "out", profile=FAST, extra_toml=TIMEOUTS_TOML)
    await kiosk.start()
    stack = kiosk.stack
    assert stack is not None
    stt = kiosk.conversation.parts.stt
    try:
        # Turn 1: the STT service refuses every connection while the visitor speaks.
        stack.stt.refuse_next(1000, "http503")
        await kiosk.wait_for(lambda: any(f.link == "stt" for f in kiosk.observed.faults), 20)
        fault = next(f for f in kiosk.observed.faults if f.link == "stt")
        await kiosk.wait_for(lambda: _heard_after(kiosk, fault.at_ms) is not None, 5)
        heard_ms = _heard_after(kiosk, fault.at_ms)
        stack.stt.refuse_next(0)
        # Turn 2: the key is refused (auth): FAILED, one clear fault, no retry storm.
        stack.stt.api_key = "rotated-key"
        sessions_before = len(stack.stt.sessions)
        await kiosk.wait_for(
            lambda: any(f.error_kind == "stt_auth" for f in kiosk.observed.faults), 25
        )
        await kiosk.wait_for(lambda: stt.link_state is LinkState.FAILED, 5)
        health = kiosk.service.reporting.health()
        await asyncio.sleep(2.0)
        attempts = len(stack.stt.sessions) - sessions_before
        stack.stt.api_key = kiosk.api_key  # operator fixed the key
        # A later turn works again once the auth retry interval has passed.
        await kiosk.wait_for(lambda: any(t.outcome == "ok" for t in kiosk.observed.turns), 40)
    finally:
        assert await kiosk.stop() == 0
    assert heard_ms is not None and heard_ms <= 2000
    assert health["links"]["stt"] == "failed"
    assert attempts <= 2
    assert kiosk.observed.lines[-1][0] == "agent"


async def test_network_gone_then_back(tmp_path: Path) -> None:
    turns = _turns(2, pause_ms=900)
    # The second visitor comes after the outage (the mic waits for the first reply, the
    # fallback line, then this pause).
    turns[1]["pause_before_ms"] = int(NETWORK_DOWN_S * 1000) + 3000
    scenario = write_scenario(tmp_path / "s.toml", turns, tail_ms=4000)
    kiosk = SimulatedKiosk(scenario, tmp_path / "out", profile=FAST, extra_toml=TIMEOUTS_TOML)
    await kiosk.start()
    stack = kiosk.stack
    assert stack is not None
    try:
        await asyncio.to_thread(stack.network_down)
        await kiosk.wait_for(lambda: bool(kiosk.observed.faults), 20)
        fault = kiosk.observed.faults[0]
        await kiosk.wait_for(lambda: _heard_after(kiosk, fault.at_ms) is not None, 5)
        heard_ms = _heard_after(kiosk, fault.at_ms)
        frames_at_fault = kiosk.conversation.frames_processed
        await asyncio.sleep(NETWORK_DOWN_S)
        # still listening throughout (audio loop running, watchdog fed)
        alive_while_down = kiosk.conversation.frames_processed > frames_at_fault + 100
        await asyncio.to_thread(stack.network_up)
        await kiosk.wait_for(lambda: any(t.outcome == "ok" for t in kiosk.observed.turns), 40)
    finally:
        assert await kiosk.stop() == 0
    assert alive_while_down
    assert heard_ms is not None and heard_ms <= 2000


async def test_capture_xrun_and_device_lost_then_back(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    write_scenario(scenario, _turns(2, pause_ms=2500), tail_ms=3000)
    with scenario.open("a") as handle:
        handle.write('\n[[fault]]\nat_ms = 300\nkind = "xrun"\nduration_ms = 60\n')
        handle.write('\n[[fault]]\nat_ms = 800\nkind = "lost"\nduration_ms = 1200\n')
    kiosk = SimulatedKiosk(scenario, tmp_path / "out", profile=FAST)
    await kiosk.start()
    try:
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 2, 40)
        health = kiosk.service.reporting.health()
    finally:
        assert await kiosk.stop() == 0
    assert health["xruns"] >= 1
    assert [t.outcome for t in kiosk.observed.turns] == ["ok", "ok"]
    assert any(f.error_kind == "audio_device_lost" for f in kiosk.observed.faults)
    assert health["links"]["capture"] == "connected"


async def test_broker_killed_and_restarted_mid_run(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path, autosave_s=1).start()  # the watcher's session survives kill -9
    sub = subprocess.Popen(
        # line-buffered: the test waits on each line; a pipe would block-buffer them
        ["stdbuf", "-oL", "mosquitto_sub", "-h", broker.host, "-p", str(broker.port),
         "-q", "1", "-c", "-i", "metrics-watch", "-t", "agentd/kiosk-mq/metrics/turn"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = LineReader(sub)
    extra = f"""
[device]
id = "kiosk-mq"

[mqtt]
enabled = true
host = "{broker.host}"
port = {broker.port}
max_backoff_s = 1.0
discovery = false
"""
    scenario = write_scenario(tmp_path / "s.toml", _turns(3, pause_ms=800), tail_ms=2000)
    kiosk = SimulatedKiosk(scenario, tmp_path / "out", profile=FAST, extra_toml=extra)
    try:
        await kiosk.start()
        links = kiosk.service.reporting.links
        await kiosk.wait_for(lambda: links["mqtt"] is LinkState.CONNECTED, 10)
        # The watcher's persistent session is on the broker's disk (autosave after it).
        await kiosk.wait_for(lambda: _session_saved(broker, "metrics-watch"), 10)
        broker.kill()
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) >= 2, 40)  # answered while away
        await asyncio.to_thread(broker.restart)
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 3, 40)
        await kiosk.wait_for(lambda: links["mqtt"] is LinkState.CONNECTED, 15)
        # Until the watcher has every turn's metrics (or the wait times out; asserted below).
        turn_ids = {t.turn_id for t in kiosk.observed.turns}
        await kiosk.wait_for(lambda: turn_ids <= _turn_ids(lines.lines), 15)
    finally:
        await kiosk.stop()
        broker.kill()
        out = lines.close()
    ids = _turn_ids(out.splitlines())
    # Metrics of the turns answered while the broker was down arrived after it came back.
    assert {t.turn_id for t in kiosk.observed.turns} <= ids


def _session_saved(broker: Mosquitto, client_id: str) -> bool:
    """The broker saved its database after `client_id` subscribed (mosquitto's log)."""
    log = broker.log_file.read_text(errors="replace")
    subscribed = log.find(f"Sending SUBACK to {client_id}")
    return subscribed >= 0 and "Saving in-memory database" in log[subscribed:]


def _turn_ids(lines: list[str]) -> set[str]:
    return {json.loads(line)["turn_id"] for line in list(lines) if line.strip()}
