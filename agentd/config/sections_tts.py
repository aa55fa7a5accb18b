"""Config sections for text to speech (ElevenLabs) and the local fallback voice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentd.config._fields import setting


@dataclass(frozen=True, slots=True)
class TtsConfig:
    """ElevenLabs HTTP streaming; audio comes back as pcm_<audio.playback.rate_hz>."""

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
    warm_connection: bool = setting(
        True,
        doc="Open the connection while the visitor speaks (one small GET), so the "
        "turn's request skips the TCP/TLS handshake.",
    )
    min_clause_chars: int = setting(12, min=1, max=200, doc="Shorter clauses wait for more text.")
    max_clause_chars: int = setting(
        200, min=20, max=1000, doc="Longer runs without a sentence end are cut at a comma/space."
    )


@dataclass(frozen=True, slots=True)
class FallbackConfig:
    """The local voice used when a cloud link fails, so the visitor is never left in silence."""

    espeak_voice: str = "en-us"
    espeak_speed_wpm: int = setting(165, min=80, max=400)
    sorry_line: str = "Sorry, I'm having trouble right now. Please try again in a moment."
    not_heard_line: str = "Sorry, I didn't catch that. Could you say it again?"
    offline_line: str = "I'm offline at the moment. Please ask at the desk."
    deadline_s: float = setting(2.0, min=0.5, max=10.0, doc="Fallback heard within this.")
