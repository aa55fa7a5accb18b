"""Reference tap: what the speaker played, as energies on the monotonic clock.

The playback path pushes every chunk with the time its first sample leaves the
speaker; the barge-in detector asks for the played energy around a moment to predict
how much of it should come back through the mic as echo. Thread-safe (playback thread
writes, capture thread reads); memory is bounded to `history_ms`.
"""

from __future__ import annotations

import threading
from collections import deque

from agentd.audio import dsp
from agentd.audio.format import AudioFormat

BLOCK_MS = 10  # energy resolution: fine enough for 20-80 ms echo delays
HISTORY_MS = 4000  # > delay search window + correlation window of the detector


class ReferenceTap:
    """Short ring of (start_ms, band energies) blocks of played audio (dsp.band_energies).

    Per band, because a visitor's sound often stands out in one band only: fricative
    onsets ("s", "h", "th") in the high band while the reply's vowels dominate the full
    band, a vowel in the low band while the reply hisses.
    """

    def __init__(self, fmt: AudioFormat, history_ms: int = HISTORY_MS) -> None:
        self.format = fmt
        self._block_bytes = fmt.bytes_for_ms(BLOCK_MS)
        self._blocks: deque[tuple[float, tuple[float, ...]]] = deque(maxlen=history_ms // BLOCK_MS)
        self._lock = threading.Lock()
        self._last_end_ms = -1e18
        # Raw played samples for the adaptive echo filter: (start_ms, pcm) chunks.
        self._chunks: deque[tuple[float, bytes]] = deque()
        self._chunk_ms = 0.0
        self._history_ms = float(history_ms)

    def push(self, pcm: bytes, at_ms: float) -> None:
        """Record `pcm` (mono, after gain) whose first sample is heard at `at_ms`."""
        size = self._block_bytes
        items = []
        for offset in range(0, len(pcm) - size + 1, size):
            t = at_ms + offset / self.format.bytes_per_frame / self.format.rate_hz * 1000.0
            block = pcm[offset : offset + size]
            items.append((t, dsp.band_energies(block)))
        with self._lock:
            self._blocks.extend(items)
            if items:
                self._last_end_ms = items[-1][0] + BLOCK_MS
            if pcm:
                self._chunks.append((at_ms, pcm))
                self._chunk_ms += self.format.duration_ms(len(pcm))
                while self._chunk_ms > self._history_ms and len(self._chunks) > 1:
                    self._chunk_ms -= self.format.duration_ms(len(self._chunks.popleft()[1]))

    def push_silence_after(self, at_ms: float) -> None:
        """Playback was flushed at `at_ms`: forget audio scheduled after it."""
        with self._lock:
            while self._blocks and self._blocks[-1][0] >= at_ms:
                self._blocks.pop()
            while self._chunks and self._chunks[-1][0] >= at_ms:
                start, pcm = self._chunks.pop()
                self._chunk_ms -= self.format.duration_ms(len(pcm))
            if self._chunks:  # a chunk reaching past the flush is cut there
                start, pcm = self._chunks[-1]
                keep = self.format.bytes_for_ms(at_ms - start)
                if keep < len(pcm):
                    self._chunks[-1] = (start, pcm[:keep])
                    self._chunk_ms -= self.format.duration_ms(len(pcm) - keep)
            self._last_end_ms = min(self._last_end_ms, at_ms)

    def last_played_ms(self) -> float:
        """End time of the last audio pushed (far past if none)."""
        with self._lock:
            return self._last_end_ms

    def samples(self, start_ms: float, count: int) -> bytes:
        """`count` played samples (S16_LE mono) from `start_ms`; silence where none played.

        Sample-exact for chunks pushed back to back (what a playback thread does); the
        adaptive echo filter in echo_filter.py needs the waveform, not just energies.
        """
        width = self.format.bytes_per_frame
        rate = self.format.rate_hz
        out = bytearray(count * width)
        end_ms = start_ms + count * 1000.0 / rate
        with self._lock:
            chunks = list(self._chunks)
        for t, pcm in reversed(chunks):
            if t >= end_ms:
                continue
            if t + len(pcm) / width * 1000.0 / rate <= start_ms:
                break
            offset = round((t - start_ms) * rate / 1000.0)  # in samples, may be < 0
            src = max(0, -offset)
            dst = max(0, offset)
            n = min(len(pcm) // width - src, count - dst)
            if n > 0:
                out[dst * width : (dst + n) * width] = pcm[src * width : (src + n) * width]
        return bytes(out)

    def max_energy(self, start_ms: float, end_ms: float) -> float:
        """Largest block energy overlapping [start_ms, end_ms); 0.0 when nothing played."""
        return self.max_energies(start_ms, end_ms)[0]

    def max_energies(
        self, start_ms: float, end_ms: float, tail_ms: float = 0.0, decay_db_per_ms: float = 0.0
    ) -> tuple[float, ...]:
        """Per band, the largest block energy overlapping [start_ms, end_ms).

        With `tail_ms`, blocks up to `tail_ms` before `start_ms` count too, attenuated by
        `decay_db_per_ms` per ms of age: what the room still rings with (reverberation).
        """
        with self._lock:
            blocks = list(self._blocks)
        best = [0.0] * dsp.BANDS
        oldest = start_ms - tail_ms
        for t, energies in reversed(blocks):
            if t >= end_ms:
                continue
            if t + BLOCK_MS <= oldest:
                break
            age = start_ms - (t + BLOCK_MS)
            weight = 10.0 ** (-decay_db_per_ms * age / 10.0) if age > 0 else 1.0
            for i, e in enumerate(energies):
                best[i] = max(best[i], e * weight)
        return tuple(best)

    def envelope(self, start_ms: float, count: int, step_ms: float) -> list[float]:
        """Energies sampled every `step_ms` from `start_ms` (max over each step)."""
        with self._lock:
            blocks = list(self._blocks)
        out = [0.0] * count
        end = start_ms + count * step_ms
        for t, energies in blocks:
            e = energies[0]
            if t + BLOCK_MS <= start_ms or t >= end:
                continue
            first = max(0, int((t - start_ms) // step_ms))
            last = min(count - 1, int((t + BLOCK_MS - 1e-6 - start_ms) // step_ms))
            for i in range(first, last + 1):
                out[i] = max(out[i], e)
        return out
