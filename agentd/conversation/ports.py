"""The seams between the conversation and its parts, as `typing.Protocol`s.

The turn state machine and the reply pipeline see their parts only through these, and
the composition root hands them either the real part (ALSA, webrtcvad, AssemblyAI,
OpenAI, ElevenLabs, espeak-ng) or its simulated twin (`agentd.sim`): mypy --strict
checks both against the same Protocol, so a fake cannot drift from the real thing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from agentd.audio.format import AudioChunk
from agentd.events import (
    AgentState,
    BargeInEvent,
    FaultRaised,
    LinkState,
    SpeechEnded,
    SpeechStarted,
    TurnMetrics,
    VoicedAudio,
)
from agentd.llm.events import LlmEvent
from agentd.tts.stitching import ReplyStitching

# One chat message as the OpenAI API has it ({"role": ..., "content": ..., ...}).
ChatMessage = dict[str, object]
GateEvent = SpeechStarted | VoicedAudio | SpeechEnded


class Gate(Protocol):
    """The VAD gate: opens on speech (with pre-roll), closes after the hangover."""

    last_voiced: bool

    @property
    def voice_end_ms(self) -> float: ...

    def process(self, chunk: AudioChunk) -> Sequence[GateEvent]: ...

    def reset(self) -> None: ...

    def set_muted(self, muted: bool, at_ms: float = 0.0) -> Sequence[GateEvent]: ...


class BargeInDetector(Protocol):
    """Decides, echo-aware, whether the visitor is talking over the reply."""

    def process(self, chunk: AudioChunk, voiced: bool) -> Sequence[BargeInEvent]: ...

    def reset(self) -> None: ...

    def note_words(self) -> None: ...


class SttLink(Protocol):
    """Streaming speech-to-text: utterances in, TranscriptPartial/TurnFinalized out."""

    @property
    def link_state(self) -> LinkState: ...

    async def start(self) -> None: ...

    def begin_utterance(self) -> None: ...

    def feed(self, pcm: bytes) -> None: ...

    def send_gated(self, audio: VoicedAudio) -> bytes: ...

    def end_utterance(self) -> None: ...

    def end_session(self) -> None: ...

    async def close(self) -> None: ...


class LlmClient(Protocol):
    """Streams the model's reply (text deltas, tool activity, a final summary)."""

    def stream_reply(self, messages: list[ChatMessage]) -> AsyncGenerator[LlmEvent, None]: ...

    def warm_up(self) -> None: ...

    async def aclose(self) -> None: ...


class TtsClient(Protocol):
    """Streams the audio of one clause, PCM at the playback rate."""

    def stream(
        self,
        text: str,
        *,
        previous_text: str = "",
        next_text: str = "",
        stitching: ReplyStitching | None = None,
    ) -> AsyncGenerator[bytes, None]: ...

    def warm_up(self) -> None: ...

    async def aclose(self) -> None: ...


class FallbackVoice(Protocol):
    """The local voice: pre-rendered lines and on-demand rendering, never the network."""

    def prerender(self) -> None: ...

    def line(self, name: str) -> bytes: ...

    async def render(self, text: str) -> bytes: ...


class Speaker(Protocol):
    """The reply side's view of playback: write, pause/resume/cancel, what was played."""

    @property
    def volume(self) -> float: ...

    @property
    def is_playing(self) -> bool: ...

    def write(self, pcm: bytes) -> None: ...

    def cancel(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def set_volume(self, gain: float) -> None: ...

    def played_bytes(self) -> int: ...

    async def wait_idle(self) -> None: ...


class ClauseSplitter(Protocol):
    """Cuts streamed text into clauses worth one TTS request each."""

    def feed(self, delta: str) -> list[str]: ...

    def flush(self) -> list[str]: ...


class History(Protocol):
    """The conversation so far, as sent to the model; keeps only what was heard."""

    def messages_for_request(self, user_text: str) -> list[ChatMessage]: ...

    def commit_turn(
        self,
        user_text: str,
        tool_messages: Sequence[ChatMessage],
        assistant_text_played: str,
        *,
        interrupted: bool = False,
    ) -> None: ...

    def reset(self) -> None: ...

    def set_system_prompt(self, text: str) -> None: ...


class Recorder(Protocol):
    """Debug recording of what the cloud heard (off unless configured)."""

    def add(self, pcm: bytes) -> None: ...

    def save(self, turn_id: str) -> None: ...

    def discard(self) -> None: ...


class ConversationLimits(Protocol):
    """Per-conversation limits (tool cooldowns) that restart with each new visitor."""

    def new_conversation(self) -> None: ...


class TurnModel(Protocol):
    """A local audio turn model (agentd.audio.turn_model): has the speaker finished?"""

    def complete_probability(self, pcm: bytes) -> float: ...


class Reporter(Protocol):
    """Where the conversation's facts go (journal, MQTT, LEDs, sd_notify STATUS)."""

    def state_changed(self, state: AgentState) -> None: ...

    def fault(self, fault: FaultRaised) -> None: ...

    def turn_finished(self, metrics: TurnMetrics) -> None: ...

    def event(self, name: str, payload: dict[str, object]) -> None: ...

    def call_staff(self, reason: str, source: str) -> None: ...

    def transcript(self, who: str, text: str, turn_id: str) -> None: ...
