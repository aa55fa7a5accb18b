"""Config sections for the cloud links: STT, LLM (with tools), TTS, and the fallback voice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agentd.config._fields import section, setting
from agentd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SttConfig:
    provider: Literal["assemblyai"] = "assemblyai"
    api_host: str = setting("wss://streaming.assemblyai.com", doc="ws:// for a local emulator.")
    speech_model: str = "u3-rt-pro"
    format_turns: bool = True
    min_turn_silence_ms: int = setting(400, min=0, max=10000)
    max_turn_silence_ms: int = setting(1280, min=0, max=20000)
    end_of_turn_confidence: float = setting(0.7, min=0.0, max=1.0)
    keyterms: tuple[str, ...] = setting((), doc="Business and staff names to bias towards.")
    chunk_ms: int = setting(50, min=50, max=1000, doc="PCM per websocket frame.")
    idle_close_s: float = setting(20.0, min=1.0, max=600.0, doc="Terminate after idle.")
    final_timeout_s: float = setting(3.0, min=0.5, max=30.0)
    connect_timeout_s: float = setting(5.0, min=0.5, max=60.0)
    max_backoff_s: float = setting(30.0, min=1.0, max=600.0)
    buffer_s: float = setting(30.0, min=1.0, max=300.0, doc="Audio kept while reconnecting.")


@dataclass(frozen=True, slots=True)
class ToolConfig:
    """One tool the model may call: a built-in (by kind) or a webhook."""

    name: str = setting(required=True)
    kind: Literal["time", "opening_hours", "call_staff", "webhook"] = setting(required=True)
    description: str = ""
    url: str = setting("", doc="webhook only: HTTP POST target for the JSON arguments.")
    timeout_s: float = setting(5.0, min=0.1, max=60.0)
    parameters: dict[str, Any] = setting(
        factory=dict, doc="JSON schema of the arguments (webhook); built-ins have their own."
    )

    def validate(self, path: str) -> None:
        if not self.name.replace("_", "").replace("-", "").isalnum() or len(self.name) > 64:
            raise ConfigError(f"{path}.name", "invalid tool name", self.name, "[A-Za-z0-9_-]{1,64}")
        if self.kind == "webhook" and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"{path}.url", "webhook tools need an http(s) url", self.url)


@dataclass(frozen=True, slots=True)
class OpeningHoursConfig:
    timezone: str = setting("UTC", doc="IANA zone, e.g. 'Europe/Berlin'.")
    monday: str = "09:00-17:00"
    tuesday: str = "09:00-17:00"
    wednesday: str = "09:00-17:00"
    thursday: str = "09:00-17:00"
    friday: str = "09:00-17:00"
    saturday: str = "closed"
    sunday: str = "closed"


@dataclass(frozen=True, slots=True)
class LlmConfig:
    base_url: str = setting("https://api.openai.com/v1", doc="Any OpenAI-compatible server.")
    model: str = "gpt-4o-mini"
    system_prompt: str = setting(
        "You are the friendly front-desk assistant. Answer in one or two short spoken "
        "sentences. Never use lists, markdown or emoji."
    )
    temperature: float = setting(0.6, min=0.0, max=2.0)
    max_tokens: int = setting(300, min=16, max=4096)
    history_chars: int = setting(6000, min=500, max=200000, doc="History budget in characters.")
    idle_reset_s: float = setting(90.0, min=5.0, max=3600.0, doc="New visitor after this gap.")
    first_token_timeout_s: float = setting(4.0, min=0.2, max=60.0)
    chunk_gap_timeout_s: float = setting(3.0, min=0.2, max=60.0)
    max_retries: int = setting(1, min=0, max=5)
    max_tool_rounds: int = setting(3, min=1, max=10)
    tools: tuple[ToolConfig, ...] = ()
    opening_hours: OpeningHoursConfig = section(OpeningHoursConfig)


@dataclass(frozen=True, slots=True)
class TtsConfig:
    provider: Literal["elevenlabs"] = "elevenlabs"
    base_url: str = setting("https://api.elevenlabs.io", doc="http:// for a local emulator.")
    voice_id: str = "21m00Tcm4TlvDq8ikWAM"
    model_id: str = "eleven_flash_v2_5"
    stability: float = setting(0.5, min=0.0, max=1.0)
    similarity_boost: float = setting(0.75, min=0.0, max=1.0)
    speed: float = setting(1.0, min=0.7, max=1.2)
    optimize_streaming_latency: int = setting(3, min=0, max=4)
    first_byte_timeout_s: float = setting(3.0, min=0.2, max=60.0)
    chunk_gap_timeout_s: float = setting(3.0, min=0.2, max=60.0)
    min_clause_chars: int = setting(12, min=1, max=200, doc="Shorter clauses wait for more text.")


@dataclass(frozen=True, slots=True)
class FallbackConfig:
    """The local voice used when a cloud link fails, so the visitor is never left in silence."""

    espeak_voice: str = "en-us"
    espeak_speed_wpm: int = setting(165, min=80, max=400)
    sorry_line: str = "Sorry, I'm having trouble right now. Please try again in a moment."
    not_heard_line: str = "Sorry, I didn't catch that. Could you say it again?"
    offline_line: str = "I'm offline at the moment. Please ask at the desk."
    deadline_s: float = setting(2.0, min=0.5, max=10.0, doc="Fallback heard within this.")
