"""Turn-taking through the real daemon: a visitor who pauses is never cut off.

The simulated visitor says each line with its pauses (agentd.sim.utterance) and the mic
keeps the ground truth (SimMic.spans: onset, pauses, true end on the mic's clock); the
speaker records when each chunk sounded. The AssemblyAI emulator transcribes what was
said so far at each pause, without a full stop mid-sentence, as U3 Pro does.
"""

from __future__ import annotations

from collections.abc import Callable

from agentd.events import AgentState
from agentd.sim.harness import SimulatedKiosk
from agentd.sim.stack import ServiceProfile

# Slow enough that the speculative reply is still being prepared when the visitor
# resumes, fast enough for a test (STT final 150, TTFT 400, TTS first byte 100 ms).
PREPARING = ServiceProfile(stt_final_ms=150, llm_ttft_ms=400, llm_chunk_ms=5, tts_ttfb_ms=100)


def first_sound_ms(kiosk: SimulatedKiosk, after_ms: float) -> float | None:
    """Mic-clock time of the first reply audio the speaker sounded after `after_ms`."""
    return next((at for at, _ in kiosk.speaker.played if at >= after_ms), None)


def user_messages(kiosk: SimulatedKiosk) -> list[str]:
    messages = kiosk.conversation.parts.history.messages_for_request("next")
    return [str(m["content"]) for m in messages if m["role"] == "user"][:-1]


async def test_a_hesitant_visitor_is_answered_once_after_the_end(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    kiosk = make_kiosk(
        [
            {
                "visitor": "I'm here to see <pause 900> Anna Schmidt.",
                "reply": "Anna is on her way down.",
            }
        ]
    )
    await kiosk.start()
    try:
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 1, timeout_s=25)
        await kiosk.wait_for(lambda: kiosk.conversation.state is AgentState.IDLE)
        span = kiosk.mic.spans[0]
        sound = first_sound_ms(kiosk, span.start_ms)
        users = user_messages(kiosk)
        requests = len(kiosk.stack.llm.requests)
    finally:
        assert await kiosk.stop() == 0
    assert len(span.pauses) == 1 and span.mid_sentence == (True,)
    assert 850 <= span.pauses[0][1] - span.pauses[0][0] <= 1000
    assert users == ["I'm here to see Anna Schmidt."]  # one turn, every word
    assert ("agent", "Anna is on her way down.") in kiosk.observed.lines
    assert sound is not None and sound > span.voice_end_ms  # never over the visitor
    assert sound - span.voice_end_ms < 1500
    assert requests <= 2  # at most one speculative request, dropped unheard


async def test_a_one_word_answer_is_answered_promptly(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    kiosk = make_kiosk([{"visitor": "Yes.", "reply": "Great, follow me please."}])
    await kiosk.start()
    try:
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 1, timeout_s=20)
        span = kiosk.mic.spans[0]
        sound = first_sound_ms(kiosk, span.start_ms)
        users = user_messages(kiosk)
        requests = len(kiosk.stack.llm.requests)
    finally:
        assert await kiosk.stop() == 0
    assert users == ["Yes."]
    assert requests == 1  # a finished sentence: nothing speculative
    assert sound is not None and span.voice_end_ms < sound
    # FAST profile: 240 ms local endpoint + STT 120 + TTFT 80 + TTS 40 + periods; a
    # policy waiting for more would add its 700-1500 ms.
    assert sound - span.voice_end_ms < 900


async def test_a_visitor_who_resumes_while_the_reply_is_prepared_is_never_talked_over(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    kiosk = make_kiosk(
        [
            {
                "visitor": "I have a parcel for <pause 700> um <pause 600> the post room.",
                "reply": "The post room is in the basement.",
            }
        ],
        profile=PREPARING,
    )
    await kiosk.start()
    try:
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 1, timeout_s=25)
        await kiosk.wait_for(lambda: kiosk.conversation.state is AgentState.IDLE)
        span = kiosk.mic.spans[0]
        sound = first_sound_ms(kiosk, span.start_ms)
        users = user_messages(kiosk)
        llm = kiosk.stack.llm
        requests = [r.messages[-1]["content"] for r in llm.requests]
        dropped = kiosk.conversation.speculations_dropped
    finally:
        assert await kiosk.stop() == 0
    assert users == ["I have a parcel for um the post room."]
    assert sound is not None and sound > span.voice_end_ms
    # The visitor went on while a speculative reply was in the making: it was started
    # on the words so far and dropped without a sound.
    assert dropped >= 1
    assert requests[0] == "I have a parcel for"
    assert requests[-1] == "I have a parcel for um the post room."
    assert not [at for at, _ in kiosk.speaker.played if span.start_ms <= at < span.voice_end_ms]
