"""AlsaCapture / AlsaPlayback through real alsa-lib `file` plugin PCMs (asound.conf here).

The file plugin is unpaced, so input comes through a FIFO written at real-time pace
(the FIFO blocks the reader exactly like a sound card would), and output goes to a
FIFO drained at real-time pace by the test.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentd.audio.alsa_capture import AlsaCapture, open_alsa_capture
from agentd.audio.alsa_playback import AlsaPlayback
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.vad_gate import VadGate
from agentd.config.sections_audio import CaptureConfig, PlaybackConfig, VadConfig
from agentd.events import LinkState, SpeechStarted
from agentd.sim.speech import render_noise, render_speech

FMT = AudioFormat(16000)
F_SETPIPE_SZ = 1031  # linux/fcntl.h: shrink the FIFO so it buffers ~128 ms, not 2 s


def _paced_writer(
    path: Path, pcm: bytes, stop: threading.Event, speed: float = 1.0, channels: int = 1
) -> None:
    period = FMT.bytes_for_ms(20) * channels  # whole periods: the plugin zero-fills short reads
    with open(path, "wb") as fifo:
        start = time.monotonic()
        for n, offset in enumerate(range(0, len(pcm), period)):
            if stop.is_set():
                return
            fifo.write(pcm[offset : offset + period])
            fifo.flush()
            delay = start + (n + 1) * 0.02 / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)


@pytest.fixture
def mic_fifo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "mic.fifo"
    os.mkfifo(path)
    monkeypatch.setenv("AGENTD_TEST_MIC", str(path))
    return path


@pytest.mark.timeout(30)
def test_capture_real_alsa_gate_opens_on_speech(mic_fifo: Path) -> None:
    speech = render_speech("Hello, I would like to see Anna.", 16000)
    pcm = render_noise(600, 16000, -50) + speech + render_noise(1500, 16000, -50)
    stop = threading.Event()
    writer = threading.Thread(target=_paced_writer, args=(mic_fifo, pcm, stop, 4.0))
    writer.start()
    gate = VadGate(VadConfig())
    started = threading.Event()
    frames: list[bytes] = []

    def on_frame(chunk: AudioChunk) -> None:
        frames.append(chunk.pcm)
        if any(isinstance(e, SpeechStarted) for e in gate.process(chunk)):
            started.set()

    capture = AlsaCapture(CaptureConfig(device="testmic"))
    capture.start(on_frame)
    try:
        assert started.wait(10), "gate never opened on speech read through ALSA"
        writer.join(10)
        assert capture.state == LinkState.CONNECTED
        assert capture.progress >= FMT.frames_for_ms(1000)
        assert b"".join(frames[:10]) == pcm[: FMT.bytes_for_ms(200)]  # bit-exact path
    finally:
        stop.set()
        capture.close()
        writer.join(5)


@pytest.mark.timeout(30)
def test_capture_stereo_array_reduced_to_chosen_channel(mic_fifo: Path) -> None:
    left = bytes([1, 0]) * 3200
    right = bytes([2, 0]) * 3200
    from agentd.audio import dsp

    stereo = dsp.interleave(left, right)
    stop = threading.Event()
    writer = threading.Thread(target=_paced_writer, args=(mic_fifo, stereo, stop, 10.0, 2))
    writer.start()
    got: list[bytes] = []
    done = threading.Event()

    def on_frame(chunk: AudioChunk) -> None:
        got.append(chunk.pcm)
        if len(got) >= 5:
            done.set()

    capture = AlsaCapture(CaptureConfig(device="testmic", channels=2, channel=1))
    capture.start(on_frame)
    try:
        assert done.wait(10)
        assert got[0] == bytes([2, 0]) * 320
    finally:
        stop.set()
        capture.close()
        writer.join(5)


class FlakyPcm:
    """A real alsaaudio PCM whose read fails like an unplugged USB device or overruns."""

    def __init__(self, pcm: Any, fail_after: int, xrun_at: int) -> None:
        self.pcm, self.reads, self.fail_after, self.xrun_at = pcm, 0, fail_after, xrun_at

    def read(self) -> tuple[int, bytes]:
        import alsaaudio

        self.reads += 1
        if self.reads == self.xrun_at:
            return -32, b""  # pyalsaaudio 0.11: (-EPIPE, b"") after an overrun
        if self.reads > self.fail_after:
            raise alsaaudio.ALSAAudioError("No such device [testmic]")
        result: tuple[int, bytes] = self.pcm.read()
        return result

    def close(self) -> None:
        self.pcm.close()


@pytest.mark.timeout(30)
def test_capture_recovers_from_xrun_and_device_loss(tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "mic.raw"
    monkeypatch.setenv("AGENTD_TEST_MIC", str(raw))  # missing: open fails first
    opened: list[FlakyPcm] = []

    def opener(config: CaptureConfig) -> FlakyPcm:
        # The first device overruns once and then vanishes; the one plugged back in works.
        first = not opened
        pcm = FlakyPcm(
            open_alsa_capture(config), fail_after=20 if first else 10**9, xrun_at=5 if first else 0
        )
        opened.append(pcm)
        return pcm

    states: list[LinkState] = []
    capture = AlsaCapture(
        CaptureConfig(device="testmic", reopen_max_backoff_s=0.5),
        on_link=lambda s, _d: states.append(s),
        opener=opener,
    )
    count = threading.Semaphore(0)
    capture.start(lambda _chunk: count.release())
    try:
        deadline = time.monotonic() + 10
        while LinkState.BACKOFF not in states and time.monotonic() < deadline:
            time.sleep(0.01)
        assert LinkState.BACKOFF in states and capture.progress == 0
        raw.write_bytes(render_noise(1000, 16000, -40))  # the device "appears"
        for _ in range(45):  # 19 reads before the first loss, then more after reopening
            assert count.acquire(timeout=10)
        assert capture.stats.xruns >= 1
        assert capture.stats.reopens >= 1
        assert LinkState.DISCONNECTED in states
        # it lost the device, reopened it, and ended connected to the working one
        assert states.index(LinkState.DISCONNECTED) < len(states) - 1
        assert states[-1] == LinkState.CONNECTED and capture.state == LinkState.CONNECTED
        assert len(opened) >= 2 and opened[-1].reads > 0
    finally:
        capture.close()


@pytest.mark.timeout(30)
def test_playback_cancel_flushes_within_a_period(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "spk.fifo"
    os.mkfifo(out)
    monkeypatch.setenv("AGENTD_TEST_SPK", str(out))
    received = bytearray()
    stop = threading.Event()

    def reader() -> None:  # drains the FIFO at real-time pace, like a DAC
        fd = os.open(out, os.O_RDONLY)
        fcntl.fcntl(fd, F_SETPIPE_SZ, 4096)
        start = time.monotonic()
        try:
            while not stop.is_set():
                chunk = os.read(fd, FMT.bytes_for_ms(10))
                if not chunk:
                    return
                received.extend(chunk)
                delay = start + FMT.duration_ms(len(received)) / 1000 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        finally:
            os.close(fd)

    thread = threading.Thread(target=reader)
    thread.start()
    first: list[float] = []
    player = AlsaPlayback(
        PlaybackConfig(device="testspk", period_ms=20, buffer_periods=4),
        on_first_audio=first.append,
    )
    try:
        tone = render_speech("This sentence is long enough to be cancelled halfway.", 16000)
        player.write(tone)
        deadline = time.monotonic() + 5
        while len(received) < FMT.bytes_for_ms(400) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert player.is_playing and first
        player.cancel()
        at_cancel = len(received)
        time.sleep(0.6)
        after = len(received) - at_cancel
        # FIFO (4 KiB = 128 ms) + device buffer (80 ms) + one period, never the rest.
        assert after <= 4096 + FMT.bytes_for_ms(80 + 20)
        assert len(received) < len(tone) // 2
        assert not player.is_playing
        assert player.reference.last_played_ms() > 0
    finally:
        player.close()
        stop.set()
        thread.join(5)
