"""Diagnostics end to end: the daemon on the simulated devices, commands over a real
Mosquitto with the real `mosquitto_rr` (MQTT 5 request/response).

The sim room has a known echo (audio.sim.echo_db / echo_delay_ms): the self-test must
recover it within +-5 ms and +-2 dB. One captured turn is fetched in chunks, resumed
from an offset, reassembled into a valid WAV, and deleted once confirmed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import wave
from pathlib import Path
from typing import Any

import pytest

from agentd.events import AgentState
from agentd.sim.harness import SimulatedKiosk
from tests.e2e.conftest import FAST, write_scenario
from tests.helpers.mosquitto import Mosquitto
from tests.helpers.mqtt_clients import request

pytestmark = pytest.mark.timeout(120)

DEVICE = "kiosk-diag"
ECHO_DB, ECHO_DELAY_MS = -14.0, 90.0


def toml(broker: Mosquitto, capture_dir: Path) -> str:
    return f"""
[device]
id = "{DEVICE}"
name = "Diagnostics kiosk"

[privacy]
allow_remote_capture = true
capture_dir = "{capture_dir}"
capture_max_turns = 3

[audio.sim]
echo_db = {ECHO_DB}
echo_delay_ms = {ECHO_DELAY_MS}

[mqtt]
enabled = true
host = "{broker.host}"
port = {broker.port}
health_interval_s = 1.0
max_backoff_s = 1.0
"""


async def rr(broker: Mosquitto, command: str, payload: str = "") -> dict[str, Any]:
    return await request(broker, DEVICE, command, payload, reply_to="ops", wait_s=15)


async def fetch(broker: Mosquitto, name: str, length: int) -> tuple[bytes, str]:
    """Fetch one capture file in chunks; the second chunk is asked for twice (a resume)."""
    data, offset, sha, asked = bytearray(), 0, "", 0
    while True:
        reply = await rr(broker, "capture_get", json.dumps(
            {"file": name, "offset": offset, "length": length}))  # fmt: skip
        assert reply["ok"], reply
        result = reply["result"]
        assert result["offset"] == offset
        sha = result["sha256"]
        asked += 1
        if asked == 2:  # pretend this reply was lost: ask again from the same offset
            again = await rr(broker, "capture_get", json.dumps(
                {"file": name, "offset": offset, "length": length}))  # fmt: skip
            assert again["result"]["data"] == result["data"]
        data += base64.b64decode(result["data"])
        if result["next_offset"] is None:
            return bytes(data), sha
        offset = result["next_offset"]


async def test_self_test_capture_and_config_over_mqtt(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    turns = [{"visitor": "Hello there, is anyone around?", "reply": "Hello! How can I help?",
              "pause_before_ms": 7000}]  # fmt: skip
    scenario = write_scenario(tmp_path / "s.toml", turns, tail_ms=20000)
    capture_dir = tmp_path / "capture"
    kiosk = SimulatedKiosk(
        scenario, tmp_path / "out", profile=FAST, extra_toml=toml(broker, capture_dir)
    )
    try:
        service = await kiosk.start()
        await kiosk.wait_for(lambda: service.reporting.links["mqtt"].value == "connected", 10)
        self_test = await rr(broker, "self_test")
        health = service.reporting.health()
        config = await rr(broker, "config")
        bad = [
            await rr(broker, "capture", json.dumps({"turns": 4})),  # over capture_max_turns
            await rr(broker, "capture", json.dumps({"turns": 1, "when": "now"})),
            await rr(broker, "capture_get", json.dumps({"file": "nope.wav"})),
            await rr(broker, "self_test", json.dumps({"loud": True})),
        ]
        armed = await rr(broker, "capture", json.dumps({"turns": 1}))
        armed_health = service.reporting.health()["capture"]
        busy_states = (AgentState.LISTENING, AgentState.THINKING, AgentState.SPEAKING)
        await kiosk.wait_for(lambda: kiosk.conversation.state in busy_states, 20)
        refused = await rr(broker, "self_test")
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 1, 20)
        await service.diagnostics.capture.flush()
        listing = await rr(broker, "capture_get")
        files = {f["file"]: f["bytes"] for f in listing["result"]["files"]}
        wav_name = next(n for n in files if n.endswith(".wav"))
        json_name = wav_name.replace(".wav", ".json")
        wav_bytes, wav_sha = await fetch(broker, wav_name, 40000)
        doc_bytes, _ = await fetch(broker, json_name, 65536)
        past_end = await rr(broker, "capture_get", json.dumps(
            {"file": wav_name, "offset": len(wav_bytes) + 1}))  # fmt: skip
        confirm = await rr(broker, "capture_get", json.dumps(
            {"file": wav_name, "offset": len(wav_bytes)}))  # fmt: skip
        after = await rr(broker, "capture_get")
        final_health = service.reporting.health()["capture"]
    finally:
        await kiosk.stop()
        broker.kill()

    # 1. the self-test recovered the sim room's echo, and says so everywhere
    assert self_test["ok"], self_test
    result = self_test["result"]
    assert result["echo_delay_ms"] == pytest.approx(ECHO_DELAY_MS, abs=5.0)
    assert result["echo_coupling_db"] == pytest.approx(ECHO_DB, abs=2.0)
    assert result["duration_ms"] < 10_000
    assert result["noise_floor_dbfs"] == pytest.approx(-55.0, abs=6.0)  # write_scenario's
    summary = health["self_test"]
    assert isinstance(summary, dict) and summary["echo_delay_ms"] == result["echo_delay_ms"]
    assert ("self_test", True) in [(n, p.get("ok")) for n, p in kiosk.observed.events]
    # 2. config drift: the hash in health, the effective config with secrets as set/unset
    assert config["ok"] and config["result"]["config_hash"] == health["config_hash"]
    assert config["result"]["secrets"]["openai_api_key"] == "set"
    assert config["result"]["secrets"]["mqtt_password"] == "unset"
    assert config["result"]["config"]["audio"]["sim"]["echo_db"] == ECHO_DB
    assert config["result"]["hardware_profiles"][0].endswith("kiosk-base.toml")
    assert health["hardware_profiles"] == config["result"]["hardware_profiles"]
    # 3. bad input: an error naming the field, nothing armed
    assert [b["ok"] for b in bad] == [False] * 4
    assert "'turns'" in bad[0]["error"]["message"] and "capture_max_turns" in json.dumps(bad[0])
    assert "'when'" in bad[1]["error"]["message"]
    assert "'file'" in bad[2]["error"]["message"]
    assert "'loud'" in bad[3]["error"]["message"]
    # 4. capture: armed and visible, refused self-test while the visitor talked
    assert armed["ok"] and armed_health["armed_turns"] == 1  # type: ignore[index]
    assert not refused["ok"] and refused["error"]["code"] == "busy"
    assert "visitor is talking" in refused["error"]["message"]
    assert files[wav_name] == len(wav_bytes) and files[json_name] == len(doc_bytes)
    assert hashlib.sha256(wav_bytes).hexdigest() == wav_sha
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1
        seconds = wav.getnframes() / 16000
    doc = json.loads(doc_bytes)
    heard, played = doc["segments"]
    assert heard["duration_s"] > 1.0 and played["duration_s"] > 0.5  # speech, then the reply
    assert seconds == pytest.approx(played["start_s"] + played["duration_s"], abs=0.01)
    whats = [e["what"] for e in doc["timeline"]]
    for mark in ("vad.speech_started", "vad.speech_ended", "stt.final", "state.thinking",
                 "tts.first_audio", "state.speaking"):  # fmt: skip
        assert mark in whats, whats
    # The visitor pauses at the comma: STT may final "Hello there," first and the rest
    # after; the turn's finals together carry the whole line.
    finals = " ".join(e["text"] for e in doc["timeline"] if e["what"] == "stt.final")
    assert "hello there" in finals.lower() and "anyone around" in finals.lower()
    assert doc["metrics"]["llm_ttft_ms"] is not None
    # 5. retrieval ends in deletion; capture disarmed itself after its one turn
    assert not past_end["ok"] and "'offset'" in past_end["error"]["message"]
    assert confirm["ok"] and confirm["result"]["deleted"] is True
    assert wav_name not in [f["file"] for f in after["result"]["files"]]
    assert not (capture_dir / wav_name).exists()
    assert final_health["armed_turns"] == 0  # type: ignore[index]
