"""The events that flow through agentd's one asyncio loop.

Facts are named in the past tense (`SpeechStarted`), commands in the imperative
(`CancelReply`). Times are monotonic milliseconds (`now_ms()`) with the unit in the
field name. Audio is data; every other event is control: the conversation's inbox
(`agentd.conversation.inbox`) hands control events over before any queued audio, so a
cancel or a barge-in never waits behind a backlog of mic frames.

Every source of a command - GPIO buttons, MQTT, the barge-in policy, mute, shutdown -
posts the same command events below; the turn state machine has one handler per type.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from agentd.audio.format import AudioChunk


def now_ms() -> float:
    """Monotonic time in milliseconds, the clock every *_at_ms field uses."""
    return time.monotonic_ns() / 1e6


class AgentState(StrEnum):
    """What the kiosk is doing; published on MQTT and shown on the LEDs."""

    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    MUTED = "muted"


class LinkState(StrEnum):
    """State of one long-lived connection (STT socket, LLM/TTS HTTP, MQTT, ALSA)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    FAILED = "failed"  # e.g. auth refused: no retry storm, needs operator action


class Outcome(StrEnum):
    """How a turn ended; decided once, when the turn is finished (conversation.turn_record)."""

    OK = "ok"
    # A button, MQTT, a new turn, shutdown or the conversation limits stopped the reply.
    CANCELLED = "cancelled"
    # The visitor went on talking before a sound of the reply played: it was dropped
    # unheard and the whole turn answered once, in a later record (not a cancellation).
    SUPERSEDED = "superseded"
    BARGE_IN = "barge_in"  # the visitor talked over the reply and was listened to
    FALLBACK = "fallback"  # a cloud link failed; the local voice spoke instead
    EMPTY = "empty"  # the model said nothing speakable; the "sorry" line played


# --- audio / gate -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The VAD gate opened; `preroll` is the audio before the opening, replayed first."""

    at_ms: float
    preroll: bytes = b""


@dataclass(frozen=True, slots=True)
class VoicedAudio:
    """Gated audio to send to STT (only while the gate is open).

    `voiced` is the gate's verdict on this frame; `ends_quiet` says a voiced frame's
    last few milliseconds already fell to the noise floor (the word ended inside it),
    so the STT link can flush without waiting a whole period for the next frame.
    """

    chunk: AudioChunk
    voiced: bool = True
    ends_quiet: bool = False

    @property
    def at_ms(self) -> float:
        return self.chunk.at_ms


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The VAD gate closed (after hangover); `duration_ms` is the utterance length."""

    at_ms: float
    duration_ms: float
    too_short: bool = False
    voice_end_ms: float | None = None  # end of the last voiced frame (true end of speech)


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Visitor speech over the agent's reply, decided echo-aware."""

    at_ms: float
    onset_ms: float


@dataclass(frozen=True, slots=True)
class BargeInSuspected:
    """Probable visitor speech over the reply: pause playback (do not cancel yet)."""

    at_ms: float
    onset_ms: float


@dataclass(frozen=True, slots=True)
class BargeInDismissed:
    """The suspected barge-in was a backchannel/noise: resume the paused reply."""

    at_ms: float
    onset_ms: float


@dataclass(frozen=True, slots=True)
class FalseBargeIn:
    """A confirmed barge-in produced no words: resume the reply."""

    at_ms: float
    onset_ms: float


BargeInEvent = BargeInSuspected | BargeIn | BargeInDismissed | FalseBargeIn


@dataclass(frozen=True, slots=True)
class FirstAudioPlayed:
    """The playback device started sounding newly written audio (from its thread)."""

    at_ms: float


# --- STT ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranscriptPartial:
    text: str
    at_ms: float


@dataclass(frozen=True, slots=True)
class TurnFinalized:
    """STT produced the final (formatted) transcript of one visitor turn."""

    text: str
    at_ms: float
    turn_order: int = 0


@dataclass(frozen=True, slots=True)
class TurnModelAnswered:
    """The local audio turn model judged a pause (agentd.conversation.turn_audio).

    `request_id` names the question (`TurnAudio.ask`); a later question makes it stale.
    """

    request_id: int
    complete_probability: float  # P(the visitor has finished), 0..1
    inference_ms: float  # features + model, on the turn-audio thread
    audio_ms: float  # how much of the turn it heard (at most the model's 8 s)


# --- commands (buttons, MQTT, barge-in policy, mute, shutdown) -----------------------


@dataclass(frozen=True, slots=True)
class CancelReply:
    """Stop the reply in flight (LLM, TTS and speaker); `source` names who asked."""

    source: str
    at_ms: float = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class StartListening:
    """Push-to-talk: open a turn even if the VAD would not."""

    source: str
    at_ms: float = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class StopListening:
    source: str
    at_ms: float = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class Say:
    """Announce text (MQTT `say`): through TTS, the fallback voice if TTS fails."""

    text: str
    source: str


@dataclass(frozen=True, slots=True)
class SetMuted:
    muted: bool
    source: str


@dataclass(frozen=True, slots=True)
class ToggleMute:
    """The mute button: the conversation knows the current state, the button does not."""

    source: str


@dataclass(frozen=True, slots=True)
class SetVolume:
    level: float
    source: str


@dataclass(frozen=True, slots=True)
class ResetConversation:
    """Forget the conversation (MQTT `reset`): reply cancelled, history wiped."""

    source: str


@dataclass(frozen=True, slots=True)
class CallStaff:
    reason: str
    source: str
    at_ms: float = field(default_factory=now_ms)


Command = (
    CancelReply
    | StartListening
    | StopListening
    | Say
    | SetMuted
    | ToggleMute
    | SetVolume
    | ResetConversation
    | CallStaff
)


@dataclass(frozen=True, slots=True)
class ButtonPressed:
    """A fact for reporting (MQTT event); the button's command is posted beside it."""

    button: str  # "talk", "cancel", "mute", "staff"
    long_press: bool = False
    at_ms: float = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class ButtonReleased:
    button: str
    at_ms: float = field(default_factory=now_ms)


# --- reporting -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkChanged:
    link: str  # stt, llm, tts, mqtt, capture, playback
    state: LinkState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FaultRaised:
    """Something failed; journal ERROR_KIND and MQTT event/fault carry `error_kind`."""

    error_kind: str
    message: str
    link: str = ""
    turn_id: str = ""
    at_ms: float = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class TurnMetrics:
    """One reply to a visitor turn: latency breakdown (None where a stage did not
    happen), what it cost and how it ended. A reply dropped unheard because the visitor
    went on has its own record (`Outcome.SUPERSEDED`): every LLM request is in one."""

    turn_id: str
    endpoint_delay_ms: float | None = None
    stt_final_ms: float | None = None
    llm_ttft_ms: float | None = None
    tts_ttfb_ms: float | None = None
    voice_to_voice_ms: float | None = None
    barge_ins: int = 0
    # Chat completion requests this reply made (one per tool round), and the tokens their
    # streams' usage reported; a request closed before its usage chunk (cancelled,
    # superseded) or to a server without usage is counted in `llm_requests_unmetered`,
    # its tokens are unknown (the tokens are then a lower bound).
    llm_requests: int = 0
    llm_requests_unmetered: int = 0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    tts_characters: int = 0
    audio_out_s: float = 0.0
    audio_in_s: float = 0.0
    tool_calls: int = 0
    outcome: Outcome = Outcome.OK
