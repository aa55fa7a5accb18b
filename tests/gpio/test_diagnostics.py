"""test-hardware: the audio self-test on the simulator's devices, MockFactory buttons and LEDs.

The same self-test on real alsa-lib plugin PCMs is in tests/diagnostics/test_self_test_alsa.py.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest

from agentd.config import parse_config
from agentd.gpio.apa102 import FakeSpiDevice
from agentd.gpio.diagnostics import describe_gpio
from agentd.gpio.diagnostics import test_hardware as run_hardware_check
from agentd.service.composition import BUILTIN_BACKENDS
from agentd.sim.devices import with_sim

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
def sim_audio(tmp_path: Path) -> dict[str, Any]:
    """Audio config for the simulator's devices: a quiet room with a known echo."""
    scenario = tmp_path / "quiet.toml"
    scenario.write_text(
        'name = "quiet"\nnoise_db = -58.0\ntail_ms = 30000\n'
        '[[turn]]\nvisitor = "hello"\npause_before_ms = 30000\n'
    )
    return {
        "capture": {"backend": "sim"},
        "playback": {"backend": "sim"},
        "sim": {"scenario": str(scenario), "echo_db": -20.0, "echo_delay_ms": 60.0},
    }


def config(audio: dict[str, Any], **gpio: Any) -> Any:
    return parse_config({"audio": audio, "gpio": {"enabled": True, "pin_factory": "mock", **gpio}})


def test_full_check_passes_with_self_test_leds_and_buttons(
    sim_audio: dict[str, Any], factory: Any
) -> None:
    cfg = config(
        sim_audio,
        buttons={"talk": {"pin": 17, "bounce_ms": 0}, "mute": {"pin": 27, "bounce_ms": 0}},
        leds={"driver": "apa102", "apa102_count": 3, "brightness": 1.0},
    )
    out = PressingOut(factory, {"talk": 17, "mute": 27})
    spi = FakeSpiDevice()
    rc = run_hardware_check(cfg, out, factory=factory, spi=spi, button_timeout_s=5,
                            led_on_s=0.01, backends=with_sim(BUILTIN_BACKENDS))  # fmt: skip
    for t in out.threads:
        t.join()
    report = out.getvalue()
    assert rc == 0, report
    assert "OK audio" in report and "OK button talk" in report and "OK button mute" in report
    # the one self-test measured the sim room: echo 60 ms at -20 dB over -58 dB noise
    assert "echo 60.0 ms, -20.0 dB" in report, report
    noise = float(report.split("noise floor ")[1].split(" dBFS")[0])
    assert -64.0 <= noise <= -52.0
    # each LED lit alone, in turn: 3 single-LED frames each followed by all-dark
    lit = [f for f in spi.transfers if any(f[4 + 4 * i + 1] for i in range(3))]
    assert [[f[4 + 4 * i + 1] == 255 for i in range(3)] for f in lit] == [
        [True, False, False],
        [False, True, False],
        [False, False, True],
    ]


def test_missing_press_and_missing_scenario_fail(factory: Any) -> None:
    cfg = config(
        {"capture": {"backend": "sim"}, "playback": {"backend": "sim"}},
        buttons={"cancel": {"pin": 22}},
    )
    out = io.StringIO()
    rc = run_hardware_check(cfg, out, factory=factory, button_timeout_s=0.2,
                            backends=with_sim(BUILTIN_BACKENDS))  # fmt: skip
    report = out.getvalue()
    assert rc == 1
    assert "FAIL audio devices: audio.sim.scenario" in report
    assert "FAIL button cancel: no press" in report


def test_unopenable_device_is_reported_not_raised() -> None:
    cfg = parse_config({"audio": {"playback": {"backend": "sim"}}})  # no sim backend offered
    out = io.StringIO()
    assert run_hardware_check(cfg, out) == 1
    assert "FAIL audio devices: audio.playback.backend" in out.getvalue()
    assert "SKIP gpio" in out.getvalue()


def test_device_report(tmp_path: Path) -> None:
    (tmp_path / "gpiochip0").touch()
    (tmp_path / "spidev0.1").touch()
    info = describe_gpio(str(tmp_path))
    assert info["gpio_chips"] == [str(tmp_path / "gpiochip0")]
    assert info["spi_devices"] == [str(tmp_path / "spidev0.1")]
    assert set(info["pin_factories"]) == {"lgpio", "rpigpio", "pigpio", "native"}
