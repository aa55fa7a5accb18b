"""Speculation through the turn state machine: hold, release, resume (issue 12).

The visitor pauses mid-sentence ("I'm here to see ..."): the turn-end policy holds the
turn open and the reply is prepared unheard. If the pause outlasts the policy's wait the
held audio plays and the turn is one exchange; if the visitor goes on, the speculative
reply is dropped without a sound and the whole turn is answered once.

Times are on the real monotonic clock (`now_ms`), because the conversation compares a
held turn's deadline with it when the final arrives; the mic chunks the test feeds carry
their own times, so nothing here waits on the wall clock.
"""

from __future__ import annotations

import asyncio

from agentd.conversation.engagement import EngagementState
from agentd.events import (
    AgentState,
    Outcome,
    SpeechEnded,
    SpeechStarted,
    TurnFinalized,
    now_ms,
)
from agentd.llm.events import LlmDone, TextDelta
from tests.conversation.fakes import default_pcm
from tests.conversation.rig import (
    REPLY,
    Rig,
    chunk,
    history_after,
    settle,
    until,
    user_messages,
)
from tests.conversation.test_engagement import answered, engaged_rig

FIRST_PART = "I'm here to see"  # U3 Pro at a mid-sentence pause: no full stop
SECOND_PART = "Anna Schmidt."
WHOLE = f"{FIRST_PART} {SECOND_PART}"
UNFINISHED_WAIT_MS = 1500.0  # TurnEndConfig().unfinished_pause_ms, the rig's policy
PERIOD_MS = 20


def pause_mid_sentence(rig: Rig) -> float:
    """The visitor says the first part and pauses; returns the held turn's deadline."""
    t = now_ms()
    voice_end = t - 300.0  # the final comes 300 ms after the voice stopped
    rig.conv.handle(SpeechStarted(t - 1200.0, preroll=b"pre"))
    rig.conv.handle(SpeechEnded(t - 60.0, 900.0, voice_end_ms=voice_end))
    rig.conv.handle(TurnFinalized(FIRST_PART, t))
    return voice_end + UNFINISHED_WAIT_MS


def silence(rig: Rig, start_ms: float, end_ms: float, *, voiced: bool = False) -> None:
    """Mic periods from `start_ms` up to `end_ms`, voiced or not as the gate judges them."""
    rig.gate.last_voiced = voiced
    at = start_ms
    while at < end_ms:
        rig.conv.on_audio(chunk(at))
        at += PERIOD_MS


async def prepared_unheard(rig: Rig, clauses: int = 2) -> None:
    """Until the speculative reply has its whole audio from TTS (and holds it back)."""
    await until(lambda: len(rig.tts.requests) == clauses, "speculative reply synthesized")
    await settle()


def reply_audio(text: str) -> int:
    """Bytes of fake TTS audio for a reply (one request per clause)."""
    return sum(len(default_pcm(clause)) for clause in ("We open at nine.", text))


async def test_hold_a_reply_prepared_during_a_pause_plays_nothing(rig: Rig) -> None:
    rig.llm.script(TextDelta(REPLY), LlmDone("stop", 10, 5))
    deadline = pause_mid_sentence(rig)
    await rig.requested(1)  # speculation: the LLM starts on the words so far
    await prepared_unheard(rig)
    assert rig.speaker.written == b"", "a held reply wrote audio"
    assert rig.state() is AgentState.LISTENING
    assert rig.reporter.transcripts == []  # the turn is not over: nothing reported
    silence(rig, deadline - 600.0, deadline - PERIOD_MS)  # the pause goes on, within the wait
    await settle()
    assert rig.speaker.written == b""
    assert rig.conv.reply_in_flight and user_messages(rig) == []


async def test_release_the_pause_outlasts_the_wait_and_the_held_reply_plays(rig: Rig) -> None:
    rig.llm.script(TextDelta(REPLY), LlmDone("stop", 10, 5))
    deadline = pause_mid_sentence(rig)
    await prepared_unheard(rig)
    silence(rig, deadline - 200.0, deadline + PERIOD_MS)  # the last period ends past it
    assert rig.state() is AgentState.THINKING
    await rig.replying()
    assert len(rig.speaker.written) == reply_audio("The cafe opens at ten.")
    rig.speaker.play_all()
    await rig.idle()
    assert len(rig.llm.requests) == 1  # the prepared reply is the answer: no second request
    assert user_messages(rig) == [FIRST_PART]  # exactly one user message
    assert [t[:2] for t in rig.reporter.transcripts] == [
        ("visitor", FIRST_PART),
        ("agent", REPLY),
    ]
    assert rig.conv.speculations_dropped == 0 and rig.conv.turns_completed == 1


async def test_resume_the_visitor_goes_on_and_the_whole_turn_is_answered_once(rig: Rig) -> None:
    rig.llm.script(TextDelta("Speculative answer to a fragment."), LlmDone("stop", 10, 5))
    rig.llm.script(TextDelta(REPLY), LlmDone("stop", 10, 5))
    deadline = pause_mid_sentence(rig)
    await rig.requested(1)
    await prepared_unheard(rig, clauses=1)
    silence(rig, deadline - 900.0, deadline - 500.0)
    t = now_ms()
    rig.conv.handle(SpeechStarted(t, preroll=b"pre"))  # "... Anna Schmidt."
    await settle()
    assert rig.speaker.written == b"", "the dropped reply made a sound"
    assert rig.state() is AgentState.LISTENING
    rig.conv.handle(SpeechEnded(t + 900.0, 800.0, voice_end_ms=t + 700.0))
    rig.conv.handle(TurnFinalized(SECOND_PART, t + 1000.0))  # a full stop: answered now
    assert rig.state() is AgentState.THINKING
    await rig.requested(2)
    assert rig.llm.requests[1][-1] == {"role": "user", "content": WHOLE}  # no words lost
    await rig.replying()
    rig.speaker.play_all()
    await rig.idle()
    assert len(rig.speaker.written) == reply_audio("The cafe opens at ten.")  # only the answer
    assert user_messages(rig) == [WHOLE]  # one user message for the whole turn
    visitor_lines = [text for who, text, _ in rig.reporter.transcripts if who == "visitor"]
    assert visitor_lines == [WHOLE]
    assert rig.conv.speculations_dropped == 1 and rig.conv.turns_completed == 1
    # Both requests are accounted: the dropped one in its own record (superseded, its
    # stream ran to its usage), the answer in the turn's; one request wasted.
    superseded, answered = rig.reporter.turns
    assert superseded.outcome is Outcome.SUPERSEDED and answered.outcome is Outcome.OK
    assert (superseded.llm_requests, superseded.llm_requests_unmetered) == (1, 0)
    assert (superseded.llm_prompt_tokens, superseded.llm_completion_tokens) == (10, 5)
    assert superseded.voice_to_voice_ms is None and superseded.llm_ttft_ms is not None
    assert answered.llm_requests == 1 and answered.voice_to_voice_ms is not None
    assert rig.conv.llm_requests_wasted == 1 and rig.conv.replies_superseded == 1


async def test_a_speculative_reply_dropped_mid_stream_is_superseded_and_unmetered(
    rig: Rig,
) -> None:
    """The visitor goes on while the model is still writing: the request counts, its
    tokens are unknown (the usage chunk never came), and nothing is called cancelled."""
    stall = asyncio.Event()
    rig.llm.script(TextDelta("Speculative "), stall, LlmDone("stop", 10, 5))
    rig.llm.script(TextDelta(REPLY), LlmDone("stop", 20, 7))
    deadline = pause_mid_sentence(rig)
    await rig.requested(1)
    silence(rig, deadline - 900.0, deadline - 500.0)
    t = now_ms()
    rig.conv.handle(SpeechStarted(t, preroll=b"pre"))
    await settle()
    assert rig.llm.closed == 1  # the dropped request's stream was closed at once
    (superseded,) = rig.reporter.turns  # reported when dropped, before the answer
    assert superseded.outcome is Outcome.SUPERSEDED
    assert (superseded.llm_requests, superseded.llm_requests_unmetered) == (1, 1)
    assert (superseded.llm_prompt_tokens, superseded.llm_completion_tokens) == (0, 0)
    rig.conv.handle(SpeechEnded(t + 900.0, 800.0, voice_end_ms=t + 700.0))
    rig.conv.handle(TurnFinalized(SECOND_PART, t + 1000.0))
    await rig.replying()
    rig.speaker.play_all()
    await rig.idle()
    answered = rig.reporter.turns[-1]
    assert answered.outcome is Outcome.OK and answered.turn_id != superseded.turn_id
    assert (answered.llm_requests, answered.llm_prompt_tokens) == (1, 20)
    assert [t.outcome for t in rig.reporter.turns] == [Outcome.SUPERSEDED, Outcome.OK]
    assert rig.conv.llm_requests_wasted == 1 and rig.conv.turns_completed == 1


async def test_a_word_begun_inside_the_wait_resumes_even_if_the_gate_confirms_it_later(
    rig: Rig,
) -> None:
    """The silence runs to the visitor's first voiced audio, not to the gate opening."""
    rig.llm.script(TextDelta("Speculative answer to a fragment."), LlmDone("stop", 10, 5))
    rig.llm.script(TextDelta(REPLY), LlmDone("stop", 10, 5))
    deadline = pause_mid_sentence(rig)
    await prepared_unheard(rig, clauses=1)
    silence(rig, deadline - 400.0, deadline - PERIOD_MS)
    # The next word starts 10 ms before the deadline; the gate needs its start window
    # (6 voiced of 10 periods) before it opens, so its first periods pass the deadline.
    silence(rig, deadline - PERIOD_MS, deadline + 60.0, voiced=True)
    silence(rig, deadline + 60.0, deadline + 80.0)  # a dip inside the word
    await settle()
    assert rig.speaker.written == b"" and rig.state() is AgentState.LISTENING
    t = now_ms()
    rig.conv.handle(SpeechStarted(t, preroll=b"pre"))
    rig.conv.handle(SpeechEnded(t + 900.0, 800.0, voice_end_ms=t + 700.0))
    rig.conv.handle(TurnFinalized(SECOND_PART, t + 1000.0))
    await rig.requested(2)
    assert rig.llm.requests[1][-1] == {"role": "user", "content": WHOLE}
    await rig.replying()
    rig.speaker.play_all()
    await rig.idle()
    assert user_messages(rig) == [WHOLE]
    assert rig.conv.speculations_dropped == 1


async def test_a_released_turn_counts_against_the_conversation_limits() -> None:
    """A turn answered by its prepared reply is a turn like any other for the engagement:
    past max_turns the prepared reply is dropped unheard and the limit line is said."""
    rig, _engagement, log = engaged_rig(modes=("open",), max_turns=1, limit_line="Time is up.")
    await answered(rig, "Question 1?", now_ms())
    rig.speaker.play_all()
    await rig.idle()
    written = len(rig.speaker.written)
    requests = len(rig.llm.requests)
    rig.llm.script(TextDelta(REPLY), LlmDone("stop", 10, 5))
    deadline = pause_mid_sentence(rig)
    syntheses = len(rig.tts.requests)
    await rig.requested(requests + 1)  # the speculative request (the limit is not known yet)
    await prepared_unheard(rig, clauses=syntheses + 2)
    silence(rig, deadline - 200.0, deadline + PERIOD_MS)
    await rig.replying()
    assert rig.tts.requests[-1].text == "Time is up."
    # The line, and nothing of the prepared reply.
    assert bytes(rig.speaker.written[written:]) == default_pcm("Time is up.")
    assert ("limit_reached", {"limit": "max_turns"}) in log.events
    rig.speaker.play_all()
    await rig.idle()
    assert log.changes[-1] == (EngagementState.WAITING, "limit")
    assert history_after(rig) == []
    # The prepared reply was paid for and never heard: reported (stopped by the limit,
    # not superseded) and wasted.
    refused = rig.reporter.turns[-1]
    assert refused.outcome is Outcome.CANCELLED and refused.llm_requests == 1
    assert rig.conv.llm_requests_wasted == 1 and rig.conv.replies_superseded == 0
