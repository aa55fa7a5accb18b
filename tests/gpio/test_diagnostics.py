"""test-hardware against real alsa-lib (null / file PCMs) and MockFactory buttons and LEDs."""

from __future__ import annotations

import io
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from agentd.config import parse_config
from agentd.gpio.apa102 import FakeSpiDevice
from agentd.gpio.diagnostics import describe_gpio, rms_dbfs, tone
from agentd.gpio.diagnostics import test_hardware as run_hardware_check

pytestmark = pytest.mark.timeout(30)


class PressingOut(io.StringIO):
    """Captures the report; when asked to press a button, presses its mock pin."""

    def __init__(self, factory: Any, pins: dict[str, int]) -> None:
        super().__init__()
        self.factory = factory
        self.pins = pins
        self.threads: list[threading.Thread] = []

    def write(self, text: str) -> int:
        for name, pin in self.pins.items():
            if text.startswith(f"press the {name} button"):
                # from another thread, like a person, after test_hardware starts waiting
                t = threading.Thread(target=self.factory.pin(pin).drive_low)
                self.threads.append(t)
                t.start()
        return super().write(text)


@pytest.fixture
def alsa_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """alsa-lib config with a capture PCM that reads a 440 Hz tone from a file."""
    raw = tmp_path / "tone.raw"
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed",
            str(raw),
            "synth",
            "3",
            "sine",
            "440",
            "vol",
            "0.5",
        ],
        check=True,
    )
    silence = tmp_path / "silence.raw"
    silence.write_bytes(bytes(16000 * 2 * 3))
    conf = tmp_path / "test.conf"
    conf.write_text(
        f'pcm.tone_in {{ type file slave.pcm "null" file "/dev/null"\n'
        f'  infile "{raw}" format "raw" }}\n'
        f'pcm.silence_in {{ type file slave.pcm "null" file "/dev/null"\n'
        f'  infile "{silence}" format "raw" }}\n'
    )
    top = tmp_path / "top.conf"
    top.write_text(f"</usr/share/alsa/alsa.conf>\n<{conf}>\n")
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(top))
    return top


def config(**gpio: Any) -> Any:
    return parse_config(
        {
            "audio": {
                "playback": {"device": "null"},
                "capture": {"device": "tone_in", "rate_hz": 16000},
            },
            "gpio": {"enabled": True, "pin_factory": "mock", **gpio},
        }
    )


def test_full_check_passes_with_tone_leds_and_buttons(alsa_env: Path, factory: Any) -> None:
    cfg = config(
        buttons={"talk": {"pin": 17, "bounce_ms": 0}, "mute": {"pin": 27, "bounce_ms": 0}},
        leds={"driver": "apa102", "apa102_count": 3, "brightness": 1.0},
    )
    out = PressingOut(factory, {"talk": 17, "mute": 27})
    spi = FakeSpiDevice()
    rc = run_hardware_check(cfg, out, factory=factory, spi=spi, button_timeout_s=5, led_on_s=0.01)
    for t in out.threads:
        t.join()
    report = out.getvalue()
    assert rc == 0, report
    assert "OK playback" in report and "OK button talk" in report and "OK button mute" in report
    # a 0.5-amplitude sine is -9 dBFS RMS (20*log10(0.5/sqrt 2))
    level = float(report.split("OK capture level ")[1].split(" dBFS")[0])
    assert -10.0 <= level <= -8.0
    # each LED lit alone, in turn: 3 single-LED frames each followed by all-dark
    lit = [f for f in spi.transfers if any(f[4 + 4 * i + 1] for i in range(3))]
    assert [[f[4 + 4 * i + 1] == 255 for i in range(3)] for f in lit] == [
        [True, False, False],
        [False, True, False],
        [False, False, True],
    ]


def test_missing_press_and_silent_mic_fail(alsa_env: Path, factory: Any) -> None:
    cfg = parse_config(
        {
            "audio": {"playback": {"device": "null"}, "capture": {"device": "silence_in"}},
            "gpio": {"enabled": True, "pin_factory": "mock", "buttons": {"cancel": {"pin": 22}}},
        }
    )
    out = io.StringIO()
    rc = run_hardware_check(cfg, out, factory=factory, button_timeout_s=0.2)
    report = out.getvalue()
    assert rc == 1
    assert "microphone silent" in report  # all-zero samples
    assert "FAIL button cancel: no press" in report


def test_unopenable_device_is_reported_not_raised(alsa_env: Path) -> None:
    cfg = parse_config({"audio": {"playback": {"device": "hw:CARD=NoSuchCard,DEV=0"}}})
    out = io.StringIO()
    assert run_hardware_check(cfg, out, record=lambda s, r, c: tone(r, s)) == 1
    assert "FAIL playback 'hw:CARD=NoSuchCard,DEV=0'" in out.getvalue()
    assert "SKIP gpio" in out.getvalue()


def test_levels_and_device_report(tmp_path: Path) -> None:
    assert rms_dbfs(b"\x00\x00" * 100) == float("-inf")
    assert rms_dbfs(tone(16000)) == pytest.approx(-12.0 - 3.01, abs=0.1)  # sine RMS = peak - 3 dB
    (tmp_path / "gpiochip0").touch()
    (tmp_path / "spidev0.1").touch()
    info = describe_gpio(str(tmp_path))
    assert info["gpio_chips"] == [str(tmp_path / "gpiochip0")]
    assert info["spi_devices"] == [str(tmp_path / "spidev0.1")]
    assert set(info["pin_factories"]) == {"lgpio", "rpigpio", "pigpio", "native"}
