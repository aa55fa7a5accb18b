"""AssemblyAiStt: the real SDK against the local emulator, with real espeak-ng speech."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from _stt_support import KEY, RATE, TEXTS, Collector

from agentd.errors import ConfigError
from agentd.events import FaultRaised, LinkChanged, LinkState, TranscriptPartial, TurnFinalized
from agentd.sim.assemblyai_server import AssemblyAiEmulator
from agentd.sim.speech import render_speech
from agentd.stt.assemblyai import AssemblyAiStt

pytestmark = pytest.mark.timeout(30)

PERIOD = RATE * 20 // 1000 * 2  # the capture side delivers 20 ms periods


async def speak(stt: AssemblyAiStt, text: str, *, pace: bool = False) -> bytes:
    """One gated utterance: begin, feed in 20 ms periods, end. Returns the PCM fed."""
    pcm = render_speech(text, RATE)
    stt.begin_utterance()
    for i in range(0, len(pcm), PERIOD):
        stt.feed(pcm[i : i + PERIOD])
        if pace and i % (PERIOD * 10) == 0:
            await asyncio.sleep(0.01)  # let the pump and the socket interleave
    stt.end_utterance()
    return pcm


def states(events: Collector) -> list[LinkState]:
    return [e.state for e in events.of(LinkChanged)]


async def test_utterance_gives_partials_and_one_final(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector
) -> None:
    stt = await make_stt(keyterms=("Anna Schmidt",), speech_model="u3-rt-pro")
    await speak(stt, TEXTS[0])
    final = await events.wait(TurnFinalized)
    assert final.text == TEXTS[0] and final.turn_order == 0
    assert events.of(TranscriptPartial)
    assert stt.link_state is LinkState.CONNECTED
    await stt.close()
    assert len(events.of(TurnFinalized)) == 1  # the unformatted end_of_turn is not a turn
    session = emu.sessions[0]
    assert session.params["speech_model"] == "u3-rt-pro"
    assert json.loads(session.params["keyterms_prompt"]) == ["Anna Schmidt"]
    assert session.params["min_turn_silence"] == "400"
    # U3 Pro ignores these two: they are not sent; its early partial is asked for sooner.
    assert "format_turns" not in session.params
    assert "end_of_turn_confidence_threshold" not in session.params
    assert session.params["interruption_delay"] == "250"
    assert session.first("endpoint")["reason"] == "force"  # ForceEndpoint, not silence
    assert "Terminate" in session.kinds()
    assert all(49.0 < ms < 1001.0 for ms in session.chunk_ms)  # 50-1000 ms frames only
    assert states(events) == [LinkState.CONNECTING, LinkState.CONNECTED, LinkState.DISCONNECTED]
    assert stt.stats.turns == 1 and stt.stats.audio_sent_s > 1.0
    assert not events.of(FaultRaised)


async def test_without_format_turns_the_plain_final_counts(
    make_stt: Any, events: Collector
) -> None:
    stt = await make_stt(speech_model="universal-streaming-english", format_turns=False)
    await speak(stt, TEXTS[0])
    final = await events.wait(TurnFinalized)
    assert final.text == "hello i have a meeting with anna schmidt at ten"


async def test_drop_mid_utterance_replays_everything(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector
) -> None:
    emu.drop_after_audio_ms = 1000
    stt = await make_stt()
    fed = await speak(stt, TEXTS[0], pace=True)
    final = await events.wait(TurnFinalized)
    assert final.text == TEXTS[0]
    first, second = emu.sessions  # exactly two sessions
    assert "fault_drop" in first.kinds()
    assert 0 < len(first.audio) < len(fed)
    assert fed.startswith(bytes(first.audio))
    # The new session heard the whole utterance again (plus zero padding of the tail).
    assert bytes(second.audio[: len(fed)]) == fed
    assert not any(second.audio[len(fed) :])
    assert stt.stats.reconnects == 1
    faults = events.of(FaultRaised)
    assert [f.error_kind for f in faults] == ["stt"]
    assert LinkState.BACKOFF in states(events)


async def test_refused_then_accepted_recovers(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector
) -> None:
    emu.refuse_next(2, "drop")
    stt = await make_stt()
    await speak(stt, TEXTS[0])
    final = await events.wait(TurnFinalized)
    assert final.text == TEXTS[0]
    assert emu.connection_attempts == 3 and len(emu.sessions) == 1
    assert [f.error_kind for f in events.of(FaultRaised)] == ["stt"]  # once per outage
    assert states(events).count(LinkState.BACKOFF) == 2


@pytest.mark.parametrize("mode", ["close_1008", "http_401"])
async def test_auth_error_fails_without_retry_storm(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector, mode: str
) -> None:
    emu.auth_mode = mode
    stt = await make_stt(key="not-the-key")
    await speak(stt, TEXTS[0])
    await events.wait(FaultRaised, error_kind="stt_auth")
    assert stt.link_state is LinkState.FAILED
    for _ in range(3):  # more visitors talk: each gets a prompt stt_timeout, no reconnect
        await speak(stt, TEXTS[1])
    await events.wait(FaultRaised, count=3, error_kind="stt_timeout", within_s=2)
    assert emu.connection_attempts == 1
    assert stt.link_state is LinkState.FAILED
    assert not events.of(TurnFinalized)


async def test_idle_session_is_terminated_and_reopened(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector
) -> None:
    stt = await make_stt(idle_close_s=1.0)
    await speak(stt, TEXTS[0])
    await events.wait(TurnFinalized)
    await emu.wait_until(lambda: "Terminate" in emu.sessions[0].kinds(), within_s=5)
    await events.wait(LinkChanged, state=LinkState.DISCONNECTED)
    await speak(stt, TEXTS[1])
    final = await events.wait(TurnFinalized, count=2)
    assert final.text == TEXTS[1] and final.turn_order == 1
    assert len(emu.sessions) == 2


async def test_stalled_server_raises_stt_timeout_then_recovers(
    make_stt: Any, emu: AssemblyAiEmulator, events: Collector
) -> None:
    stt = await make_stt(final_timeout_s=0.5)
    emu.stalled = True
    await speak(stt, TEXTS[0])
    fault = await events.wait(FaultRaised, error_kind="stt_timeout")
    assert fault.link == "stt"
    emu.stalled = False
    await speak(stt, TEXTS[0])
    final = await events.wait(TurnFinalized)
    assert final.text == TEXTS[0]
    assert len(emu.sessions) == 2  # the silent session was not trusted again


async def test_close_is_idempotent_and_quick_without_session(make_stt: Any) -> None:
    stt = await make_stt()
    await stt.close()
    await stt.close()
    stt.begin_utterance()  # after close: ignored, no new task
    stt.feed(b"\0" * 640)
    assert stt.link_state is LinkState.DISCONNECTED


async def test_unknown_speech_model_is_a_config_error(emu: AssemblyAiEmulator) -> None:
    from agentd.config.sections_stt import SttConfig

    stt = AssemblyAiStt(SttConfig(api_host=emu.url, speech_model="nope"), KEY, RATE, print)
    with pytest.raises(ConfigError, match=r"stt\.speech_model"):
        await stt.start()
