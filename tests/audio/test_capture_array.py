"""Capture of a mic array: the loop gets the mono mix as before, and the array's raw mics
beside it (`AudioChunk.array`) for the near-field gate; config names the mic channels."""

from __future__ import annotations

import logging
import threading
import time
from array import array

import pytest

from agentd.audio.alsa_capture import AlsaCapture
from agentd.audio.format import AudioChunk
from agentd.config import load_config
from agentd.config.sections_audio import CaptureConfig
from agentd.errors import ConfigError

PERIOD_FRAMES = 320  # 20 ms at 16 kHz


class SixChannelPcm:
    """ReSpeaker USB v2 layout: ch0 processed, ch1-4 mics, ch5 playback (value = 100*ch + n)."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self) -> tuple[int, bytes]:
        self.reads += 1
        if self.reads > 3:
            time.sleep(0.005)
            return 0, b""
        samples = array("h", [100 * ch + n for n in range(PERIOD_FRAMES) for ch in range(6)])
        return PERIOD_FRAMES, samples.tobytes()

    def close(self) -> None:
        pass


def capture_three(config: CaptureConfig) -> list[AudioChunk]:
    got: list[AudioChunk] = []
    done = threading.Event()

    def on_frame(chunk: AudioChunk) -> None:
        got.append(chunk)
        if len(got) == 3:
            done.set()

    capture = AlsaCapture(config, opener=lambda _c: SixChannelPcm())
    capture.start(on_frame)
    try:
        assert done.wait(5)
    finally:
        capture.close()
    return got


def test_the_array_mics_ride_beside_the_processed_channel() -> None:
    chunk = capture_three(CaptureConfig(channels=6, channel=0, array_channels=(1, 2, 3, 4)))[0]
    assert array("h", chunk.pcm).tolist()[:3] == [0, 1, 2]  # channel 0, mono
    assert chunk.array is not None and chunk.array.fmt.channels == 4
    assert chunk.array.at_ms == chunk.at_ms
    mics = array("h", chunk.array.pcm).tolist()
    assert mics[:8] == [100, 200, 300, 400, 101, 201, 301, 401]
    assert len(mics) == 4 * PERIOD_FRAMES


def test_all_channels_are_the_array_by_default_and_a_mono_mic_has_none() -> None:
    chunk = capture_three(CaptureConfig(channels=6))[0]
    assert chunk.array is not None and chunk.array.fmt.channels == 6
    assert CaptureConfig(channels=1).mic_channels() == ()


@pytest.mark.parametrize(
    ("keys", "where"),
    [
        ("channels = 6\narray_channels = [1, 6]", "array_channels[1]"),
        ("channels = 2\narray_channels = [1]", "array_channels"),
    ],
)
def test_array_channels_are_validated(tmp_path, keys: str, where: str) -> None:
    path = tmp_path / "agentd.toml"
    path.write_text(f"[audio.capture]\n{keys}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key_path == f"audio.capture.{where}"


def test_a_mix_that_cancels_the_front_voice_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    """The plain average of the 4-mic square nulls a voice from between two mics near
    3.75 kHz; the operator is told (VAD, gates and STT hear the mix), and not for one mic
    or a broadside pair, whose mix passes a front voice."""
    from agentd.audio.alsa_capture import AlsaCapture

    caplog.set_level(logging.WARNING, logger="agentd")
    AlsaCapture(CaptureConfig(channels=4, channel=-1, array_geometry="respeaker-4mic"))
    assert "cancel a voice from the front" in caplog.text
    assert "3.8 kHz" in caplog.text
    caplog.clear()
    AlsaCapture(CaptureConfig(channels=4, channel=0, array_geometry="respeaker-4mic"))
    broadside = ((-30.0, 0.0, 0.0), (30.0, 0.0, 0.0))
    AlsaCapture(
        CaptureConfig(
            channels=2,
            channel=-1,
            array_geometry="custom",
            array_positions_mm=broadside,
            array_front_deg=90.0,
        )
    )
    assert "cancel a voice" not in caplog.text


def test_the_front_mix_dip_follows_the_geometry() -> None:
    from agentd.audio.beam import front_mix_dip

    square = [
        (x / 1000, y / 1000, 0.0)
        for x, y in ((22.85, 22.85), (-22.85, 22.85), (-22.85, -22.85), (22.85, -22.85))
    ]
    dip_db, at_hz = front_mix_dip(square, 16000, 0.0)
    assert dip_db < -30.0 and 3500.0 <= at_hz <= 4000.0  # c / (2 * 45.7 mm) = 3.75 kHz
    pair = [(-0.03, 0.0, 0.0), (0.03, 0.0, 0.0)]
    assert front_mix_dip(pair, 16000, 90.0)[0] > -0.5  # broadside: same path to both mics
    endfire_db, endfire_hz = front_mix_dip(pair, 16000, 0.0)
    assert endfire_db < -30.0 and 2700.0 <= endfire_hz <= 3000.0  # c / (2 * 60 mm) = 2.86 kHz
