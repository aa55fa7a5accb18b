"""ALSA playback on its own thread: persistent stream, small periods, instant flush.

`write()` only appends to a bounded queue (any thread, never blocks). `cancel()` drops
the queue AND the device buffer (snd_pcm_drop, not drain), so silence follows within
one period. `pause()`/`resume()` serve a suspected barge-in. Every chunk is pushed to
the ReferenceTap with the time it will be heard, for the echo-aware barge-in detector.
pyalsaaudio 0.11 re-prepares a stream in XRUN/SETUP state on the next write, so
recovery after an underrun or a drop needs no extra call; we count them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from agentd.audio import dsp
from agentd.audio.device_thread import REOPEN_FIRST_S, DeviceStats, OnLink, log, report
from agentd.audio.format import AudioFormat
from agentd.audio.reference import ReferenceTap
from agentd.backoff import Backoff
from agentd.config.sections_audio import PlaybackConfig
from agentd.events import LinkState, now_ms

OnFirstAudio = Callable[[float], None]
PcmOpener = Callable[[PlaybackConfig], Any]
MAX_QUEUE_S = 120.0  # a long reply fits; beyond that a producer bug must not eat RAM
REOPEN_MAX_BACKOFF_S = 10.0
PCM_STATE_XRUN = 4  # alsaaudio.PCM_STATE_XRUN (SND_PCM_STATE_XRUN)


def open_alsa_playback(config: PlaybackConfig) -> Any:
    """Open the configured playback PCM with pyalsaaudio (raises ALSAAudioError)."""
    import alsaaudio

    return alsaaudio.PCM(
        alsaaudio.PCM_PLAYBACK,
        alsaaudio.PCM_NORMAL,
        device=config.device,
        rate=config.rate_hz,
        channels=1,
        format=alsaaudio.PCM_FORMAT_S16_LE,
        periodsize=config.rate_hz * config.period_ms // 1000,
        periods=config.buffer_periods,
    )


class AlsaPlayback:
    """Persistent playback stream fed from a bounded queue by a playback thread."""

    name = "playback"

    def __init__(
        self,
        config: PlaybackConfig,
        on_link: OnLink | None = None,
        on_first_audio: OnFirstAudio | None = None,
        opener: PcmOpener = open_alsa_playback,
    ) -> None:
        self.config = config
        self.format = AudioFormat(config.rate_hz)
        self.reference = ReferenceTap(self.format)
        self.stats = DeviceStats()
        self.state = LinkState.DISCONNECTED
        self.on_first_audio = on_first_audio
        self._on_link = on_link
        self._opener = opener
        self._period = self.format.bytes_for_ms(config.period_ms)
        self._max_queue = self.format.bytes_for_ms(MAX_QUEUE_S * 1000)
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._gain = config.volume
        self._flush = False
        self._paused = False
        self._new_reply = True
        self._heard_until_ms = 0.0
        self._stop = threading.Event()
        self._pcm: Any = None
        self._backoff = Backoff(REOPEN_MAX_BACKOFF_S, REOPEN_FIRST_S)
        self._was_open = False
        self._thread = threading.Thread(target=self._run, name="agentd-playback", daemon=True)
        self._thread.start()

    @property
    def progress(self) -> int:
        return self.stats.frames

    @property
    def is_playing(self) -> bool:
        """Audio queued, or still sounding from the device buffer."""
        with self._cond:
            return self._queued > 0 or now_ms() < self._heard_until_ms

    def set_volume(self, gain: float) -> None:
        self._gain = min(2.0, max(0.0, gain))

    def write(self, pcm: bytes) -> None:
        """Queue mono S16_LE audio at the configured rate; never blocks."""
        if not pcm:
            return
        with self._cond:
            if self._queued + len(pcm) > self._max_queue:
                self.stats.errors += 1
                log.warning("playback queue full, dropping %d bytes", len(pcm))
                return
            if self._queued == 0 and now_ms() >= self._heard_until_ms:
                self._new_reply = True
            self._queue.append(pcm)
            self._queued += len(pcm)
            self._cond.notify()

    def cancel(self) -> None:
        """Drop queued audio and flush the device buffer (silence within one period)."""
        with self._cond:
            self._queue.clear()
            self._queued = 0
            self._flush = True
            self._paused = False
            self._new_reply = True
            self._cond.notify()

    def pause(self) -> None:
        """Silence now but keep the queue (suspected barge-in)."""
        with self._cond:
            self._paused = True
            self._flush = True
            self._cond.notify()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify()

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the thread and release the device; idempotent."""
        self._stop.set()
        with self._cond:
            self._cond.notify()
        self._thread.join(timeout_s)
        self._close_pcm(drop=True)

    # --- playback thread ----------------------------------------------------------------

    def _next_chunk(self) -> tuple[bytes, bool] | None:
        """Wait for one period of audio; returns (chunk, waited) or None to re-check."""
        with self._cond:
            waited = False
            while not self._stop.is_set() and (self._paused or not self._queue) and not self._flush:
                waited = True
                self._cond.wait(0.5)
            if self._flush:
                self._flush = False
                self._do_flush()
                return None
            if self._stop.is_set() or not self._queue:
                return None
            chunk = self._take(self._period)
            new_reply, self._new_reply = self._new_reply, False
        if new_reply and self.on_first_audio is not None:
            try:
                self.on_first_audio(now_ms())
            except Exception:  # thread boundary
                log.exception("on_first_audio failed")
        return chunk, waited

    def _take(self, size: int) -> bytes:
        out = bytearray()
        while self._queue and len(out) < size:
            head = self._queue.popleft()
            need = size - len(out)
            if len(head) > need:
                self._queue.appendleft(head[need:])
                head = head[:need]
            out += head
        self._queued -= len(out)
        if len(out) % 2:
            out = out[:-1]
        return bytes(out)

    def _do_flush(self) -> None:
        at = now_ms()
        self._heard_until_ms = min(self._heard_until_ms, at)
        self.reference.push_silence_after(at)
        if self._pcm is not None:
            try:
                self._pcm.drop()  # discard the device buffer; next write re-prepares
            except Exception as exc:
                log.warning("playback drop failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._pcm is None and not self._open():
                continue
            item = self._next_chunk()
            if item is None:
                continue
            chunk, waited = item
            self._play(dsp.apply_gain(chunk, self._gain), waited)

    def _play(self, chunk: bytes, waited: bool) -> None:
        try:
            if self._pcm.state() == PCM_STATE_XRUN and not waited:
                self.stats.underruns += 1  # we had audio but were too late: a real gap
            buffered = self._buffered_frames()
            heard_at = now_ms() + buffered / self.format.rate_hz * 1000.0
            written = self._pcm.write(chunk)
        except Exception as exc:  # ALSAAudioError: device gone
            self._lost(f"write failed on {self.config.device!r}: {exc}")
            return
        if written is not None and written < 0:
            self.stats.underruns += 1
            return
        self.reference.push(chunk, heard_at)
        self.stats.frames += len(chunk) // self.format.bytes_per_frame
        end = max(heard_at, now_ms()) + self.format.duration_ms(len(chunk))
        with self._cond:
            self._heard_until_ms = end

    def _buffered_frames(self) -> int:
        try:
            avail = int(self._pcm.avail())
        except Exception:
            return 0
        size = self.config.buffer_periods * self._period // self.format.bytes_per_frame
        return max(0, size - avail)

    def _open(self) -> bool:
        self.state = LinkState.CONNECTING
        try:
            self._pcm = self._opener(self.config)
        except Exception as exc:  # busy, missing, unplugged
            self._pcm = None
            delay = self._backoff.next_delay()
            self._set_state(LinkState.BACKOFF, f"cannot open {self.config.device!r}: {exc}")
            self._stop.wait(delay)
            return False
        if self._was_open:
            self.stats.reopens += 1
        self._was_open = True
        self._backoff.reset()
        self._set_state(LinkState.CONNECTED, self.config.device)
        return True

    def _set_state(self, state: LinkState, detail: str = "") -> None:
        if state != self.state:
            self.state = state
            report(self._on_link, self.name, state, detail)

    def _lost(self, detail: str) -> None:
        self.stats.errors += 1
        with self._cond:  # stale audio is worse than a skipped sentence
            self._queue.clear()
            self._queued = 0
        self._close_pcm(drop=True)
        self._set_state(LinkState.DISCONNECTED, detail)

    def _close_pcm(self, drop: bool) -> None:
        pcm, self._pcm = self._pcm, None
        if pcm is None:
            return
        try:
            if drop:
                pcm.drop()
            pcm.close()
        except Exception as exc:  # already gone
            log.debug("playback close: %s", exc)
