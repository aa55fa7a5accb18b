"""Config section for speech to text (AssemblyAI Streaming v3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentd.config._fields import setting


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
    auth_retry_s: float = setting(
        300.0, min=5.0, max=86400.0, doc="After an auth refusal, retry no sooner than this."
    )
