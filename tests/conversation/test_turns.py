"""The turn state machine with fake parts: events in; state, calls, reports, history out."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest

from agentd.conversation.interruption import ECHO_TAIL_GUARD_MS, REPLAY_BEFORE_ONSET_MS
from agentd.errors import LlmError, SttError, TtsError
from agentd.events import (
    AgentState,
    BargeIn,
    BargeInDismissed,
    BargeInSuspected,
    ButtonPressed,
    CallStaff,
    CancelReply,
    FalseBargeIn,
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
    TranscriptPartial,
    TurnFinalized,
    VoicedAudio,
    now_ms,
)
from agentd.llm.events import LlmDone, TextDelta
from agentd.llm.history import INTERRUPTED_MARK
from tests.conversation.fakes import LINE_PCM, default_pcm, fallback_pcm
from tests.conversation.rig import SYSTEM_PROMPT, Rig, build_rig, chunk, settle, until

S = AgentState
REPLY = "We open at nine. The cafe opens at ten."
FIRST_CLAUSE = "We open at nine."


async def speaking(rig: Rig, user: str = "When do you open?", reply: str = REPLY) -> None:
    """A visitor turn answered; 500 of the first clause's 1,600 bytes sounded: SPEAKING.

    That is 5/16 of "We open at nine.": the history keeps its first word, "We".
    """
    rig.llm.script(TextDelta(reply), LlmDone("stop", 10, 5))
    rig.visitor_says(user)
    assert rig.state() is S.THINKING
    await rig.replying()
    rig.speaker.play(500)
    assert rig.state() is S.SPEAKING


def history_after(rig: Rig) -> list[dict[str, object]]:
    """The committed exchanges, as the next request would send them (system excluded)."""
    return rig.history.messages_for_request("next")[1:-1]


def user_messages(rig: Rig) -> list[object]:
    return [m["content"] for m in history_after(rig) if m["role"] == "user"]


@dataclass
class BargeInSetup:
    t0: float
    onset_ms: float


async def barged_in(rig: Rig) -> BargeInSetup:
    """SPEAKING, 10 mic chunks (tags 0..9, 20 ms apart), then a BargeIn on chunk 10."""
    await speaking(rig)
    t0 = now_ms()
    for i in range(10):
        rig.conv.on_audio(chunk(t0 + 20 * i, tag=i))
    onset = t0 + 140  # inside chunk 7; the replay starts 100 ms earlier (chunk 2)
    rig.barge_in.script(BargeIn(at_ms=t0 + 200, onset_ms=onset))
    rig.conv.on_audio(chunk(t0 + 200, tag=10))
    return BargeInSetup(t0, onset)


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
    rig.llm.script(TextDelta("On Sundays we open at ten."), LlmDone("stop", 0, 0))
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
    assert rig.reporter.turns[-1].outcome is Outcome.OK
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


@pytest.mark.xfail(
    strict=True,
    reason="BUG turns.py:264-274: a continuation with no words (cough) drops the carried "
    "question: no reply, and the carry is prefixed to whatever is said next, even later",
)
async def test_visitor_continued_with_no_words_still_gets_an_answer(rig: Rig) -> None:
    rig.llm.script(asyncio.Event())
    rig.visitor_says("When does the museum open?", at_ms=1000)
    await rig.requested(1)
    rig.conv.handle(SpeechStarted(2000))  # a cough
    rig.finalize("", at_ms=2500)  # STT: no words
    await settle()
    assert len(rig.llm.requests) == 2
    assert rig.llm.requests[1][-1]["content"] == "When does the museum open?"


@pytest.mark.xfail(
    strict=True,
    reason="BUG turns.py:264-267: after a wordless continuation the carried text stays, and "
    "is prefixed to the next utterance however much later (another visitor, after a reset "
    "by idle history)",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="BUG turns.py:199 via _cancel (turns.py:403-404): the dropped reply's cancel "
    "reports IDLE, then LISTENING at once: LEDs/MQTT see an idle flicker mid-conversation",
)
async def test_visitor_continued_goes_from_thinking_to_listening_directly(rig: Rig) -> None:
    rig.llm.script(asyncio.Event())
    rig.visitor_says("When does the museum", at_ms=1000)
    await rig.requested(1)
    rig.conv.handle(SpeechStarted(3000))
    assert rig.reporter.states == [S.LISTENING, S.THINKING, S.LISTENING]


# --- barge-in -------------------------------------------------------------------------


async def test_barge_in_hold_then_words_cancel(rig: Rig) -> None:
    setup = await barged_in(rig)
    # Held, not cancelled: the speaker pauses, the visitor is listened to.
    assert rig.speaker.names().count("pause") == 1
    assert "cancel" not in rig.speaker.names()
    assert rig.state() is S.LISTENING
    assert rig.conv.reply_in_flight
    assert rig.stt.count("begin_utterance") == 2
    assert rig.reporter.events == [("barge_in", {"onset_to_detect_ms": 60})]
    # The onset is replayed to STT from REPLAY_BEFORE_ONSET_MS earlier (chunk 2 on).
    first_replayed = int((setup.onset_ms - REPLAY_BEFORE_ONSET_MS - setup.t0) / 20)
    assert first_replayed == 2
    replayed = [pcm[0] for pcm in rig.stt.fed[1:]]  # fed[0] is the first turn's pre-roll
    assert replayed[: 10 - first_replayed + 1] == list(range(first_replayed, 11))
    # The speaker stays silent while held.
    assert rig.speaker.play_all() == 0

    rig.conv.on_audio(chunk(setup.t0 + 220, tag=11))  # still fed live
    assert rig.stt.fed[-1][0] == 11
    rig.conv.handle(TranscriptPartial("", now_ms()))  # no words yet: still held
    assert rig.conv.reply_in_flight
    rig.conv.handle(TranscriptPartial("wait, what", now_ms()))
    assert rig.barge_in.count("note_words") == 1
    assert rig.speaker.names()[-1] == "cancel"
    assert not rig.conv.reply_in_flight
    assert rig.state() is S.LISTENING  # the visitor is still talking
    await settle()

    (metrics,) = rig.reporter.turns
    assert metrics.outcome is Outcome.BARGE_IN
    assert metrics.barge_ins == 1
    # Only the heard part is kept, marked as interrupted: 500 of 1,600 bytes of clause 1.
    assert history_after(rig) == [
        {"role": "user", "content": "When do you open?"},
        {"role": "assistant", "content": "We" + INTERRUPTED_MARK},
    ]

    # The gate closes: back to normal listening, the visitor's turn is answered.
    rig.gate.script(SpeechEnded(setup.t0 + 400, 300, voice_end_ms=setup.t0 + 350))
    rig.conv.on_audio(chunk(setup.t0 + 240, tag=12))
    assert rig.stt.count("end_utterance") == 2
    rig.conv.on_audio(chunk(setup.t0 + 260, tag=13))
    assert rig.stt.fed[-1][0] == 12  # direct feed ended with the gate
    rig.llm.script(TextDelta("On Sundays too."), LlmDone("stop", 0, 0))
    rig.finalize("wait, what about Sundays?")
    assert rig.state() is S.THINKING
    await rig.requested(2)
    assert rig.llm.requests[-1][-3:] == [
        {"role": "user", "content": "When do you open?"},
        {"role": "assistant", "content": "We" + INTERRUPTED_MARK},
        {"role": "user", "content": "wait, what about Sundays?"},
    ]


@pytest.mark.xfail(
    strict=True,
    reason="BUG turns.py:145-150: the chunk whose detector call confirms the barge-in is "
    "replayed (Interruption.replay_from) and then fed again by the direct-feed branch",
)
async def test_barge_in_replay_sends_each_chunk_once(rig: Rig) -> None:
    await barged_in(rig)
    tags = [pcm[0] for pcm in rig.stt.fed[1:]]
    assert tags == list(range(2, 11))


@pytest.mark.xfail(
    strict=True,
    reason="RISK turns.py:149-155: when STT's final beats the gate closing after a barge-in, "
    "Interruption.direct_feed stays set into the next reply, so while the agent speaks the "
    "mic (its own voice) goes straight to STT until the gate closes",
)
async def test_no_mic_to_stt_while_speaking_after_a_barge_in_turn(rig: Rig) -> None:
    setup = await barged_in(rig)
    rig.conv.handle(TranscriptPartial("wait", now_ms()))
    rig.llm.script(TextDelta("Sure, Sundays too."), LlmDone("stop", 0, 0))
    rig.finalize("wait, Sundays?")  # the final arrives before the gate has closed
    await rig.replying()
    rig.speaker.play(1)
    assert rig.state() is S.SPEAKING
    fed = len(rig.stt.fed)
    rig.conv.on_audio(chunk(setup.t0 + 400, tag=20))  # the agent's voice in the mic
    assert len(rig.stt.fed) == fed


async def test_false_barge_in_resumes_the_reply(rig: Rig) -> None:
    setup = await barged_in(rig)
    assert rig.state() is S.LISTENING
    rig.barge_in.script(FalseBargeIn(at_ms=setup.t0 + 600, onset_ms=setup.onset_ms))
    rig.conv.on_audio(chunk(setup.t0 + 220, tag=11))
    assert rig.speaker.names()[-1] == "resume"
    assert "cancel" not in rig.speaker.names()
    assert rig.state() is S.SPEAKING
    assert rig.stt.count("end_utterance") == 2  # the barge-in's STT turn is closed
    fed = len(rig.stt.fed)
    rig.conv.on_audio(chunk(setup.t0 + 240, tag=12))
    assert len(rig.stt.fed) == fed  # no longer listening to the mic

    rig.speaker.play_all()
    await rig.idle()
    (metrics,) = rig.reporter.turns
    assert metrics.outcome is Outcome.OK
    assert metrics.barge_ins == 1
    assert history_after(rig)[-1] == {"role": "assistant", "content": REPLY}


async def test_backchannel_is_dismissed_and_the_reply_goes_on(rig: Rig) -> None:
    await speaking(rig)
    rig.conv.handle(BargeInSuspected(now_ms(), now_ms() - 50))
    assert rig.speaker.paused
    assert rig.state() is S.SPEAKING
    assert rig.speaker.play_all() == 0
    await settle()
    assert rig.conv.reply_in_flight  # paused audio is not played out
    rig.conv.handle(BargeInDismissed(now_ms(), now_ms() - 80))
    assert not rig.speaker.paused
    assert "cancel" not in rig.speaker.names()
    assert rig.state() is S.SPEAKING
    rig.speaker.play_all()
    await rig.idle()
    (metrics,) = rig.reporter.turns
    assert metrics.outcome is Outcome.OK and metrics.barge_ins == 0
    assert history_after(rig)[-1] == {"role": "assistant", "content": REPLY}


async def test_barge_in_facts_are_ignored_when_not_speaking(rig: Rig) -> None:
    rig.conv.handle(BargeInSuspected(now_ms(), now_ms()))
    rig.conv.handle(BargeIn(now_ms(), now_ms()))
    rig.conv.handle(FalseBargeIn(now_ms(), now_ms()))
    rig.conv.handle(BargeInDismissed(now_ms(), now_ms()))
    assert rig.speaker.calls == []
    assert rig.state() is S.IDLE
    assert rig.reporter.states == []


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
