"""The engagement policy in the turn state machine (issue 14): who opens a turn, when a
conversation ends, and what ending does (history wiped, STT session closed)."""

from __future__ import annotations

from agentd.config.sections_engagement import EngagementConfig, NearFieldConfig, PresenceConfig
from agentd.conversation.engagement import Engagement, EngagementState
from agentd.events import (
    AgentState,
    CancelReply,
    SpeechEnded,
    SpeechStarted,
    StartListening,
    now_ms,
)
from agentd.gpio.presence import PresenceChanged
from agentd.llm.events import LlmDone, TextDelta
from tests.conversation.fakes import FakeEngagementReporter
from tests.conversation.rig import Rig, build_rig, chunk, history_after, settle


def engaged_rig(**config: object) -> tuple[Rig, Engagement, FakeEngagementReporter]:
    rig = build_rig()
    log = FakeEngagementReporter()
    settings: dict[str, object] = {"near_field": NearFieldConfig(enabled=False)}
    settings.update(config)
    engagement = Engagement(EngagementConfig(**settings), log)  # type: ignore[arg-type]
    rig.conv.engagement = engagement
    engagement.on_end = rig.conv.end_conversation
    engagement.on_greet = rig.conv.greet
    return rig, engagement, log


def tick(rig: Rig, at_ms: float) -> None:
    """One mic chunk at `at_ms` (the engagement's timers run on the audio clock)."""
    rig.conv.on_audio(chunk(at_ms))


async def answered(rig: Rig, text: str, at_ms: float) -> None:
    """A visitor turn through the gate, answered and played to the end."""
    rig.llm.script(TextDelta("Sure."), LlmDone("stop", 10, 5))
    rig.gate.script(SpeechStarted(at_ms, b"pre"))
    tick(rig, at_ms)
    rig.gate.script(SpeechEnded(at_ms + 800, 800, voice_end_ms=at_ms + 700))
    tick(rig, at_ms + 800)
    rig.finalize(text, at_ms + 900)
    await rig.requested(len(rig.llm.requests) + 1)
    await settle()
    rig.speaker.play(rig.speaker.queued)
    await rig.idle()


async def test_wake_word_mode_ignores_speech_until_engaged() -> None:
    rig, engagement, log = engaged_rig(modes=("wake_word", "button"))
    t = now_ms()
    rig.gate.script(SpeechStarted(t, b"pre"))
    tick(rig, t)
    assert rig.state() is AgentState.IDLE
    assert ("begin_utterance",) not in rig.stt.calls
    rig.conv.handle(StartListening("button", at_ms=t + 100))  # the button always works
    assert engagement.engaged and log.changes == [(EngagementState.ENGAGED, "button")]
    assert rig.state() is AgentState.LISTENING


async def test_open_mode_engages_on_speech_and_window_ends_the_conversation() -> None:
    rig, engagement, log = engaged_rig(modes=("open",), idle_end_s=10.0)
    t = now_ms()
    await answered(rig, "When are you open?", t)
    assert engagement.engaged and history_after(rig)
    end = now_ms()  # reply_finished runs on the loop's clock
    tick(rig, end + 9_000)
    assert engagement.engaged
    tick(rig, end + 10_500)
    assert log.changes[-1] == (EngagementState.WAITING, "idle")
    assert history_after(rig) == []  # privacy: the next visitor starts afresh
    assert rig.stt.calls[-1] == ("end_session",)


async def test_goodbye_ends_the_conversation_after_the_reply() -> None:
    rig, engagement, log = engaged_rig(modes=("open",))
    await answered(rig, "Thanks, that's all. Goodbye!", now_ms())
    assert not engagement.engaged
    assert log.changes[-1] == (EngagementState.WAITING, "goodbye")
    assert ("end_session",) in rig.stt.calls


async def test_presence_greets_and_leaving_ends_the_conversation() -> None:
    rig, engagement, log = engaged_rig(
        modes=("presence",), presence=PresenceConfig(pin=17, greeting="Hello!", leave_after_s=5.0)
    )
    t = now_ms()
    rig.conv.handle(PresenceChanged(True, t))
    assert log.changes == [(EngagementState.ENGAGED, "presence")]
    await rig.replying()
    assert "Hello!" in [r.text for r in rig.tts.requests]
    rig.speaker.play(rig.speaker.queued)
    await rig.idle()
    await answered(rig, "Where is the lift?", now_ms())
    gone = now_ms()
    rig.conv.handle(PresenceChanged(False, gone))
    tick(rig, gone + 4_000)
    assert engagement.engaged
    tick(rig, gone + 5_100)
    assert log.changes[-1] == (EngagementState.WAITING, "left")
    assert history_after(rig) == []


async def test_turn_limit_is_answered_politely_and_reported() -> None:
    rig, _engagement, log = engaged_rig(modes=("open",), max_turns=2, limit_line="Time is up.")
    for n in range(2):
        await answered(rig, f"Question {n}?", now_ms())
    requests = len(rig.llm.requests)
    t = now_ms()
    rig.gate.script(SpeechStarted(t, b"pre"))
    tick(rig, t)
    rig.finalize("Question 3?", t + 900)
    await rig.replying()
    assert len(rig.llm.requests) == requests  # not sent to the model
    assert "Time is up." in [r.text for r in rig.tts.requests]
    assert ("limit_reached", {"limit": "max_turns"}) in log.events
    rig.speaker.play(rig.speaker.queued)
    await rig.idle()
    assert log.changes[-1] == (EngagementState.WAITING, "limit")
    assert history_after(rig) == []


async def test_a_cancelled_limit_line_still_ends_the_conversation() -> None:
    """The limit line cut short (a button, a barge-in) ends the conversation all the same:
    the next visitor is answered, not refused with the limit line again."""
    rig, _engagement, log = engaged_rig(modes=("open",), max_turns=1, limit_line="Time is up.")
    await answered(rig, "Question 1?", now_ms())
    t = now_ms()
    rig.gate.script(SpeechStarted(t, b"pre"))
    tick(rig, t)
    rig.finalize("Question 2?", t + 900)
    await rig.replying()
    rig.conv.handle(CancelReply("button"))
    await rig.idle()
    assert log.changes[-1] == (EngagementState.WAITING, "limit")
    requests = len(rig.llm.requests)
    await answered(rig, "Question 3?", now_ms())
    assert len(rig.llm.requests) == requests + 1  # a new conversation, answered


async def test_empty_turn_is_reported_as_phantom_suspicion() -> None:
    rig, engagement, log = engaged_rig(modes=("open",))
    t = now_ms()
    rig.gate.script(SpeechStarted(t, b"pre"))
    tick(rig, t)
    rig.finalize("", t + 900)
    assert ("phantom_suspected", {"reason": "no_words"}) in log.events
    assert engagement.stats.phantom_suspected == 1
