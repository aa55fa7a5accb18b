"""The events that flow through agentd's one asyncio loop.

Facts are named in the past tense (`SpeechStarted`), commands in the imperative
(`CancelReply`). Times are monotonic milliseconds (`time.monotonic_ns() // 1e6`) with
the unit in the field name. Control events carry `priority = CONTROL` so they overtake
queued audio.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

CONTROL = 0
DATA = 1


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
    ERROR = "error"
    OFFLINE = "offline"


class LinkState(StrEnum):
    """State of one long-lived connection (STT socket, LLM/TTS HTTP, MQTT, ALSA)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    FAILED = "failed"  # e.g. auth refused: no retry storm, needs operator action


# --- audio / gate -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The VAD gate opened; `preroll` is the audio before the opening, replayed first."""

    at_ms: float
    preroll: bytes = b""
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class VoicedAudio:
    """Gated audio to send to STT (only while the gate is open).

    `voiced` is the gate's verdict on this frame; `ends_quiet` says a voiced frame's
    last few milliseconds already fell to the noise floor (the word ended inside it),
    so the STT link can flush without waiting a whole period for the next frame.
    """

    pcm: bytes
    at_ms: float
    voiced: bool = True
    ends_quiet: bool = False
    priority: int = DATA


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The VAD gate closed (after hangover); `duration_ms` is the utterance length."""

    at_ms: float
    duration_ms: float
    too_short: bool = False
    voice_end_ms: float | None = None  # end of the last voiced frame (true end of speech)
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Visitor speech over the agent's reply, decided echo-aware."""

    at_ms: float
    onset_ms: float
    priority: int = CONTROL


# --- STT ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranscriptPartial:
    text: str
    at_ms: float
    priority: int = DATA


@dataclass(frozen=True, slots=True)
class TurnFinalized:
    """STT produced the final (formatted) transcript of one visitor turn."""

    text: str
    at_ms: float
    turn_order: int = 0
    priority: int = CONTROL


# --- commands from buttons / MQTT / shutdown ------------------------------------------


@dataclass(frozen=True, slots=True)
class CancelReply:
    reason: str
    at_ms: float = field(default_factory=now_ms)
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class StartListening:
    """Push-to-talk: open a turn even if the VAD would not."""

    source: str
    at_ms: float = field(default_factory=now_ms)
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class StopListening:
    source: str
    at_ms: float = field(default_factory=now_ms)
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class Speak:
    """Announce text (MQTT `say`): goes through TTS, fallback voice if TTS fails."""

    text: str
    source: str = "mqtt"
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class SetMuted:
    muted: bool
    source: str
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class StaffCalled:
    reason: str
    source: str
    at_ms: float = field(default_factory=now_ms)
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class ButtonPressed:
    button: str  # "talk", "cancel", "mute"
    long_press: bool = False
    at_ms: float = field(default_factory=now_ms)
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class ButtonReleased:
    button: str
    at_ms: float = field(default_factory=now_ms)
    priority: int = CONTROL


# --- reporting -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: AgentState
    new: AgentState
    at_ms: float = field(default_factory=now_ms)


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
    """Per-turn latency breakdown; None where a stage did not happen."""

    turn_id: str
    endpoint_delay_ms: float | None = None
    stt_final_ms: float | None = None
    llm_ttft_ms: float | None = None
    tts_ttfb_ms: float | None = None
    voice_to_voice_ms: float | None = None
    barge_ins: int = 0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    tts_characters: int = 0
    audio_out_s: float = 0.0
    audio_in_s: float = 0.0
    tool_calls: int = 0
    outcome: str = "ok"  # ok, cancelled, barge_in, fallback, empty
