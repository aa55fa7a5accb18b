"""Config section for speech to text (AssemblyAI Streaming v3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentd.config._fields import setting
from agentd.errors import ConfigError

# AssemblyAI docs (keyterms prompting): more than 100 terms fails the whole session;
# a term longer than 50 characters is silently ignored. Both are config errors here.
MAX_KEYTERMS = 100
MAX_KEYTERM_CHARS = 50


@dataclass(frozen=True, slots=True)
class SttConfig:
    provider: Literal["assemblyai"] = "assemblyai"
    api_host: str = setting("wss://streaming.assemblyai.com", doc="ws:// for a local emulator.")
    speech_model: str = "u3-rt-pro"
    format_turns: bool = setting(True, doc="Universal-Streaming only; U3 Pro always formats.")
    min_turn_silence_ms: int = setting(400, min=0, max=10000)
    max_turn_silence_ms: int = setting(1280, min=0, max=20000)
    end_of_turn_confidence: float = setting(
        0.7, min=0.0, max=1.0, doc="Universal-Streaming only; U3 Pro has no threshold."
    )
    interruption_delay_ms: int = setting(
        250,
        min=0,
        max=1000,
        doc="U3 Pro only: the early partial (barge-in words) comes this + ~250 ms into speech.",
    )
    keyterms: tuple[str, ...] = setting(
        (), doc="Business and staff names to bias towards (at most 100, 50 characters each)."
    )
    chunk_ms: int = setting(50, min=50, max=1000, doc="PCM per websocket frame.")
    idle_close_s: float = setting(20.0, min=1.0, max=600.0, doc="Terminate after idle.")
    final_timeout_s: float = setting(3.0, min=0.5, max=30.0)
    connect_timeout_s: float = setting(5.0, min=0.5, max=60.0)
    max_backoff_s: float = setting(30.0, min=1.0, max=600.0)
    buffer_s: float = setting(30.0, min=1.0, max=300.0, doc="Audio kept while reconnecting.")
    auth_retry_s: float = setting(
        300.0, min=5.0, max=86400.0, doc="After an auth refusal, retry no sooner than this."
    )

    def validate(self, path: str) -> None:
        """Keyterms the service would refuse (or silently drop) fail at load, not on site."""
        if len(self.keyterms) > MAX_KEYTERMS:
            raise ConfigError(
                f"{path}.keyterms",
                f"too many terms ({len(self.keyterms)})",
                None,
                f"at most {MAX_KEYTERMS}",
            )
        for i, term in enumerate(self.keyterms):
            if len(term) > MAX_KEYTERM_CHARS:
                raise ConfigError(
                    f"{path}.keyterms[{i}]",
                    "term too long (the service ignores it)",
                    term,
                    f"at most {MAX_KEYTERM_CHARS} characters",
                )
