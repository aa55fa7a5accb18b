"""The turn state machine with fake parts: a turn end to end, a turn carried on, faults."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest

from agentd.conversation.interruption import ECHO_TAIL_GUARD_MS
from agentd.errors import LlmError, SttError, TtsError
from agentd.events import (
    AgentState,
    FaultRaised,
    Outcome,
    SpeechEnded,
    SpeechStarted,
    VoicedAudio,
    now_ms,
)
from agentd.llm.events import LlmDone, TextDelta
from tests.conversation.fakes import LINE_PCM, default_pcm, fallback_pcm
from tests.conversation.rig import (
    REPLY,
    SYSTEM_PROMPT,
    Rig,
    chunk,
    history_after,
    settle,
    speaking,
    until,
    user_messages,
)

S = AgentState


# --- a plain turn ---------------------------------------------------------------------


async def test_a_turn_from_gate_to_history(rig: Rig) -> None:
    rig.llm.script(TextDelta(REPLY), LlmDone("stop", 10, 5))
    t0 = now_ms() - 2000  # the visitor spoke two seconds ago
    first = chunk(t0, tag=1)
    rig.gate.script(SpeechStarted(t0, preroll=b"preroll"))
    rig.gate.script(VoicedAudio(first))
    rig.gate.script(SpeechEnded(t0 + 900, 800, voice_end_ms=t0 + 700))
    for i in range(3):
        rig.conv.on_audio(chunk(t0 + 20 * i, tag=i))
    assert rig.state() is S.LISTENING
    assert rig.stt.names()[:3] == ["begin_utterance", "feed", "send_gated"]
    assert rig.stt.fed == [b"preroll"] and rig.stt.gated == [first.pcm]
    assert rig.stt.count("end_utterance") == 1
    assert rig.llm.count("warm_up") == rig.tts.count("warm_up") == 2  # open and close
    assert rig.recorder.added == len(b"preroll") + len(first.pcm)

    rig.finalize("When do you open?", at_ms=t0 + 1000)
    assert rig.state() is S.THINKING
    assert rig.recorder.count("save") == 1
    await rig.requested(1)
    assert rig.llm.requests[0][-1] == {"role": "user", "content": "When do you open?"}
    await rig.replying()
    rig.speaker.play(1)
    assert rig.state() is S.SPEAKING
    assert rig.barge_in.count("reset") == 1  # armed afresh for this reply
    rig.speaker.play_all()
    await rig.idle()

    assert rig.state() is S.IDLE
    assert rig.reporter.states == [S.LISTENING, S.THINKING, S.SPEAKING, S.IDLE]
    assert rig.gate.count("reset") == 1  # what the gate heard while we spoke was us
    assert [t.text for t in rig.tts.requests] == ["We open at nine.", "The cafe opens at ten."]
    (metrics,) = rig.reporter.turns
    assert metrics.outcome is Outcome.OK
    assert metrics.stt_final_ms == 100.0  # final 1000 ms after t0, endpoint at 900
    assert metrics.voice_to_voice_ms is not None
    assert metrics.voice_to_voice_ms >= 1300  # from voice end (t0 + 700) to first sound
    assert (metrics.llm_prompt_tokens, metrics.llm_completion_tokens) == (10, 5)
    assert metrics.audio_out_s == round(len(rig.speaker.written) / 48_000, 3)
    assert rig.conv.turns_completed == 1
    assert history_after(rig) == [
        {"role": "user", "content": "When do you open?"},
        {"role": "assistant", "content": REPLY},
    ]
    assert [who for who, _, _ in rig.reporter.transcripts] == ["visitor", "agent"]


async def test_the_echo_guard_keeps_the_gate_deaf_after_the_agent_speaks(rig: Rig) -> None:
    await speaking(rig)
    rig.speaker.play_all()
    await rig.idle()
    stopped = now_ms()
    processed = len(rig.gate.processed)
    rig.conv.on_audio(chunk(stopped))  # the reply still rings in the room
    assert len(rig.gate.processed) == processed
    rig.conv.on_audio(chunk(stopped + ECHO_TAIL_GUARD_MS + 1))
    assert len(rig.gate.processed) == processed + 1


async def test_gate_events_are_ignored_while_speaking(rig: Rig) -> None:
    await speaking(rig)
    rig.gate.script(SpeechStarted(now_ms(), preroll=b"echo"))
    rig.conv.on_audio(chunk(now_ms()))
    assert rig.state() is S.SPEAKING
    assert b"echo" not in rig.stt.fed
    assert len(rig.barge_in.calls) >= 1  # the detector, not the gate, decides


# --- the visitor goes on talking ----------------------------------------------------


async def test_visitor_continued_while_thinking(rig: Rig) -> None:
    stall = asyncio.Event()
    rig.llm.script(stall, TextDelta("Never said."), LlmDone("stop", 0, 0))
    rig.llm.script(TextDelta("On Sundays we open at ten."), LlmDone("stop", 30, 8))
    rig.visitor_says("When does the museum", at_ms=1000)
    assert rig.state() is S.THINKING
    await until(lambda: len(rig.llm.requests) == 1, "first request")

    rig.conv.handle(SpeechStarted(3000, preroll=b"more"))
    assert rig.state() is S.LISTENING
    await settle()
    assert rig.llm.closed == 1  # the half-made reply's stream was closed
    assert rig.tts.requests == [] and not rig.speaker.written  # dropped without a sound
    assert rig.history.exchange_count == 0
    assert S.SPEAKING not in rig.reporter.states

    rig.conv.handle(SpeechEnded(3800, 800, voice_end_ms=3700))
    rig.finalize("open on Sundays?", at_ms=3900)
    await rig.requested(2)
    assert len(rig.llm.requests) == 2
    joined = "When does the museum open on Sundays?"
    assert rig.llm.requests[1][-1] == {"role": "user", "content": joined}
    assert rig.llm.requests[1][:-1] == [{"role": "system", "content": SYSTEM_PROMPT}]
    await rig.replying()
    rig.speaker.play_all()
    await rig.idle()

    assert user_messages(rig) == [joined]  # one user message, the whole question
    assert history_after(rig)[-1] == {"role": "assistant", "content": "On Sundays we open at ten."}
    # The dropped reply is no cancellation: its own record, superseded, with its request
    # (cut before its usage came); the answer is the one turn completed.
    superseded, answered = rig.reporter.turns
    assert superseded.outcome is Outcome.SUPERSEDED and answered.outcome is Outcome.OK
    assert (superseded.llm_requests, superseded.llm_requests_unmetered) == (1, 1)
    assert superseded.voice_to_voice_ms is None and superseded.audio_out_s == 0.0
    assert (answered.llm_requests, answered.llm_requests_unmetered) == (1, 0)
    assert (answered.llm_prompt_tokens, answered.llm_completion_tokens) == (30, 8)
    assert rig.conv.turns_completed == 1 and rig.conv.replies_superseded == 1
    assert rig.conv.llm_requests_wasted == 1
    agent_lines = [text for who, text, _ in rig.reporter.transcripts if who == "agent"]
    assert agent_lines == ["On Sundays we open at ten."]


async def test_visitor_continued_then_a_second_continuation(rig: Rig) -> None:
    rig.llm.script(asyncio.Event())  # never released
    rig.llm.script(asyncio.Event())
    rig.llm.script(TextDelta("Yes."), LlmDone("stop", 0, 0))
    rig.visitor_says("Is the cafe", at_ms=1000)
    await rig.requested(1)
    rig.conv.handle(SpeechStarted(2000))
    rig.finalize("open today", at_ms=2500)
    await rig.requested(2)
    rig.conv.handle(SpeechStarted(3000))
    rig.finalize("and tomorrow?", at_ms=3500)
    await rig.requested(3)
    assert rig.llm.requests[-1][-1]["content"] == "Is the cafe open today and tomorrow?"
    await rig.replying()
    rig.speaker.play_all()
    await rig.idle()
    assert user_messages(rig) == ["Is the cafe open today and tomorrow?"]


async def test_visitor_continued_with_no_words_still_gets_an_answer(rig: Rig) -> None:
    rig.llm.script(asyncio.Event())
    rig.visitor_says("When does the museum open?", at_ms=1000)
    await rig.requested(1)
    rig.conv.handle(SpeechStarted(2000))  # a cough
    rig.finalize("", at_ms=2500)  # STT: no words
    await settle()
    assert len(rig.llm.requests) == 2
    assert rig.llm.requests[1][-1]["content"] == "When does the museum open?"


async def test_a_carried_turn_does_not_leak_into_a_later_utterance(rig: Rig) -> None:
    rig.llm.script(asyncio.Event())
    rig.visitor_says("When does the museum open?", at_ms=1000)
    await rig.requested(1)
    rig.conv.handle(SpeechStarted(2000))  # a cough
    rig.finalize("", at_ms=2500)
    await settle()
    rig.visitor_says("Hello", at_ms=600_000)  # ten minutes later
    await until(lambda: len(rig.llm.requests) >= 2, "a request for Hello")
    assert rig.llm.requests[-1][-1]["content"] != "When does the museum open? Hello"


async def test_visitor_continued_goes_from_thinking_to_listening_directly(rig: Rig) -> None:
    rig.llm.script(asyncio.Event())
    rig.visitor_says("When does the museum", at_ms=1000)
    await rig.requested(1)
    rig.conv.handle(SpeechStarted(3000))
    assert rig.reporter.states == [S.LISTENING, S.THINKING, S.LISTENING]


# --- faults ---------------------------------------------------------------------------


async def test_tts_fault_mid_reply_falls_back_to_the_local_voice(rig: Rig) -> None:
    text = "Welcome to the museum, the cafe is upstairs. Enjoy your visit."
    first, second, third = "Welcome to the museum,", "the cafe is upstairs.", "Enjoy your visit."
    rig.tts.script(default_pcm(first))
    rig.tts.script(TtsError("websocket closed"))
    await speaking(rig, reply=text)
    await settle()
    assert [r.text for r in rig.tts.requests] == [first, second]
    assert rig.fallback.rendered == [second, third]
    assert bytes(rig.speaker.written) == (
        default_pcm(first) + fallback_pcm(second) + fallback_pcm(third)
    )
    (fault,) = rig.reporter.faults
    assert (fault.link, fault.error_kind) == ("tts", "tts")
    rig.speaker.play_all()
    await rig.idle()
    (metrics,) = rig.reporter.turns
    assert metrics.outcome is Outcome.FALLBACK
    assert fault.turn_id == metrics.turn_id
    assert history_after(rig)[-1] == {"role": "assistant", "content": text}


async def test_llm_fault_plays_the_sorry_line(rig: Rig) -> None:
    rig.llm.script(LlmError("HTTP 500"))
    rig.visitor_says("When do you open?")
    await rig.replying()
    assert rig.fallback.lines == ["sorry_line"]
    assert bytes(rig.speaker.written) == LINE_PCM
    rig.speaker.play_all()
    assert rig.state() is S.SPEAKING
    await rig.idle()
    assert [(f.link, f.error_kind) for f in rig.reporter.faults] == [("llm", "llm")]
    assert rig.reporter.turns[-1].outcome is Outcome.FALLBACK
    assert history_after(rig) == [{"role": "user", "content": "When do you open?"}]


@pytest.mark.parametrize(
    ("kind", "line"), [("stt", "sorry_line"), ("stt_timeout", "not_heard_line")]
)
async def test_stt_fault_while_listening_says_a_line(rig: Rig, kind: str, line: str) -> None:
    rig.conv.handle(SpeechStarted(1000))
    rig.conv.handle(FaultRaised(kind, "socket closed", link="stt"))
    assert rig.reporter.faults[-1].error_kind == kind
    await rig.replying()
    assert rig.fallback.lines == [line]
    rig.speaker.play_all()
    await rig.idle()
    assert rig.state() is S.IDLE
    assert rig.reporter.turns == []  # a line is not a turn
    assert rig.conv.turns_completed == 0


async def test_a_handler_raising_agentd_error_becomes_a_reported_fault(rig: Rig) -> None:
    rig.conv.handle(SpeechStarted(1000))
    rig.stt.fail_with["end_utterance"] = SttError("socket gone")
    rig.conv.handle(SpeechEnded(1800, 800))  # must not raise
    (fault,) = rig.reporter.faults
    assert (fault.error_kind, fault.message) == ("stt", "stt: socket gone")


async def test_a_handler_bug_is_logged_not_raised_nor_reported(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.stt.fail_with["begin_utterance"] = RuntimeError("bug")
    with caplog.at_level(logging.ERROR, logger="agentd.turn"):
        rig.conv.handle(SpeechStarted(1000))
    assert rig.reporter.faults == []
    assert "event handler failed for SpeechStarted" in caplog.text


async def test_an_unknown_event_is_logged_not_raised(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    @dataclass(frozen=True)
    class Teleport:
        where: str

    with caplog.at_level(logging.WARNING, logger="agentd.turn"):
        rig.conv.handle(Teleport("moon"))
        rig.conv.handle("not an event")
    assert "no handler for Teleport" in caplog.text
    assert "no handler for str" in caplog.text
    assert rig.state() is S.IDLE
    assert rig.reporter == type(rig.reporter)()
