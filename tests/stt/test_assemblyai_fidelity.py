"""AssemblyAiStt against the emulator's stricter, per-model behaviour (issue 13)."""

from __future__ import annotations

from typing import Any

import pytest
from _stt_support import RATE, TEXTS, Collector

from agentd.events import FaultRaised, TurnFinalized
from agentd.sim.assemblyai_server import AssemblyAiEmulator, SessionRecord
from agentd.sim.speech import render_noise, render_speech
from agentd.stt.assemblyai import AssemblyAiStt
from agentd.stt.session import MAX_AHEAD_MS, REPLAY_SPEED, SLOW_MAX_AHEAD_MS

pytestmark = pytest.mark.timeout(40)

PERIOD = RATE * 20 // 1000 * 2


def say(stt: AssemblyAiStt, pcm: bytes) -> None:
    """One gated utterance handed over at once (what a reconnect replay looks like)."""
    stt.begin_utterance()
    for i in range(0, len(pcm), PERIOD):
        stt.feed(pcm[i : i + PERIOD])
    stt.end_utterance()


def pace_of(session: SessionRecord, rate: int = RATE) -> tuple[float, float]:
    """(max audio lead over the session's wall clock, max audio/wall ratio after 1 s), ms."""
    audio_ms = 0.0
    lead = ratio = 0.0
    for at, kind, detail in session.events:
        if kind != "audio":
            continue
        audio_ms += detail["nbytes"] / 2 / rate * 1000
        wall_ms = (at - session.opened_at) * 1000
        lead = max(lead, audio_ms - wall_ms)
        if wall_ms > 1000:
            ratio = max(ratio, audio_ms / wall_ms)
    return lead, ratio


async def test_long_utterance_is_paced_and_never_trips_3007(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector
) -> None:
    stt = await make_stt()
    say(stt, render_speech(TEXTS[0], RATE) + render_speech(TEXTS[0], RATE))  # ~6 s at once
    final = await events.wait(TurnFinalized, within_s=15)
    assert final.text == TEXTS[0]
    session = emu.sessions[0]
    assert session.first("error") is None and not events.of(FaultRaised)
    lead, ratio = pace_of(session)
    chunk_ms = 50
    assert lead <= MAX_AHEAD_MS + chunk_ms
    assert ratio <= REPLAY_SPEED + 0.1


async def test_3007_is_not_answered_with_the_same_burst(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector
) -> None:
    emu.rate_tolerance_ms = 400  # a service stricter than our 1000 ms lead
    stt = await make_stt()
    say(stt, render_speech(TEXTS[0], RATE))
    final = await events.wait(TurnFinalized, within_s=15)
    assert final.text == TEXTS[0]
    first, second = emu.sessions
    assert first.first("error")["code"] == 3007
    assert second.first("error") is None
    lead, _ = pace_of(second)
    assert lead <= SLOW_MAX_AHEAD_MS + 50  # real time with a small lead from now on
    assert [f.error_kind for f in events.of(FaultRaised)] == ["stt"]


async def test_u3_takes_the_single_formatted_turn_as_final(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector
) -> None:
    stt = await make_stt(speech_model="universal-3-5-pro", format_turns=True)
    say(stt, render_speech(TEXTS[0], RATE))
    final = await events.wait(TurnFinalized)
    assert final.text == TEXTS[0]
    params = emu.sessions[0].params
    assert params["speech_model"] == "universal-3-5-pro"
    assert "format_turns" not in params and "end_of_turn_confidence_threshold" not in params


async def test_universal_sends_its_parameters_and_waits_for_the_formatted_copy(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector
) -> None:
    stt = await make_stt(speech_model="universal-streaming-english")
    say(stt, render_speech(TEXTS[0], RATE))
    final = await events.wait(TurnFinalized)
    assert final.text == TEXTS[0]  # the formatted copy, not the plain end of turn
    params = emu.sessions[0].params
    assert params["format_turns"] == "True"
    assert params["end_of_turn_confidence_threshold"] == "0.7"
    assert "interruption_delay" not in params  # U3 Pro only
    await stt.close()
    assert len(events.of(TurnFinalized)) == 1


@pytest.mark.parametrize("model", ["u3-rt-pro", "universal-streaming-english"])
async def test_noise_with_nothing_transcribable_is_an_empty_turn(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector, model: str
) -> None:
    stt = await make_stt(speech_model=model, final_timeout_s=2.0)
    say(stt, render_noise(600, RATE, -60.0))
    final = await events.wait(TurnFinalized)
    assert final.text == ""
    assert emu.sessions[0].first("endpoint")["reason"] == "force"
    assert not events.of(FaultRaised)
    say(stt, render_speech(TEXTS[0], RATE))  # the next real turn is unaffected
    final = await events.wait(TurnFinalized, count=2)
    assert final.text == TEXTS[0]


async def test_close_without_termination_is_noticed_and_resumed(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector
) -> None:
    emu.close_after_audio_ms = 1000
    stt = await make_stt()
    pcm = render_speech(TEXTS[0], RATE)
    say(stt, pcm)
    final = await events.wait(TurnFinalized, within_s=15)
    assert final.text == TEXTS[0]
    fault = events.of(FaultRaised)[0]
    assert fault.error_kind == "stt" and "without Termination" in fault.message
    first, second = emu.sessions
    assert "fault_close" in first.kinds()
    assert bytes(second.audio[: len(pcm)]) == pcm  # the whole utterance again
    assert stt.stats.reconnects == 1
