"""Drive the devices for the self-test: play the sweep, record the room around it.

`DeviceProbe` plays on any `PlaybackDevice` and records from any source of mic chunks
(`Attach`): the ALSA devices the CLI opens, the running kiosk's (mic taken from the
conversation for the test's two seconds), or the simulator's. It returns a
`probe.Recording`; the analysis is agentd.diagnostics.probe's.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import replace

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.ports import PlaybackDevice
from agentd.diagnostics import probe as p

SETTLE_MS = 60.0  # after the last echo may arrive: one period or two of capture buffering
MAX_AUDIO_FACTOR = 4  # more audio than 4 x the test's length: the device is not paced

Prompt = Callable[[], None]  # "say a sentence at the kiosk now"
OnChunk = Callable[[AudioChunk], None]
Attach = Callable[[OnChunk], Callable[[], None]]  # start delivering mic chunks; -> detach


class DeviceProbe:
    """Plays the sweep on `playback` and records the mic chunks `attach` delivers."""

    def __init__(
        self, playback: PlaybackDevice, attach: Attach, capture: AudioFormat, gain: float = 1.0
    ) -> None:
        self.playback = playback
        self.attach = attach
        self.capture = capture
        self.gain = gain  # the playback volume the device applies (its set_volume)

    async def record(self, voice_ms: float = 0.0, prompt: Prompt | None = None) -> p.Recording:
        """Lead (noise only), the sweep, then until its last echo can have arrived; then,
        with `voice_ms`, `prompt()` and that much more audio (the operator speaking)."""
        loop = asyncio.get_running_loop()
        chunks: list[AudioChunk] = []
        lock = threading.Lock()
        progress = asyncio.Event()

        limit_ms = (p.record_ms() + voice_ms) * MAX_AUDIO_FACTOR
        received = [0.0]  # ms of audio taken, guarded by `lock`

        def on_chunk(chunk: AudioChunk) -> None:  # capture thread or loop
            with lock:
                if received[0] > limit_ms:
                    return  # an unpaced device: stop hoarding, `until` reports it
                received[0] += chunk.duration_ms
                chunks.append(chunk)
            loop.call_soon_threadsafe(progress.set)

        def covered_ms() -> float:
            with lock:
                if not chunks:
                    return 0.0
                return chunks[-1].at_ms + chunks[-1].duration_ms - chunks[0].at_ms

        async def until(done: Callable[[], bool]) -> None:
            while not done():
                with lock:
                    flooded = received[0] > limit_ms
                if flooded:
                    raise RuntimeError(
                        "the capture device delivers audio faster than real time (not paced)"
                    )
                progress.clear()
                await progress.wait()

        detach = self.attach(on_chunk)
        try:
            await until(lambda: covered_ms() >= p.LEAD_MS)
            tap = self.playback.reference
            sweep = p.chirp(tap.format.rate_hz, 0.4 * self.capture.rate_hz)
            self.playback.write(sweep)

            def echo_over() -> bool:
                if self.playback.is_playing:
                    return False
                with lock:
                    end = chunks[-1].at_ms + chunks[-1].duration_ms
                return end >= tap.last_played_ms() + p.MAX_DELAY_MS + SETTLE_MS

            await until(echo_over)
            with lock:
                mark = len(chunks)
            if voice_ms > 0:
                if prompt is not None:
                    prompt()

                def voice_over() -> bool:
                    with lock:
                        return sum(c.duration_ms for c in chunks[mark:]) >= voice_ms

                await until(voice_over)
        finally:
            detach()
        with lock:
            taken = list(chunks)
        voice = b"".join(c.pcm for c in taken[mark:])
        return p.with_array(replace(self._recording(taken[:mark], sweep), voice=voice), taken, mark)

    def _recording(self, chunks: list[AudioChunk], sweep: bytes) -> p.Recording:
        mic = b"".join(c.pcm for c in chunks)
        # The window's start on the monotonic clock: each chunk's stamp minus its offset,
        # the median over all of them (an ALSA stamp jitters by a scheduling delay).
        offsets, elapsed = [], 0.0
        for chunk in chunks:
            offsets.append(chunk.at_ms - elapsed)
            elapsed += chunk.duration_ms
        start = statistics.median(offsets)
        tap = self.playback.reference
        rate_out, rate_in = tap.format.rate_hz, self.capture.rate_hz
        count = math.ceil(len(mic) / 2 * rate_out / rate_in)
        reference = p.resample(tap.samples(start, count), rate_out, rate_in)
        ref = reference
        first = next((i for i in range(0, len(ref) - 1, 2) if ref[i] or ref[i + 1]), len(ref))
        played = p.energy(p.resample(sweep, rate_out, rate_in)) * self.gain**2
        return p.Recording(mic, reference, rate_in, first / 2 / rate_in * 1000.0, played)
