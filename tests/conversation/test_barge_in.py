"""The interruption policy through the turn state machine: hold, words, resume, dismiss."""

from __future__ import annotations

from dataclasses import dataclass

from agentd.conversation.interruption import REPLAY_BEFORE_ONSET_MS
from agentd.events import (
    AgentState,
    BargeIn,
    BargeInDismissed,
    BargeInSuspected,
    FalseBargeIn,
    Outcome,
    SpeechEnded,
    TranscriptPartial,
    now_ms,
)
from agentd.llm.events import LlmDone, TextDelta
from agentd.llm.history import INTERRUPTED_MARK
from tests.conversation.rig import (
    REPLY,
    Rig,
    chunk,
    history_after,
    settle,
    speaking,
)

S = AgentState


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


async def test_barge_in_replay_sends_each_chunk_once(rig: Rig) -> None:
    await barged_in(rig)
    tags = [pcm[0] for pcm in rig.stt.fed[1:]]
    assert tags == list(range(2, 11))


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
