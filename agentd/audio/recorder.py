"""Debug-only recording of what each turn sent to STT (privacy.record_audio_dir).

Off by default: audio is personal data and a kiosk must not keep it. When an integrator
turns it on to debug recognition, each turn's gated audio (exactly what the cloud heard)
is written as `<turn_id>.wav` off the event loop, and nothing else is ever stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import wave

log = logging.getLogger("agentd.audio.recorder")


class TurnRecorder:
    """Collects one turn's STT audio; `enabled` is False unless a directory is configured."""

    def __init__(self, directory: str, rate_hz: int) -> None:
        self.directory = directory
        self.rate_hz = rate_hz
        self._buffer = bytearray()

    @property
    def enabled(self) -> bool:
        return bool(self.directory)

    def add(self, pcm: bytes) -> None:
        if self.directory:
            self._buffer += pcm

    def discard(self) -> None:
        self._buffer.clear()

    def save(self, turn_id: str) -> None:
        """Write the collected audio as `<turn_id>.wav` in a worker thread."""
        if not self.directory or not self._buffer:
            self._buffer.clear()
            return
        pcm = bytes(self._buffer)
        self._buffer.clear()
        path = os.path.join(self.directory, f"{turn_id}.wav")
        asyncio.get_running_loop().run_in_executor(None, _write_wav, path, pcm, self.rate_hz)


def _write_wav(path: str, pcm: bytes, rate_hz: int) -> None:
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with wave.open(path, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate_hz)
            wav.writeframes(pcm)
    except OSError as exc:
        log.warning("cannot write debug recording %s: %s", path, exc)
