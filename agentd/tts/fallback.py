"""The local fallback voice (espeak-ng): what the kiosk says when a cloud link fails.

The visitor must never be left in silence, and the failure path must not depend on
anything that can itself be slow or broken at that moment: the configured lines are
rendered once at start-up (`prerender()`, in a thread), so `line()` is a dict lookup.
Arbitrary text (`render()`) spawns espeak-ng + sox off the event loop.

If espeak-ng or sox is missing (or fails), a short two-tone "error" earcon stands in,
with an error log naming the missing package: a sound is better than silence.

The renderer is `agentd.tts.espeak`; the simulator speaks its visitors through it too.
"""

from __future__ import annotations

import array
import asyncio
import logging
import math
import sys
from typing import TYPE_CHECKING

from agentd.errors import AudioError
from agentd.tts import espeak
from agentd.tts.speakable import speakable

if TYPE_CHECKING:
    from agentd.config.sections_tts import FallbackConfig

log = logging.getLogger(__name__)

LINE_NAMES = ("sorry_line", "not_heard_line", "offline_line")
# Earcon: a falling minor third (E5 -> C#5), the usual "something went wrong" gesture.
_TONES_HZ_MS = ((659.3, 160), (0.0, 70), (554.4, 260))
_TONE_LEVEL = 0.25  # about -12 dBFS peak: clearly audible, not startling
_FADE_MS = 8  # ramps avoid clicks at tone edges


class FallbackVoice:
    """Pre-rendered fallback lines plus on-demand local speech, S16_LE mono at `rate_hz`."""

    def __init__(self, config: FallbackConfig, rate_hz: int) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self._config = config
        self.rate_hz = rate_hz
        self._lines: dict[str, bytes] = {}
        self._warned_missing = False

    @property
    def has_speech(self) -> bool:
        """False when espeak-ng/sox are missing and only the earcon can play."""
        return espeak.tools_available()

    def prerender(self) -> None:
        """Render every configured line now (blocking: call once at start, in a thread)."""
        for name in LINE_NAMES:
            self._lines[name] = self._render_sync(getattr(self._config, name))

    def line(self, name: str) -> bytes:
        """The pre-rendered PCM of a configured line (`sorry_line`, ...)."""
        if name not in LINE_NAMES:
            raise ValueError(f"unknown fallback line {name!r}; one of {', '.join(LINE_NAMES)}")
        pcm = self._lines.get(name)
        if pcm is None:
            log.warning("fallback: %s requested before prerender(); rendering inline", name)
            pcm = self._lines[name] = self._render_sync(getattr(self._config, name))
        return pcm

    async def render(self, text: str) -> bytes:
        """Speak arbitrary text locally; the subprocesses run in a worker thread."""
        return await asyncio.to_thread(self._render_sync, text)

    def earcon(self) -> bytes:
        """The tone pattern used when no speech can be rendered."""
        return tone_pattern(self.rate_hz)

    def _render_sync(self, text: str) -> bytes:
        clean = speakable(text)
        if not clean:
            return b""
        if not espeak.tools_available():
            self._warn_missing("espeak-ng or sox not found on PATH (apt install espeak-ng sox)")
            return self.earcon()
        try:
            pcm = espeak.render_speech(
                clean, self.rate_hz, self._config.espeak_voice, self._config.espeak_speed_wpm
            )
        except AudioError as exc:
            self._warn_missing(f"rendering failed: {exc}")
            return self.earcon()
        return pcm or self.earcon()

    def _warn_missing(self, why: str) -> None:
        if not self._warned_missing:
            log.error("fallback voice: %s; playing a tone pattern instead of speech", why)
            self._warned_missing = True


def tone_pattern(rate_hz: int) -> bytes:
    """A short falling two-tone earcon, S16_LE mono at `rate_hz`."""
    samples = array.array("h")
    fade = max(1, rate_hz * _FADE_MS // 1000)
    for freq, ms in _TONES_HZ_MS:
        count = rate_hz * ms // 1000
        for n in range(count):
            if freq == 0.0:
                samples.append(0)
                continue
            ramp = min(1.0, n / fade, (count - 1 - n) / fade)
            value = _TONE_LEVEL * ramp * math.sin(2 * math.pi * freq * n / rate_hz)
            samples.append(int(value * 32767))
    if sys.byteorder != "little":
        samples.byteswap()
    return samples.tobytes()
