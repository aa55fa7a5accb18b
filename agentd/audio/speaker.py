"""Speaker: the reply side's view of the playback device (ALSA or simulated).

Adds what the conversation needs on top of the device: a byte count of what was
actually played (so history keeps only heard text), and an awaitable "played out"
that polls once per period instead of blocking the loop on the playback thread.
"""

from __future__ import annotations

import asyncio

from agentd.audio.format import AudioFormat
from agentd.audio.ports import PlaybackDevice


class Speaker:
    def __init__(
        self, device: PlaybackDevice, fmt: AudioFormat, period_ms: int, volume: float = 1.0
    ) -> None:
        self.device = device
        self.format = fmt
        self._period_s = period_ms / 1000
        self.paused = False
        self.volume = volume

    def write(self, pcm: bytes) -> None:
        self.device.write(pcm)

    def cancel(self) -> None:
        """Drop queued audio and flush the device buffer (drop, not drain)."""
        self.paused = False
        self.device.cancel()

    def pause(self) -> None:
        self.paused = True
        self.device.pause()

    def resume(self) -> None:
        self.paused = False
        self.device.resume()

    def set_volume(self, gain: float) -> None:
        self.volume = gain
        self.device.set_volume(gain)

    def played_bytes(self) -> int:
        """Bytes handed to the device since it was opened (monotonic)."""
        return int(self.device.stats.frames) * self.format.bytes_per_frame

    @property
    def is_playing(self) -> bool:
        return bool(self.device.is_playing)

    async def wait_idle(self) -> None:
        """Return when nothing is queued or sounding (paused audio counts as queued)."""
        # The device state lives on the playback thread; one poll per period costs nothing
        # and needs no cross-thread event plumbing.
        while self.paused or self.device.is_playing:  # noqa: ASYNC110
            await asyncio.sleep(self._period_s)
