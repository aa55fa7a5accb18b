"""A Conversation built from fakes (tests/conversation/fakes.py), and loop helpers.

Nothing here waits on the wall clock: `until()` lets the loop run tasks by yielding to
it (`asyncio.sleep(0)`) until a condition holds, and fails after a bounded number of
turns if it never does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.conversation.parts import ConversationParts, TalkMode
from agentd.conversation.turns import Conversation
from agentd.events import AgentState, FirstAudioPlayed, SpeechEnded, SpeechStarted, TurnFinalized
from agentd.llm.events import LlmDone, TextDelta
from agentd.llm.history import ConversationHistory
from agentd.tts.splitter import ClauseSplitter
from tests.conversation.fakes import (
    FakeBargeInDetector,
    FakeFallbackVoice,
    FakeGate,
    FakeLlmClient,
    FakeRecorder,
    FakeReporter,
    FakeSpeaker,
    FakeSttLink,
    FakeTtsClient,
)

IN_FORMAT = AudioFormat(16_000)
OUT_FORMAT = AudioFormat(24_000)
MIN_CLAUSE_CHARS = 8
SYSTEM_PROMPT = "You are the museum kiosk."
MAX_LOOP_TURNS = 200  # far more than any scenario needs; a hang fails instead of blocking


async def until(condition: Callable[[], bool], what: str = "condition") -> None:
    """Let the loop run until `condition()` holds (no wall-clock wait)."""
    for _ in range(MAX_LOOP_TURNS):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{what} never became true")


async def settle(turns: int = 30) -> None:
    """Let every runnable task run to its next real wait."""
    for _ in range(turns):
        await asyncio.sleep(0)


def chunk(at_ms: float, tag: int = 0, ms: int = 20) -> AudioChunk:
    """A mic chunk whose bytes say which one it is (`tag`)."""
    return AudioChunk(bytes([tag % 256]) * IN_FORMAT.bytes_for_ms(ms), IN_FORMAT, at_ms)


@dataclass
class Rig:
    gate: FakeGate
    barge_in: FakeBargeInDetector
    stt: FakeSttLink
    llm: FakeLlmClient
    tts: FakeTtsClient
    fallback: FakeFallbackVoice
    speaker: FakeSpeaker
    recorder: FakeRecorder
    history: ConversationHistory
    reporter: FakeReporter
    conv: Conversation

    def state(self) -> AgentState:
        """The conversation's state (a call, so mypy does not narrow it across events)."""
        return self.conv.state

    # --- driving a turn ----------------------------------------------------------------

    def visitor_says(self, text: str, at_ms: float = 1000.0) -> None:
        """Gate opens, gate closes, STT final: a whole visitor turn, as events."""
        self.conv.handle(SpeechStarted(at_ms, preroll=b"pre"))
        self.conv.handle(SpeechEnded(at_ms + 800, 800, voice_end_ms=at_ms + 700))
        self.conv.handle(TurnFinalized(text, at_ms + 900))

    def finalize(self, text: str, at_ms: float = 2000.0) -> None:
        self.conv.handle(TurnFinalized(text, at_ms))

    async def requested(self, n: int) -> None:
        """Until the LLM has been asked `n` times (the reply task runs the request)."""
        await until(lambda: len(self.llm.requests) >= n, f"{n} LLM requests")

    async def replying(self) -> None:
        """Until the reply in flight has written audio to the speaker."""
        await until(lambda: self.speaker.queued > 0, "reply audio written")

    async def idle(self) -> None:
        """Until no reply is in flight."""
        await until(lambda: not self.conv.reply_in_flight, "reply finished")
        await settle()


def build_rig(talk_mode: TalkMode = "hold", *, barge_in: bool = True) -> Rig:
    gate = FakeGate()
    detector = FakeBargeInDetector()
    stt = FakeSttLink()
    llm = FakeLlmClient()
    tts = FakeTtsClient()
    fallback = FakeFallbackVoice()
    speaker = FakeSpeaker()
    recorder = FakeRecorder()
    history = ConversationHistory(SYSTEM_PROMPT, budget_chars=100_000, idle_reset_s=1e9)
    reporter = FakeReporter()
    parts = ConversationParts(
        gate=gate,
        barge_in=detector if barge_in else None,
        stt=stt,
        llm=llm,
        history=history,
        tts=tts,
        fallback=fallback,
        speaker=speaker,
        new_splitter=lambda: ClauseSplitter(MIN_CLAUSE_CHARS),
        recorder=recorder,
        in_format=IN_FORMAT,
        out_format=OUT_FORMAT,
        talk_mode=talk_mode,
    )
    conv = Conversation(parts=parts, reporter=reporter, log_transcripts=False)
    # The playback device tells the loop when it starts sounding (composition.py does
    # the same with the inbox).
    speaker.on_first_audio = lambda at_ms: conv.handle(FirstAudioPlayed(at_ms))
    return Rig(gate, detector, stt, llm, tts, fallback, speaker, recorder, history, reporter, conv)


# A two-clause reply; its first clause is 1,600 bytes of fake TTS audio.
REPLY = "We open at nine. The cafe opens at ten."


async def speaking(rig: Rig, user: str = "When do you open?", reply: str = REPLY) -> None:
    """A visitor turn answered; 500 of the first clause's 1,600 bytes sounded: SPEAKING.

    That is 5/16 of "We open at nine.": the history keeps its first word, "We".
    """
    rig.llm.script(TextDelta(reply), LlmDone("stop", 10, 5))
    rig.visitor_says(user)
    assert rig.state() is AgentState.THINKING
    await rig.replying()
    rig.speaker.play(500)
    assert rig.state() is AgentState.SPEAKING


def history_after(rig: Rig) -> list[dict[str, object]]:
    """The committed exchanges, as the next request would send them (system excluded)."""
    return rig.history.messages_for_request("next")[1:-1]


def user_messages(rig: Rig) -> list[object]:
    return [m["content"] for m in history_after(rig) if m["role"] == "user"]
