"""ALSA capture on its own thread: one persistent stream, xrun and unplug recovery.

Frames (mono S16_LE, one period each) go to `on_frame(AudioChunk)` on the
capture thread, with the raw mics of an array beside them (`AudioChunk.array`,
`audio.capture.array_channels`) for the near-field gate's channel agreement; the
integrator bridges to the loop with `call_soon_threadsafe`, so the thread never blocks
on the loop. pyalsaaudio 0.11 semantics: `read()` returns
`(-EPIPE, b"")` after an overrun and re-prepares the stream on the next call, and
raises `ALSAAudioError` when the device fails (e.g. -ENODEV after a USB unplug).
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import Any

from agentd.audio import dsp
from agentd.audio.device_thread import REOPEN_FIRST_S, DeviceStats, OnLink, log, report
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.backoff import Backoff
from agentd.config.sections_audio import CaptureConfig
from agentd.events import LinkState, now_ms

OnFrame = Callable[[AudioChunk], None]
PcmOpener = Callable[[CaptureConfig], Any]
PERIODS = 4  # ALSA buffer = 4 periods: tolerates 60-80 ms of scheduling hiccups


def open_alsa_capture(config: CaptureConfig) -> Any:
    """Open the configured capture PCM with pyalsaaudio (raises ALSAAudioError)."""
    import alsaaudio

    return alsaaudio.PCM(
        alsaaudio.PCM_CAPTURE,
        alsaaudio.PCM_NORMAL,
        device=config.device,
        rate=config.rate_hz,
        channels=config.channels,
        format=alsaaudio.PCM_FORMAT_S16_LE,
        periodsize=config.rate_hz * config.period_ms // 1000,
        periods=PERIODS,
    )


class AlsaCapture:
    """Persistent capture stream; reduces channels to mono; never gives up on the device."""

    name = "capture"

    def __init__(
        self,
        config: CaptureConfig,
        on_link: OnLink | None = None,
        opener: PcmOpener = open_alsa_capture,
    ) -> None:
        self.config = config
        self.format = AudioFormat(config.rate_hz)
        self._mics = config.mic_channels()
        self.array_format = AudioFormat(config.rate_hz, len(self._mics)) if self._mics else None
        self.stats = DeviceStats()
        self.state = LinkState.DISCONNECTED
        self._on_link = on_link
        self._opener = opener
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pcm: Any = None
        self._backoff = Backoff(config.reopen_max_backoff_s, REOPEN_FIRST_S)
        self._was_open = False
        _warn_if_the_mix_cancels_the_front(config)

    @property
    def progress(self) -> int:
        """Frames captured so far: the systemd watchdog is fed only while this grows."""
        return self.stats.frames

    def start(self, on_frame: OnFrame) -> None:
        if self._thread is not None:
            raise RuntimeError("capture already started")
        self._thread = threading.Thread(
            target=self._run, args=(on_frame,), name="agentd-capture", daemon=True
        )
        self._thread.start()

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the thread and close the device; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._close_pcm()

    def _set_state(self, state: LinkState, detail: str = "") -> None:
        if state != self.state:
            self.state = state
            report(self._on_link, self.name, state, detail)

    def _run(self, on_frame: OnFrame) -> None:
        period_bytes = self.format.bytes_for_ms(self.config.period_ms) * self.config.channels
        while not self._stop.is_set():
            if self._pcm is None and not self._open():
                continue
            try:
                length, data = self._pcm.read()
            except Exception as exc:  # ALSAAudioError: device gone or broken
                self._lost(f"read failed on {self.config.device!r}: {exc}")
                continue
            if length < 0:
                self._xrun(length)
                continue
            if not data:
                continue
            captured_at = now_ms() - self.format.duration_ms(len(data) // self.config.channels)
            if len(data) != period_bytes:
                log.debug("short capture read: %d bytes", len(data))
            mono = dsp.to_mono(data, self.config.channels, self.config.channel)
            self.stats.frames += len(mono) // self.format.bytes_per_frame
            array = None
            if self.array_format is not None:
                mics = dsp.pick_channels(data, self.config.channels, self._mics)
                array = AudioChunk(mics, self.array_format, captured_at)
            try:
                on_frame(AudioChunk(mono, self.format, captured_at, array))
            except Exception:  # thread boundary: a consumer bug must not stop capture
                self.stats.errors += 1
                log.exception("capture consumer failed")

    def _open(self) -> bool:
        self._set_state(LinkState.CONNECTING, self.config.device)
        try:
            self._pcm = self._opener(self.config)
        except Exception as exc:  # ALSAAudioError: busy, missing, unplugged
            self._pcm = None
            delay = self._backoff.next_delay()
            self._set_state(
                LinkState.BACKOFF, f"cannot open {self.config.device!r}: {exc}; retry {delay:.1f}s"
            )
            self._stop.wait(delay)
            return False
        if self._was_open:
            self.stats.reopens += 1
        self._was_open = True
        self._backoff.reset()
        self._set_state(LinkState.CONNECTED, self.config.device)
        return True

    def _xrun(self, length: int) -> None:
        self.stats.xruns += 1
        if length != -errno.EPIPE:
            log.warning("capture read returned %d", length)
        log.warning("capture overrun on %r (total %d)", self.config.device, self.stats.xruns)

    def _lost(self, detail: str) -> None:
        self.stats.errors += 1
        self._close_pcm()
        self._set_state(LinkState.DISCONNECTED, detail)

    def _close_pcm(self) -> None:
        pcm, self._pcm = self._pcm, None
        if pcm is not None:
            try:
                pcm.close()
            except Exception as exc:  # already gone: nothing left to release
                log.debug("capture close: %s", exc)


def _warn_if_the_mix_cancels_the_front(config: CaptureConfig) -> None:
    """`channel = -1` on an array of known geometry: say when the plain average of its
    mics comb-filters a voice from the front (agentd.audio.beam.front_mix_dip), because
    the VAD, the gates and STT all hear that mono signal."""
    positions = config.mic_positions_mm()
    if config.channel != -1 or not positions or len(config.mic_channels()) != config.channels:
        return
    from agentd.audio.beam import MIX_DIP_WARN_DB, front_mix_dip, metres

    dip_db, at_hz = front_mix_dip(metres(positions), config.rate_hz, config.array_front_deg)
    if dip_db <= MIX_DIP_WARN_DB:
        log.warning(
            "audio.capture.channel = -1 averages mics that cancel a voice from the front "
            "(%.0f dB at %.1f kHz): VAD, gates and STT hear that; set channel to one mic",
            dip_db,
            at_hz / 1000,
        )
