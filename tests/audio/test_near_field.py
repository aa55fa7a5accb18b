"""Near-field gate (issue 14): a visitor at 1 m opens a turn, a bystander 3-5 m away
(-15 to -20 dB) does not; a visitor starting inside a bystander's utterance still does."""

from __future__ import annotations

import pytest

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.near_field import NearFieldGate, calibrate
from agentd.audio.vad_gate import VadGate
from agentd.config.sections_audio import VadConfig
from agentd.config.sections_engagement import NearFieldConfig
from agentd.events import SpeechEnded, SpeechStarted, VoicedAudio
from agentd.sim.lobby import ROOM_TONE_DBFS, VISITOR_DBFS, at_level
from agentd.sim.speech import render_noise, render_speech

FMT = AudioFormat(16000)
LINE = "Excuse me, where can I find the meeting rooms?"


def speech_at(level_dbfs: float, text: str = LINE, voice: str = "en-us") -> bytes:
    return at_level(render_speech(text, 16000, voice), level_dbfs).astype("<i2").tobytes()


def config() -> NearFieldConfig:
    visitor, room = speech_at(VISITOR_DBFS), render_noise(3000, 16000, ROOM_TONE_DBFS)
    result = calibrate(visitor, room, FMT)
    assert result.min_level_dbfs == pytest.approx(VISITOR_DBFS - 8.0, abs=0.5)
    return NearFieldConfig(min_level_dbfs=result.min_level_dbfs, min_snr_db=result.min_snr_db)


def run(pcm: bytes, near: NearFieldGate, period_ms: int = 20) -> list[object]:
    """Through the real VAD gate in capture periods of `period_ms` (10, 20 or 30)."""
    from agentd.audio import dsp

    noise = render_noise(len(pcm) // 32 + 2000, 16000, ROOM_TONE_DBFS)
    audio = dsp.mix(noise, bytes(32000) + pcm)
    gate, out, size = VadGate(VadConfig(), 16000, period_ms), [], FMT.bytes_for_ms(period_ms)
    for offset in range(0, len(audio) - size + 1, size):
        chunk = AudioChunk(audio[offset : offset + size], FMT, offset / 32)
        near.observe(chunk.pcm)
        out += near.filter(gate.process(chunk), chunk.at_ms)
    return out


@pytest.mark.parametrize("period_ms", [10, 20, 30])
@pytest.mark.parametrize("relative_db", [-15.0, -20.0])
def test_bystander_is_not_a_turn(relative_db: float, period_ms: int) -> None:
    near = NearFieldGate(config(), FMT)
    out = run(speech_at(VISITOR_DBFS + relative_db, voice="en-gb"), near, period_ms)
    assert out == []
    assert near.rejections and near.passed == 0


@pytest.mark.parametrize("period_ms", [10, 20, 30])
@pytest.mark.parametrize("offset_db", [-3.0, 0.0, 3.0])
def test_visitor_at_one_metre_is_a_turn_with_its_onset(offset_db: float, period_ms: int) -> None:
    """Whatever the capture period: 10 ms chunks are judged in 20 ms frames across chunks."""
    near = NearFieldGate(config(), FMT)
    out = run(speech_at(VISITOR_DBFS + offset_db), near, period_ms)
    assert isinstance(out[0], SpeechStarted) and len(out[0].preroll) > 0
    assert isinstance(out[-1], SpeechEnded)
    voiced_ms = sum(e.chunk.duration_ms for e in out if isinstance(e, VoicedAudio))
    assert voiced_ms > 1000  # the whole utterance passed


def test_visitor_starting_inside_a_bystanders_utterance() -> None:
    from agentd.audio import dsp

    near = NearFieldGate(config(), FMT)
    bystander = speech_at(VISITOR_DBFS - 15.0, "We meet at three in the big room, okay?", "en-gb")
    visitor = bytes(len(bystander) // 2 // 2 * 2) + speech_at(VISITOR_DBFS)
    out = run(dsp.mix(bystander, visitor), near)
    starts = [e for e in out if isinstance(e, SpeechStarted)]
    assert len(starts) == 1
    assert starts[0].at_ms >= 1000 + len(bystander) / 32 / 2 - 100  # at the visitor, not before


def test_disabled_passes_everything() -> None:
    near = NearFieldGate(NearFieldConfig(enabled=False), FMT)
    out = run(speech_at(VISITOR_DBFS - 20.0), near)
    assert isinstance(out[0], SpeechStarted)


def test_a_door_slam_as_loud_as_a_visitor_is_not_a_turn() -> None:
    """webrtcvad calls a slam speech and it is as loud as a visitor: no vowel, no turn."""
    from agentd.sim.lobby import door_slam

    near = NearFieldGate(config(), FMT)
    slam = at_level(door_slam(), VISITOR_DBFS).astype("<i2").tobytes()
    assert run(slam + bytes(16000) + slam, near) == []


def test_periodicity_tells_vowels_from_noise() -> None:
    from agentd.audio.near_field import MIN_PERIODICITY, periodicity

    vowel = speech_at(VISITOR_DBFS, "Ah")
    frames = [vowel[i : i + 640] for i in range(0, len(vowel) - 640, 640)]
    assert max(periodicity(f, 16000) for f in frames) > 0.8
    noise = render_noise(200, 16000, -20.0)
    assert periodicity(noise[:640], 16000) < MIN_PERIODICITY
