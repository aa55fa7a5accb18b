"""Real speech and noise for the simulator: espeak-ng + sox, cached.

The renderer itself lives with the fallback voice (`agentd.tts.espeak`), so simulated
visitors and the kiosk's local voice speak through the same code. Renders are cached
in-process because espeak-ng costs ~50-100 ms per sentence and scenarios repeat lines.
"""

from __future__ import annotations

import functools

from agentd.tts import espeak
from agentd.tts.espeak import tools_available

__all__ = ["render_noise", "render_speech", "tools_available"]


@functools.lru_cache(maxsize=256)
def render_speech(text: str, rate_hz: int, voice: str = "en-us", wpm: int = 165) -> bytes:
    """Cached `agentd.tts.espeak.render_speech`: scenarios repeat their lines."""
    return espeak.render_speech(text, rate_hz, voice, wpm)


@functools.lru_cache(maxsize=64)
def render_noise(duration_ms: int, rate_hz: int, level_db: float, seed: int = 1) -> bytes:
    """Pink noise at roughly `level_db` dBFS RMS (sox synth), raw S16_LE mono."""
    if duration_ms <= 0:
        return b""
    seconds = f"{duration_ms / 1000:.3f}"
    # sox's pinknoise has a peak near 0 dBFS and an RMS about 13.7 dB lower (measured).
    gain = level_db + 13.7
    return espeak.sox_to_raw(
        ["-n"],
        b"",
        rate_hz,
        ["synth", seconds, "pinknoise", "gain", f"{gain:.1f}"],
        extra_global=["-R"] if seed else [],
    )
