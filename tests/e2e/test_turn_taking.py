"""Turn-taking through the real daemon: a visitor who pauses is never cut off.

The simulated visitor says each line with its pauses (agentd.sim.utterance) and the mic
keeps the ground truth (SimMic.spans: onset, pauses, true end on the mic's clock); the
speaker records when each chunk sounded. The AssemblyAI emulator transcribes what was
said so far at each pause, without a full stop mid-sentence, as U3 Pro does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentd.events import AgentState
from agentd.sim.harness import SimulatedKiosk
from agentd.sim.mic import SpeechSpan
from agentd.sim.stack import ServiceProfile

# Slow enough that the speculative reply is still being prepared when the visitor
# resumes, fast enough for a test (STT final 150, TTFT 400, TTS first byte 100 ms).
PREPARING = ServiceProfile(stt_final_ms=150, llm_ttft_ms=400, llm_chunk_ms=5, tts_ttfb_ms=100)


@dataclass
class OneTurn:
    """What one visitor turn left behind, read before the kiosk stopped."""

    span: SpeechSpan  # the visitor's ground truth
    sound_ms: float | None  # mic-clock time the first reply audio sounded after its onset
    users: list[str]  # the user messages in the history
    requests: list[str]  # the last user message of every LLM request, speculative ones too
    played_ms: list[float]  # mic-clock times of every reply chunk the speaker sounded
    dropped: int  # speculative replies dropped unheard
    superseded: int  # reply records reported `superseded` (dropped unheard, visitor went on)
    wasted: int  # the health counter of LLM requests dropped unheard


async def one_turn(kiosk: SimulatedKiosk) -> OneTurn:
    """Run the kiosk until its one visitor turn is answered and it is idle again."""
    await kiosk.start()
    try:
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 1, timeout_s=25)
        await kiosk.wait_for(lambda: kiosk.conversation.state is AgentState.IDLE)
        span = kiosk.mic.spans[0]
        played = [at for at, _ in kiosk.speaker.played]
        history = kiosk.conversation.parts.history.messages_for_request("next")
        users = [str(m["content"]) for m in history if m["role"] == "user"][:-1]
        requests = [str(r.messages[-1]["content"]) for r in kiosk.stack.llm.requests]
        wasted = kiosk.service.reporting.health()["llm_requests_wasted"]
        assert isinstance(wasted, int)
        turn = OneTurn(
            span=span,
            sound_ms=next((at for at in played if at >= span.start_ms), None),
            users=users,
            requests=requests,
            played_ms=played,
            dropped=kiosk.conversation.speculations_dropped,
            superseded=len(kiosk.observed.records) - len(kiosk.observed.turns),
            wasted=wasted,
        )
    finally:
        assert await kiosk.stop() == 0
    return turn


async def test_a_hesitant_visitor_is_answered_once_after_the_end(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    line = {
        "visitor": "I'm here to see <pause 900> Anna Schmidt.",
        "reply": "Anna is on her way down.",
    }
    kiosk = make_kiosk([line])
    turn = await one_turn(kiosk)
    span = turn.span
    assert len(span.pauses) == 1 and span.mid_sentence == (True,)
    assert 850 <= span.pauses[0][1] - span.pauses[0][0] <= 1000
    assert turn.users == ["I'm here to see Anna Schmidt."]  # one turn, every word
    assert ("agent", "Anna is on her way down.") in kiosk.observed.lines
    assert turn.sound_ms is not None and turn.sound_ms > span.voice_end_ms  # never over the visitor
    assert turn.sound_ms - span.voice_end_ms < 1500
    assert len(turn.requests) <= 2  # at most one speculative request, dropped unheard


async def test_a_one_word_answer_is_answered_promptly(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    turn = await one_turn(make_kiosk([{"visitor": "Yes.", "reply": "Great, follow me please."}]))
    assert turn.users == ["Yes."]
    assert len(turn.requests) == 1  # a finished sentence: nothing speculative
    assert turn.sound_ms is not None and turn.span.voice_end_ms < turn.sound_ms
    # FAST profile: 240 ms local endpoint + STT 120 + TTFT 80 + TTS 40 + periods; a
    # policy waiting for more would add its 700-1500 ms.
    assert turn.sound_ms - turn.span.voice_end_ms < 900


async def test_a_visitor_who_resumes_while_the_reply_is_prepared_is_never_talked_over(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    line = {
        "visitor": "I have a parcel for <pause 700> um <pause 600> the post room.",
        "reply": "The post room is in the basement.",
    }
    turn = await one_turn(make_kiosk([line], profile=PREPARING))
    span = turn.span
    assert turn.users == ["I have a parcel for um the post room."]
    assert turn.sound_ms is not None and turn.sound_ms > span.voice_end_ms
    # The visitor went on while a speculative reply was in the making: it was started
    # on the words so far and dropped without a sound.
    assert turn.dropped >= 1
    # Reported as such, not as a cancellation, and its request counted as wasted.
    assert turn.superseded >= turn.dropped and turn.wasted >= turn.dropped
    assert turn.requests[0] == "I have a parcel for"
    assert turn.requests[-1] == "I have a parcel for um the post room."
    assert not [at for at in turn.played_ms if span.start_ms <= at < span.voice_end_ms]
