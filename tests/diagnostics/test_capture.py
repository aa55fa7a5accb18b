"""Turn capture without the daemon: arming rules, a turn's files, retrieval, caps, expiry."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import wave
from pathlib import Path

import pytest

from agentd.config.sections_core import PrivacyConfig
from agentd.diagnostics.capture import RETRIEVED_GRACE_S, TurnCapture
from agentd.errors import CommandError
from agentd.events import (
    AgentState,
    Outcome,
    SpeechStarted,
    TranscriptPartial,
    TurnFinalized,
    TurnMetrics,
)
from agentd.gpio.patterns import COLOURS, Pattern, capture_variant

ALLOWED = PrivacyConfig(allow_remote_capture=True, capture_max_turns=3, capture_max_bytes=200_000)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, config: PrivacyConfig = ALLOWED) -> tuple[TurnCapture, Clock, list]:
    clock, events = Clock(), []
    capture = TurnCapture(config, str(tmp_path), in_rate_hz=16000, out_rate_hz=16000,
                          notify=lambda n, p: events.append((n, p)), clock=clock)  # fmt: skip
    return capture, clock, events


async def one_turn(capture: TurnCapture, turn_id: str, heard: int = 32000) -> None:
    capture.on_event(SpeechStarted(at_ms=1000.0))
    capture.heard(b"\x01\x00" * (heard // 2))
    capture.on_event(TranscriptPartial("hello", 1400.0))
    capture.on_event(TurnFinalized("hello there", 1900.0))
    capture.on_report("state", AgentState.THINKING)
    capture.played(b"\x02\x00" * 8000, played_bytes=0)
    capture.played(b"\x02\x00" * 8000, played_bytes=0)
    capture.playback_cut(played_bytes=16000)  # a barge-in: only the first half was heard
    capture.on_report("turn", TurnMetrics(turn_id=turn_id, llm_ttft_ms=300.0))
    await capture.flush()


def test_refused_unless_allowed_and_bounded(tmp_path: Path) -> None:
    off, _, events = make(tmp_path, PrivacyConfig())
    with pytest.raises(CommandError, match=r"privacy\.allow_remote_capture") as err:
        off.arm(1)
    assert err.value.code == "forbidden" and off.armed_turns == 0 and not events
    with pytest.raises(CommandError, match=r"privacy\.allow_remote_capture"):
        off.listing()
    on, _, events = make(tmp_path)
    with pytest.raises(
        CommandError, match=r"'turns' must be 0\.\.3 \(privacy\.capture_max_turns\)"
    ):
        on.arm(4)
    assert on.armed_turns == 0 and not events  # nothing changed
    assert on.arm(2)["armed_turns"] == 2
    assert events == [("capture", {"armed_turns": 2, "reason": "requested over MQTT"})]


async def test_a_turn_is_one_wav_and_one_json(tmp_path: Path) -> None:
    capture, _, events = make(tmp_path)
    capture.on_event(SpeechStarted(at_ms=0.0))  # not armed: nothing recorded
    capture.heard(b"\x00" * 100)
    assert capture.health()["recording"] is False
    capture.arm(1)
    await one_turn(capture, "t1")
    with wave.open(str(tmp_path / "t1.wav")) as wav:
        frames = wav.getnframes()
    doc = json.loads((tmp_path / "t1.json").read_text())
    heard, played = doc["segments"]
    assert heard["duration_s"] == 1.0 and played["duration_s"] == 0.5  # cut at the cancel
    assert frames == 16000 + 16000 * 300 // 1000 + 8000
    assert [e["what"] for e in doc["timeline"]] == [
        "vad.speech_started", "stt.partial", "stt.final", "state.thinking"]  # fmt: skip
    assert doc["timeline"][2] == {"t_ms": 900.0, "what": "stt.final", "text": "hello there"}
    assert doc["metrics"]["llm_ttft_ms"] == 300.0
    assert capture.armed_turns == 0 and events[-1][1]["armed_turns"] == 0  # disarmed itself


async def test_a_superseded_reply_does_not_end_the_captured_turn(tmp_path: Path) -> None:
    """The visitor went on: the dropped reply's record is a mark in the timeline, the
    capture goes on to the answer and takes one armed turn, not two."""
    capture, _, _ = make(tmp_path)
    capture.arm(2)
    capture.on_event(SpeechStarted(at_ms=1000.0))
    capture.heard(b"\x01\x00" * 8000)
    dropped = TurnMetrics(turn_id="t0", llm_requests=1, outcome=Outcome.SUPERSEDED)
    capture.on_report("turn", dropped)
    assert capture.health()["recording"] is True and capture.armed_turns == 2
    capture.heard(b"\x01\x00" * 8000)  # the rest of the turn
    capture.on_report("turn", TurnMetrics(turn_id="t1"))
    await capture.flush()
    assert not (tmp_path / "t0.json").exists()
    doc = json.loads((tmp_path / "t1.json").read_text())
    assert doc["segments"][0]["duration_s"] == 1.0  # both parts of what the visitor said
    (mark,) = [e for e in doc["timeline"] if e["what"] == "reply.superseded"]
    assert (mark["turn_id"], mark["llm_requests"]) == ("t0", 1)
    assert capture.armed_turns == 1


async def test_chunked_resumable_retrieval_then_deletion(tmp_path: Path) -> None:
    capture, clock, _ = make(tmp_path)
    capture.arm(1)
    await one_turn(capture, "t2")
    size = (tmp_path / "t2.wav").stat().st_size
    got, offset = bytearray(), 0
    while offset is not None:
        chunk = capture.read_chunk("t2.wav", offset, 10000)
        again = capture.read_chunk("t2.wav", offset, 10000)  # resumed from the same offset
        assert again["data"] == chunk["data"]
        got += base64.b64decode(chunk["data"])
        offset = chunk["next_offset"]
    assert got == (tmp_path / "t2.wav").read_bytes() and len(got) == size
    with pytest.raises(CommandError, match=rf"'offset' {size + 1} is past the end"):
        capture.read_chunk("t2.wav", size + 1, 100)
    assert (tmp_path / "t2.wav").exists()  # a bad offset changed nothing
    clock.now += RETRIEVED_GRACE_S + 1  # fully served, never confirmed: gone after the grace
    assert [f["file"] for f in capture.listing()["files"]] == ["t2.json"]
    assert not (tmp_path / "t2.wav").exists()
    meta = (tmp_path / "t2.json").stat().st_size
    assert capture.read_chunk("t2.json", meta, 1)["deleted"] is True  # confirmed: at once
    with pytest.raises(CommandError, match=r"'file' 't2\.json' is not stored") as err:
        capture.read_chunk("t2.json", 0, 1)
    assert err.value.code == "not_found"


async def test_age_and_size_caps(tmp_path: Path) -> None:
    capture, clock, _ = make(tmp_path)
    capture.arm(3)
    await one_turn(capture, "old")
    clock.now += ALLOWED.capture_max_age_s + 1
    for name in ("old.wav", "old.json"):  # files age by mtime, like on the kiosk
        os.utime(tmp_path / name, (clock.now - ALLOWED.capture_max_age_s - 1,) * 2)
    assert capture.health()["stored_files"] == 0 and not list(tmp_path.iterdir())
    await one_turn(capture, "big", heard=400_000)  # over capture_max_bytes (200 kB)
    doc = json.loads((tmp_path / "big.json").read_text())
    assert doc["truncated"] is True
    assert capture.health()["stored_bytes"] <= ALLOWED.capture_max_bytes


async def test_switching_capture_off_deletes_and_disarms(tmp_path: Path) -> None:
    capture, _, events = make(tmp_path)
    capture.arm(2)
    await one_turn(capture, "t3")
    capture.reconfigure(dataclasses.replace(ALLOWED, allow_remote_capture=False), str(tmp_path))
    assert capture.armed_turns == 0 and not list(tmp_path.iterdir())
    why = "privacy.allow_remote_capture turned off"
    assert events[-1] == ("capture", {"armed_turns": 0, "reason": why})


def test_capture_led_variant_differs_from_every_state() -> None:
    assert capture_variant(Pattern("on", COLOURS["blue"]), colour=True) == Pattern(
        "on", COLOURS["magenta"]
    )
    assert capture_variant(Pattern("off"), colour=True).effect == "dim"  # idle still visible
    assert capture_variant(Pattern("on"), colour=False).effect == "slow_blink"
