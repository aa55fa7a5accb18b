"""GpioControls: the daemon's facade, on MockFactory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentd.config import parse_config
from agentd.errors import GpioError
from agentd.events import AgentState, ButtonPressed
from agentd.gpio.controls import GpioControls
from agentd.gpio.pins import make_pin_factory

pytestmark = pytest.mark.timeout(20)

GPIO = {
    "enabled": True,
    "pin_factory": "mock",
    "buttons": {"talk": {"pin": 17, "bounce_ms": 0}},
    "leds": {"driver": "pwm", "pins": [12]},
    "staff_call_pin": 26,
    "staff_call_pulse_s": 0.2,
}


async def test_start_show_staff_call_and_close(factory: Any) -> None:
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[object] = asyncio.Queue()
    config = parse_config({"gpio": GPIO}).gpio
    controls = GpioControls(
        config, lambda e: loop.call_soon_threadsafe(got.put_nowait, e), factory=factory
    )
    controls.start()
    try:
        controls.show_state(AgentState.LISTENING)
        assert controls.lights is not None and controls.lights.settled(5)
        assert factory.pin(12).state == pytest.approx(config.leds.brightness)
        await asyncio.to_thread(factory.pin(17).drive_low)
        event = await asyncio.wait_for(got.get(), 5)
        assert isinstance(event, ButtonPressed) and event.button == "talk"
        staff = factory.pin(26)
        staff.clear_states()
        await asyncio.gather(controls.raise_staff_call(), controls.raise_staff_call())
        assert [s.state for s in staff.states] == [False, True, False]  # one pulse
        assert 0.15 <= staff.states[2].timestamp <= 2.0
        info = controls.describe()
        assert info["pin_factory"] == "mock" and info["buttons"] == {"talk": 17}
        assert info["leds"]["state"] == "listening"
    finally:
        controls.close()
        controls.close()


async def test_disabled_does_nothing() -> None:
    config = parse_config({"gpio": {**GPIO, "enabled": False}}).gpio
    controls = GpioControls(config, lambda e: None)
    controls.start()
    controls.show_state(AgentState.IDLE)
    await controls.raise_staff_call()
    assert controls.describe()["started"] is False
    controls.close()


async def test_start_failure_releases_what_was_claimed(factory: Any) -> None:
    # LED on the talk button's pin is rejected by config validation, so force it at runtime:
    # the staff-call pin is held by someone else.
    from gpiozero import LED

    holder = LED(26, pin_factory=factory)
    config = parse_config({"gpio": GPIO}).gpio
    controls = GpioControls(config, lambda e: None, factory=factory)
    try:
        with pytest.raises(GpioError, match="staff_call_pin"):
            controls.start()
        # buttons and LEDs were released: their pins can be claimed again
        LED(17, pin_factory=factory).close()
        LED(12, pin_factory=factory).close()
    finally:
        holder.close()


def test_auto_factory_never_falls_back_to_mock(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    with pytest.raises(GpioError, match="MockFactory"):
        make_pin_factory("auto")
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY")
    # no GPIO hardware on the CI machine: a clear error naming why each factory failed
    with pytest.raises(GpioError, match="no GPIO pin factory works here"):
        make_pin_factory("auto")


def test_named_factory_that_cannot_load_is_a_gpio_error() -> None:
    with pytest.raises(GpioError, match="'lgpio' is not usable here"):
        make_pin_factory("lgpio")
