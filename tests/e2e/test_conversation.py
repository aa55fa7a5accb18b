"""One visitor turn through the real daemon: STT -> LLM (tools) -> TTS -> speaker.

Real SDKs against the protocol emulators, real espeak-ng speech in the simulated mic,
no patching of agentd code. Timing bounds here are generous sanity checks; the targets
live in `agentd bench latency`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agentd.audio import dsp
from agentd.events import AgentState, CancelReply
from agentd.sim.harness import SimulatedKiosk
from tests.e2e.conftest import audible_ms

pytestmark = pytest.mark.timeout(90)

GREETING = {
    "visitor": "Hello, where is the meeting room?",
    "reply": "The meeting room is on the second floor, next to the lifts.",
    "pause_before_ms": 400,
}


def speaker_audio(kiosk: SimulatedKiosk) -> bytes:
    return b"".join(chunk for _, chunk in kiosk.speaker.played)


async def test_full_turn_end_to_end(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    kiosk = make_kiosk([GREETING])
    await kiosk.start()
    stack = kiosk.stack
    assert stack is not None
    try:
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 1, timeout_s=20)
        await kiosk.wait_for(lambda: kiosk.conversation.state is AgentState.IDLE)
        audio = speaker_audio(kiosk)
        history = kiosk.conversation.parts.history
        messages = history.messages_for_request("next")
    finally:
        assert await kiosk.stop() == 0
    # Connections were warmed while the visitor spoke, and the turn's requests used them.
    assert stack.llm.model_listings and stack.tts.model_listings
    assert stack.llm.requests[0].peer in stack.llm.model_listings
    assert stack.tts.requests[0].peer in stack.tts.model_listings
    metrics = kiosk.observed.turns[0]
    assert metrics.outcome == "ok"
    assert metrics.voice_to_voice_ms is not None and 0 < metrics.voice_to_voice_ms < 5000
    assert metrics.llm_ttft_ms is not None and metrics.tts_ttfb_ms is not None
    assert ("visitor", "Hello, where is the meeting room?") in kiosk.observed.lines
    assert ("agent", GREETING["reply"]) in kiosk.observed.lines
    assert len(audio) > 16000 * 2 and dsp.mean_square(audio) > 300**2  # real speech played
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == GREETING["reply"]
    assert kiosk.observed.states[:2] == ["listening", "thinking"]
    assert "speaking" in kiosk.observed.states


async def test_tool_round_trip_and_bad_arguments(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    turns = [
        {
            "visitor": "Could you call someone from reception for me?",
            "reply": "Of course, someone is on their way.",
            "tool": "call_staff",
            "tool_arguments": {"reason": "visitor at the front desk"},
            "pause_before_ms": 400,
        },
        {
            "visitor": "And when do you open tomorrow?",
            "reply": "Sorry, I could not look that up right now.",
            "tool": "opening_hours",
            "tool_arguments": {"day": "tomorrow"},
            "pause_before_ms": 600,
        },
    ]
    kiosk = make_kiosk(turns)
    await kiosk.start()
    stack = kiosk.stack
    assert stack is not None
    try:
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 1, timeout_s=20)
        stack.llm.faults.bad_tool_arguments = True  # the second tool call is malformed JSON
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 2, timeout_s=25)
    finally:
        assert await kiosk.stop() == 0
    staff_calls = [p for name, p in kiosk.observed.events if name == "staff_call"]
    assert staff_calls and "visitor at the front desk" in staff_calls[0]["reason"]
    # The emulator saw the tool results fed back: a good one, then an error for bad JSON.
    tool_messages = [m for r in stack.llm.requests for m in r.messages if m.get("role") == "tool"]
    assert any("visitor at the front desk" not in m["content"] for m in tool_messages)
    errors = [json.loads(m["content"]) for m in tool_messages if "error" in m["content"]]
    assert errors, tool_messages
    assert [t.outcome for t in kiosk.observed.turns] == ["ok", "ok"]
    assert ("agent", "Sorry, I could not look that up right now.") in kiosk.observed.lines
    assert all(t.tool_calls == 1 for t in kiosk.observed.turns)


async def test_first_tts_request_goes_out_before_the_llm_stream_ends(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    from agentd.sim.stack import ServiceProfile

    long_reply = (
        "Sure, the cafeteria is on the ground floor. Walk past the lifts and turn left, "
        "then follow the signs for about fifty metres until you see the glass doors. "
        "It is open until three in the afternoon, and visitors are always welcome there."
    )
    slow_llm = ServiceProfile(stt_final_ms=100, llm_ttft_ms=100, llm_chunk_ms=40, tts_ttfb_ms=30)
    kiosk = make_kiosk(
        [{"visitor": "Where is the cafeteria?", "reply": long_reply, "pause_before_ms": 400}],
        profile=slow_llm,
    )
    await kiosk.start()
    stack = kiosk.stack
    assert stack is not None
    try:
        await kiosk.wait_for(
            lambda: any(r.finished_at for r in stack.llm.requests) and len(stack.tts.requests) >= 3,
            timeout_s=30,
        )
    finally:
        await kiosk.stop()
    llm_request = next(r for r in stack.llm.requests if r.finished_at is not None)
    first_tts = min(r.arrived_s for r in stack.tts.requests)
    assert llm_request.finished_at is not None
    # Streaming: speech was requested while the model was still writing (well before).
    assert first_tts < llm_request.finished_at - 0.5
    assert len(stack.tts.requests) >= 3  # clause by clause, not one big request
    assert stack.tts.requests[0].text.startswith("Sure, the cafeteria")


async def test_cancel_mid_llm_stops_the_stream_and_keeps_no_reply(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    from agentd.sim.stack import ServiceProfile

    slow = ServiceProfile(stt_final_ms=100, llm_ttft_ms=2500, llm_chunk_ms=50, tts_ttfb_ms=30)
    kiosk = make_kiosk([GREETING], profile=slow)
    await kiosk.start()
    stack = kiosk.stack
    assert stack is not None
    conversation = kiosk.conversation
    try:
        await kiosk.wait_for(lambda: conversation.state is AgentState.THINKING, timeout_s=20)
        # The LLM request is open at the emulator, no token yet.
        await kiosk.wait_for(lambda: any(r.finished_at is None for r in stack.llm.requests), 5)
        assert conversation.reply_in_flight
        conversation.handle(CancelReply("test cancel"))
        await kiosk.wait_for(lambda: any(r.closed_by_client for r in stack.llm.requests), 5)
        await kiosk.wait_for(lambda: not conversation.reply_in_flight)
        messages = conversation.parts.history.messages_for_request("next")
    finally:
        await kiosk.stop()
    assert not stack.tts.requests  # nothing was synthesised
    assert not any(m["role"] == "assistant" for m in messages)
    assert kiosk.observed.turns[0].outcome == "cancelled"


async def test_cancel_mid_tts_flushes_the_speaker_and_keeps_what_was_heard(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    from agentd.sim.stack import ServiceProfile

    reply = (
        "Welcome to the building. The reception is straight ahead, the lifts are on your "
        "right, and the cafeteria is on the ground floor next to the garden entrance."
    )
    # TTS paced at real time, so the stream is still open when we cancel.
    paced = ServiceProfile(
        stt_final_ms=100, llm_ttft_ms=80, llm_chunk_ms=5, tts_ttfb_ms=30, tts_pace=1.0
    )
    kiosk = make_kiosk(
        [{"visitor": "Hello there, I just arrived.", "reply": reply, "pause_before_ms": 400}],
        profile=paced,
    )
    await kiosk.start()
    stack = kiosk.stack
    assert stack is not None
    conversation = kiosk.conversation
    speaker = kiosk.speaker
    try:
        await kiosk.wait_for(lambda: conversation.state is AgentState.SPEAKING, timeout_s=20)
        await kiosk.wait_for(lambda: audible_ms(kiosk) >= 1200, 10)  # some of it was heard
        assert conversation.reply_in_flight
        conversation.handle(CancelReply("test cancel"))
        cancelled_at = speaker.silent_since_ms or 0.0
        await kiosk.wait_for(lambda: any(r.disconnected for r in stack.tts.requests), 5)
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 1, 5)  # the turn is closed
        messages = conversation.parts.history.messages_for_request("next")
    finally:
        await kiosk.stop()
    late = [at for at, chunk in speaker.played if at > cancelled_at + 40 and any(chunk)]
    assert not late, "audio kept playing after the cancel"
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    assert len(assistant) == 1
    heard = assistant[0]
    assert heard.split()[0] == "Welcome"
    assert len(heard) < len(reply) * 0.8  # truncated to what was played


async def test_debug_recording_writes_exactly_what_stt_heard(
    make_kiosk: Callable[..., SimulatedKiosk], tmp_path: Path
) -> None:
    import wave

    record_dir = tmp_path / "recordings"
    kiosk = make_kiosk([GREETING], extra_toml=f'[privacy]\nrecord_audio_dir = "{record_dir}"\n')
    await kiosk.start()
    stack = kiosk.stack
    assert stack is not None
    try:
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) == 1, timeout_s=20)
        await kiosk.wait_for(lambda: any(record_dir.glob("*.wav")), 5)
    finally:
        await kiosk.stop()
    turn_id = kiosk.observed.turns[0].turn_id
    with wave.open(str(record_dir / f"{turn_id}.wav")) as wav:
        recorded = wav.readframes(wav.getnframes())
    sent = bytes(stack.stt.sessions[0].audio)
    assert len(recorded) > 16000  # > 0.5 s of speech
    assert sent.startswith(recorded)  # the same audio the cloud got, padding included


async def test_long_reply_is_synthesized_only_a_few_seconds_ahead(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    """Backpressure: a cancelled long reply was never synthesized (nor paid for) in full."""
    sentences = [
        f"This is sentence number {i} of a very long answer about the building."
        for i in range(1, 16)
    ]
    reply = " ".join(sentences)
    kiosk = make_kiosk(
        [
            {
                "visitor": "Tell me everything about this place.",
                "reply": reply,
                "pause_before_ms": 400,
            }
        ],
        tail_ms=8000,
    )
    await kiosk.start()
    stack = kiosk.stack
    assert stack is not None
    conversation = kiosk.conversation
    try:
        await kiosk.wait_for(lambda: conversation.state is AgentState.SPEAKING, timeout_s=20)
        await kiosk.wait_for(lambda: audible_ms(kiosk) >= 2000, 10)
        requested_while_playing = sum(len(r.text) for r in stack.tts.requests)
        conversation.handle(CancelReply("test"))
        await kiosk.wait_for(lambda: not conversation.reply_in_flight, 5)
    finally:
        await kiosk.stop()
    # 15 sentences are ~40 s of speech; only ~8 s (2 s played + 6 s ahead) may be asked for.
    assert requested_while_playing < len(reply) / 2
    assert sum(len(r.text) for r in stack.tts.requests) < len(reply) / 2


async def test_the_agent_does_not_answer_its_own_echo(
    make_kiosk: Callable[..., SimulatedKiosk],
) -> None:
    """Loud speaker-to-mic coupling: the reply's echo must never become a visitor turn."""
    await _answer_own_echo(make_kiosk, "[audio.barge_in]\necho_filter = false\n")


async def test_the_agent_does_not_answer_its_own_echo_with_the_echo_filter(
    make_kiosk: Callable[..., SimulatedKiosk],
) -> None:
    """Same with the adaptive echo filter: once converged on the first reply it must
    keep cancelling the later replies' echo, not take it for the visitor."""
    await _answer_own_echo(make_kiosk, "[audio.barge_in]\necho_filter = true\n")


async def _answer_own_echo(make_kiosk: Callable[..., SimulatedKiosk], barge_in: str) -> None:
    turns = [
        {"visitor": "Hello, where is the meeting room?", "reply": GREETING["reply"],
         "pause_before_ms": 400},
        {"visitor": "And the toilets?", "reply": "Right next to the lifts.",
         "pause_before_ms": 1200},
    ]  # fmt: skip
    echo = "[audio.sim]\necho_db = -10.0\necho_delay_ms = 40.0\n" + barge_in
    kiosk = make_kiosk(turns, extra_toml=echo, tail_ms=4000)
    await kiosk.start()
    try:
        await kiosk.wait_scenario_done(60)
        # At rest: the last reply is over and its turn recorded.
        await kiosk.wait_for(
            lambda: len(kiosk.observed.turns) >= 2 and not kiosk.conversation.reply_in_flight, 10
        )
    finally:
        await kiosk.stop()
    assert kiosk.observed.lines == [
        ("visitor", "Hello, where is the meeting room?"),
        ("agent", GREETING["reply"]),
        ("visitor", "And the toilets?"),
        ("agent", "Right next to the lifts."),
    ]
    assert [t.outcome for t in kiosk.observed.turns] == ["ok", "ok"]
