"""Commands into the turn state machine: mute, push-to-talk, say, reset, cancel."""

from __future__ import annotations

import asyncio

import pytest

from agentd.errors import TtsError
from agentd.events import (
    AgentState,
    ButtonPressed,
    CallStaff,
    CancelReply,
    FaultRaised,
    Outcome,
    ResetConversation,
    Say,
    SetMuted,
    SetVolume,
    SpeechEnded,
    SpeechStarted,
    StartListening,
    StopListening,
    ToggleMute,
    TurnFinalized,
    now_ms,
)
from agentd.llm.events import LlmDone, TextDelta
from agentd.llm.history import INTERRUPTED_MARK
from tests.conversation.rig import (
    SYSTEM_PROMPT,
    Rig,
    build_rig,
    chunk,
    history_after,
    settle,
    speaking,
    until,
)

S = AgentState


# --- mute ----------------------------------------------------------------------------


async def test_mute_mid_turn(rig: Rig) -> None:
    rig.conv.handle(SpeechStarted(1000, preroll=b"pre"))
    assert rig.state() is S.LISTENING
    rig.conv.handle(SetMuted(True, "mqtt"))
    assert rig.state() is S.MUTED
    assert rig.stt.count("end_utterance") == 1  # the open STT turn is closed
    rig.conv.handle(TurnFinalized("my secret", 1500))
    assert rig.llm.requests == []
    assert rig.recorder.names()[-1] == "discard"
    assert rig.reporter.transcripts == []
    processed = len(rig.gate.processed)
    rig.conv.on_audio(chunk(now_ms()))
    assert len(rig.gate.processed) == processed  # muted: the mic is not listened to
    rig.conv.handle(FaultRaised("stt_timeout", "no final", link="stt"))
    assert rig.reporter.faults == []  # expected after a mute: no fault
    assert rig.state() is S.MUTED

    rig.conv.handle(ToggleMute("button"))
    assert rig.state() is S.IDLE and not rig.conv.muted
    rig.conv.handle(ToggleMute("button"))
    assert rig.state() is S.MUTED and rig.conv.muted
    assert [c[1] for c in rig.gate.calls if c[0] == "set_muted"] == [True, False, True]
    assert rig.reporter.states == [S.LISTENING, S.MUTED, S.IDLE, S.MUTED]


async def test_mute_while_speaking_cancels_the_reply(rig: Rig) -> None:
    await speaking(rig)
    rig.conv.handle(SetMuted(True, "button"))
    assert rig.state() is S.MUTED
    assert rig.speaker.names()[-1] == "cancel"
    await settle()
    assert rig.reporter.turns[-1].outcome is Outcome.CANCELLED
    assert S.IDLE not in rig.reporter.states  # straight to MUTED
    rig.visitor_says("hello?")
    assert len(rig.llm.requests) == 1


# --- push-to-talk ---------------------------------------------------------------------


async def test_push_to_talk_hold(rig: Rig) -> None:
    rig.conv.handle(StartListening("button"))
    assert rig.state() is S.LISTENING
    assert rig.stt.count("begin_utterance") == 1
    t0 = now_ms()
    for i in range(3):
        rig.conv.on_audio(chunk(t0 + 20 * i, tag=i))
    assert [pcm[0] for pcm in rig.stt.fed] == [0, 1, 2]  # no VAD: all of it to STT
    assert rig.gate.processed == []
    rig.conv.handle(StopListening("button"))
    assert rig.stt.count("end_utterance") == 1
    rig.conv.on_audio(chunk(t0 + 60, tag=3))
    assert len(rig.stt.fed) == 3  # the button is up: back to the gate
    assert len(rig.gate.processed) == 1
    rig.llm.script(TextDelta("Upstairs."), LlmDone("stop", 0, 0))
    rig.finalize("Where is the cafe?")
    assert rig.state() is S.THINKING
    await rig.requested(1)
    assert rig.llm.requests[0][-1]["content"] == "Where is the cafe?"
    rig.conv.handle(StopListening("button"))  # a late release: nothing more
    assert rig.stt.count("end_utterance") == 1


async def test_push_to_talk_over_a_reply_cancels_it(rig: Rig) -> None:
    await speaking(rig)
    rig.conv.handle(StartListening("button"))
    assert rig.state() is S.LISTENING
    assert rig.speaker.names()[-1] == "cancel"
    await settle()
    assert rig.reporter.turns[-1].outcome is Outcome.CANCELLED


async def test_push_to_talk_press_mode() -> None:
    rig = build_rig("press")
    rig.conv.handle(StartListening("button"))
    assert rig.state() is S.LISTENING
    rig.conv.on_audio(chunk(now_ms(), tag=1))
    assert [pcm[0] for pcm in rig.stt.fed] == [1]
    rig.conv.handle(StartListening("button"))  # the second press ends the turn
    assert rig.stt.count("end_utterance") == 1
    rig.conv.on_audio(chunk(now_ms(), tag=2))
    assert len(rig.stt.fed) == 1

    rig.conv.handle(StartListening("button"))
    assert rig.stt.count("begin_utterance") == 2
    rig.conv.on_audio(chunk(now_ms(), tag=3))
    rig.gate.script(SpeechEnded(now_ms(), 600))  # the visitor's own pause ends it
    rig.conv.on_audio(chunk(now_ms(), tag=4))
    assert rig.stt.count("end_utterance") == 2
    rig.conv.on_audio(chunk(now_ms(), tag=5))
    assert [pcm[0] for pcm in rig.stt.fed] == [1, 3, 4]


# --- commands -------------------------------------------------------------------------


async def test_say_over_a_reply(rig: Rig) -> None:
    await speaking(rig)
    rig.conv.handle(Say("We close in ten minutes.", "mqtt"))
    assert rig.speaker.names().count("cancel") == 1
    await settle()
    (cancelled,) = rig.reporter.turns
    assert cancelled.outcome is Outcome.CANCELLED
    assert rig.tts.requests[-1].text == "We close in ten minutes."
    await rig.replying()
    rig.speaker.play(1)
    assert rig.state() is S.SPEAKING
    rig.speaker.play_all()
    await rig.idle()
    assert rig.state() is S.IDLE
    assert rig.reporter.turns == [cancelled]  # the announcement is not a turn
    assert rig.conv.turns_completed == 1
    assert rig.reporter.states[-4:] == [S.SPEAKING, S.IDLE, S.SPEAKING, S.IDLE]
    assert history_after(rig) == [
        {"role": "user", "content": "When do you open?"},
        {"role": "assistant", "content": "We" + INTERRUPTED_MARK},
    ]


async def test_say_when_tts_fails_uses_the_local_voice(rig: Rig) -> None:
    rig.tts.script(TtsError("quota"))
    rig.conv.handle(Say("Closing soon.", "mqtt"))
    await rig.replying()
    assert rig.fallback.rendered == ["Closing soon."]
    assert rig.reporter.faults[-1].link == "tts"
    rig.speaker.play_all()
    await rig.idle()
    assert rig.reporter.turns == []


async def test_reset_wipes_history_and_the_reply_in_flight(rig: Rig) -> None:
    await speaking(rig, user="First question?")
    rig.speaker.play_all()
    await rig.idle()
    assert rig.history.exchange_count == 1
    await speaking(rig, user="Second question?")
    rig.conv.handle(ResetConversation("mqtt"))
    assert rig.speaker.names()[-1] == "cancel"
    assert rig.state() is S.IDLE
    await settle()
    assert rig.history.exchange_count == 0  # the cancelled reply left nothing either
    assert rig.reporter.turns[-1].outcome is Outcome.CANCELLED
    rig.llm.script(TextDelta("Hi."), LlmDone("stop", 0, 0))
    rig.visitor_says("Hello")
    await rig.requested(3)
    assert rig.llm.requests[-1] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Hello"},
    ]


async def test_reset_drops_a_carried_turn(rig: Rig) -> None:
    rig.llm.script(asyncio.Event())
    rig.visitor_says("Tell me about")
    await rig.requested(1)
    rig.conv.handle(SpeechStarted(2000))
    rig.conv.handle(ResetConversation("mqtt"))
    rig.finalize("the weather")
    await rig.requested(2)
    assert rig.llm.requests[-1][-1]["content"] == "the weather"


@pytest.mark.parametrize("source", ["button", "mqtt", "shutdown"])
@pytest.mark.parametrize("phase", ["thinking", "speaking"])
async def test_cancel_reply_from_any_source(rig: Rig, source: str, phase: str) -> None:
    if phase == "thinking":
        rig.llm.script(TextDelta("We open "), asyncio.Event())
        rig.visitor_says("When do you open?")
        await until(lambda: len(rig.llm.requests) == 1, "request sent")
        heard = ""
    else:
        await speaking(rig)
        heard = "We" + INTERRUPTED_MARK
    rig.conv.handle(CancelReply(source))
    assert rig.state() is S.IDLE
    assert not rig.conv.reply_in_flight
    assert rig.speaker.names()[-1] == "cancel"
    await settle()
    assert rig.llm.closed == (1 if phase == "thinking" else 0)
    (metrics,) = rig.reporter.turns
    assert metrics.outcome is Outcome.CANCELLED
    # An operator's or visitor's cancel is theirs to count, not agentd's waste.
    assert metrics.llm_requests == 1 and rig.conv.llm_requests_wasted == 0
    expected: list[dict[str, object]] = [{"role": "user", "content": "When do you open?"}]
    if heard:
        expected.append({"role": "assistant", "content": heard})
    assert history_after(rig) == expected
    rig.conv.handle(CancelReply(source))  # nothing in flight: nothing happens
    assert len(rig.reporter.turns) == 1


async def test_shutdown_cancels_and_waits_for_the_reply(rig: Rig) -> None:
    await speaking(rig)
    await rig.conv.shutdown()
    assert not rig.conv.reply_in_flight
    assert rig.reporter.turns[-1].outcome is Outcome.CANCELLED
    assert rig.history.exchange_count == 1


async def test_reporting_commands(rig: Rig) -> None:
    rig.conv.handle(SetVolume(0.4, "mqtt"))
    assert rig.speaker.volume == 0.4
    rig.conv.handle(CallStaff("visitor asked", "button"))
    assert rig.reporter.staff_calls == [("visitor asked", "button")]
    rig.conv.handle(ButtonPressed("staff", long_press=True))
    assert rig.reporter.events == [("button", {"button": "staff", "long_press": True})]
