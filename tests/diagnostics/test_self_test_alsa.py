"""The audio self-test through real alsa-lib, on the plugin PCMs of tests/audio/asound.conf.

`testspk` writes what is played to a FIFO and `testmic` reads the mic from another; a
"room" thread between them drains the speaker at real-time pace (like a DAC), and feeds
the mic at real-time pace with noise plus the played audio delayed and attenuated. The
ALSA null device under the file plugin reports no buffering, so the FIFO's own buffer
(shrunk to one page, 128 ms) adds an unreported latency: the delay is checked as at
least the room's and at most one FIFO more; the coupling exactly as the room applies it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agentd.config import parse_config
from agentd.gpio.diagnostics import test_hardware as run_hardware_check

pytestmark = pytest.mark.timeout(60)
ASOUND = Path(__file__).parents[1] / "audio" / "asound.conf"
F_SETPIPE_SZ = 1031  # linux/fcntl.h
PIPE_BYTES = 4096  # one page: 128 ms of 16 kHz mono
RATE, PERIOD = 16000, 320  # 20 ms periods
FIFO_MS = PIPE_BYTES / 2 / RATE * 1000


class Room(threading.Thread):
    """Speaker FIFO -> delay line x gain + noise -> mic FIFO, paced in real time."""

    def __init__(self, spk: Path, mic: Path, delay_ms: float, gain_db: float | None,
                 noise_dbfs: float) -> None:  # fmt: skip
        super().__init__(name="room", daemon=True)
        self.spk_fd = os.open(spk, os.O_RDONLY | os.O_NONBLOCK)  # before ALSA opens it
        fcntl.fcntl(self.spk_fd, F_SETPIPE_SZ, PIPE_BYTES)
        self.mic = mic
        self.gain = 0.0 if gain_db is None else 10 ** (gain_db / 20)
        self.line = np.zeros(int(RATE * delay_ms / 1000), dtype=np.float64)
        rng = np.random.default_rng(7)
        self.noise_rms = 32768 * 10 ** (noise_dbfs / 20)
        self.rng = rng
        self.stop = threading.Event()
        self.heard = 0  # speaker samples drained

    def _played(self) -> np.ndarray:
        try:
            data = os.read(self.spk_fd, PERIOD * 2)
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
            data = b""
        got = np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2").astype(np.float64)
        self.heard += len(got)
        return np.concatenate([got, np.zeros(PERIOD - len(got))])

    def run(self) -> None:
        try:
            fd = os.open(self.mic, os.O_WRONLY)  # blocks until the capture opens it
        except OSError:
            return
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
        start, n = time.monotonic(), 0
        try:
            while not self.stop.is_set():
                self.line = np.concatenate([self.line, self._played()])
                echo, self.line = self.line[:PERIOD], self.line[PERIOD:]
                frame = echo * self.gain + self.rng.normal(0.0, self.noise_rms, PERIOD)
                os.write(fd, np.clip(frame, -32768, 32767).astype("<i2").tobytes())
                n += 1
                delay = start + n * 0.02 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except BrokenPipeError:
            pass  # the capture closed: the test is over
        finally:
            os.close(fd)


@pytest.fixture
def fifos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    if shutil.which("sox") is None:
        pytest.skip("sox is required")
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(ASOUND))
    spk, mic = tmp_path / "spk.fifo", tmp_path / "mic.fifo"
    os.mkfifo(spk)
    os.mkfifo(mic)
    monkeypatch.setenv("AGENTD_TEST_SPK", str(spk))
    monkeypatch.setenv("AGENTD_TEST_MIC", str(mic))
    yield spk, mic


def run(room: Room) -> str:
    config = parse_config({"audio": {
        "capture": {"device": "testmic", "period_ms": 20},
        "playback": {"device": "testspk", "period_ms": 20, "buffer_periods": 2},
    }})  # fmt: skip
    room.start()
    out = io.StringIO()
    try:
        run_hardware_check(config, out)
    finally:
        room.stop.set()
        with contextlib.suppress(OSError):  # unblock a room still waiting for the capture
            os.close(os.open(room.mic, os.O_RDONLY | os.O_NONBLOCK))
        room.join(5)
        os.close(room.spk_fd)
    return out.getvalue()


def test_echo_through_alsa_plugins(fifos: tuple[Path, Path]) -> None:
    spk, mic = fifos
    room = Room(spk, mic, delay_ms=80.0, gain_db=-18.0, noise_dbfs=-60.0)
    report = run(room)
    assert "OK audio" in report, report
    echo = report.split("echo ")[1].split("\n")[0]  # "<delay> ms, <coupling> dB"
    delay, coupling = (float(x.split()[0]) for x in echo.split(", "))
    assert 80.0 - 5.0 <= delay <= 80.0 + FIFO_MS + 40.0, report  # + the FIFO, + 2 periods
    assert coupling == pytest.approx(-18.0, abs=2.0), report
    noise = float(report.split("noise floor ")[1].split(" dBFS")[0])
    assert noise == pytest.approx(-60.0, abs=1.5)
    # the sweep went through the speaker FIFO (the file plugin keeps its last partial
    # buffer until the PCM closes, so up to a few periods of the faded tail stay behind)
    assert room.heard >= RATE * 0.4


def test_dead_mic_through_alsa_plugins_names_the_capture_keys(fifos: tuple[Path, Path]) -> None:
    spk, mic = fifos
    room = Room(spk, mic, delay_ms=80.0, gain_db=None, noise_dbfs=-200.0)  # zeros only
    report = run(room)
    assert "FAIL audio" in report, report
    assert "ADVICE audio.capture.channel: the microphone delivers digital silence" in report
