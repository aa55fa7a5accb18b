"""The engagement state on the LEDs (issue 14): waiting and engaged look different, on
every driver kind, with and without turn capture armed; driven through `Reporting` on
MockFactory pins as the daemon drives them."""

from __future__ import annotations

from typing import Any

import pytest

from agentd.config import parse_config
from agentd.config.sections_gpio import LedsConfig
from agentd.conversation.engagement import EngagementState
from agentd.events import AgentState
from agentd.gpio.controls import GpioControls
from agentd.gpio.leds import StatusLights
from agentd.gpio.patterns import (
    COLOUR_DEFAULTS,
    MONO_DEFAULTS,
    capture_variant,
    engaged_pattern,
    parse_pattern,
)
from agentd.service.reporting import Reporting
from agentd.service.sdnotify import Notifier

pytestmark = pytest.mark.timeout(20)


def leds(**table: Any) -> LedsConfig:
    return parse_config({"gpio": {"leds": table}}).gpio.leds


@pytest.mark.parametrize("colour", [True, False])
def test_engaged_pattern_differs_from_every_state_and_from_capture(colour: bool) -> None:
    """Engaged-idle must not read as any state, nor (on mono LEDs) as capture armed."""
    engaged = engaged_pattern("", colour=colour)
    defaults = COLOUR_DEFAULTS if colour else MONO_DEFAULTS
    states = {s: parse_pattern(t, "k") for s, t in defaults.items()}
    assert engaged not in states.values()
    if not colour:  # a mono LED shows nothing but the effect
        assert engaged.effect not in {p.effect for p in states.values()}
        assert engaged.effect != capture_variant(states[AgentState.IDLE], colour=False).effect
    else:  # armed capture keeps engaged and waiting apart on a colour ring
        idle = capture_variant(states[AgentState.IDLE], colour=True)
        assert capture_variant(engaged, colour=True) != idle
    assert engaged_pattern("on purple", colour=colour) == parse_pattern("on purple", "k")


def test_mono_leds_waiting_dark_engaged_winks_listening_on(factory: Any, wait_until: Any) -> None:
    lights = StatusLights.from_config(leds(driver="gpio", pins=[5]), factory)
    pin = factory.pin(5)
    try:
        lights.show(AgentState.IDLE)  # waiting (e.g. for the wake word): dim = dark here
        assert lights.settled(5) and not pin.state
        pin.clear_states()
        lights.show(AgentState.IDLE, engaged=True)  # wink: on 1.8 s, dark 0.2 s
        assert lights.engaged
        wait_until(lambda: len(pin.states) >= 3, timeout=5)
        assert [bool(s.state) for s in pin.states[1:3]] == [True, False]
        assert 1.4 <= pin.states[2].timestamp <= 3.0, pin.states  # on for ~1.8 s
        lights.show(AgentState.LISTENING, engaged=True)  # listening is listening
        assert lights.settled(5) and pin.state and not lights.engaged
        pin.clear_states()
        lights.show(AgentState.IDLE, engaged=True)
        lights.show(AgentState.IDLE, engaged=False)  # conversation over: waiting again
        assert lights.settled(5) and not pin.state
    finally:
        lights.close()


def test_rgb_engaged_is_its_own_pattern_and_capture_still_shows(factory: Any) -> None:
    lights = StatusLights.from_config(leds(driver="rgb", pins=[16, 20, 21], brightness=1.0),
                                      factory)  # fmt: skip
    r, g, b = (factory.pin(n) for n in (16, 20, 21))
    try:
        lights.show(AgentState.IDLE)
        assert lights.settled(5)
        assert (r.state, g.state, b.state) == pytest.approx((0.15, 0.15, 0.15))  # dim white
        lights.show(AgentState.IDLE, engaged=True)  # slow_blink white: a flash first
        assert lights.settled(5)
        assert (r.state, g.state, b.state) == (1.0, 1.0, 1.0)
        lights.set_capture(True)  # engaged-idle in capture's magenta, not hidden by it
        assert lights.settled(5)
        assert (r.state, g.state, b.state) == (1.0, 0.0, 1.0)
        lights.show(AgentState.IDLE, engaged=False)
        assert lights.settled(5)
        assert (r.state, g.state, b.state) == pytest.approx((0.15, 0.0, 0.15))  # dim magenta
    finally:
        lights.close()


def test_reporting_drives_the_pins_through_engagement_transitions(factory: Any) -> None:
    """The daemon's path: Reporting -> GpioControls -> StatusLights -> the pins."""
    config = parse_config({"gpio": {"enabled": True, "pin_factory": "mock",
                                    "leds": {"driver": "pwm", "pins": [12], "brightness": 1.0}},
                           "engagement": {"led_engaged": "on"}}).gpio  # fmt: skip
    controls = GpioControls(config, lambda _e: None, led_engaged="on", factory=factory)
    controls.start()
    reporting = Reporting(Notifier({}), started_at=lambda: 0.0)
    pin = factory.pin(12)
    try:
        reporting.attach_gpio(controls)
        reporting.state_changed(AgentState.IDLE)
        assert controls.lights is not None and controls.lights.settled(5)
        assert pin.state == pytest.approx(0.15)  # waiting: dim
        reporting.engagement_changed(EngagementState.ENGAGED, "wake_word")
        assert controls.lights.settled(5) and pin.state == pytest.approx(1.0)  # led_engaged
        controls.set_led_engaged("off")  # a reload changes the pattern: shown at once
        assert controls.lights.settled(5) and pin.state == 0.0
        reporting.engagement_changed(EngagementState.WAITING, "window_closed")
        assert controls.lights.settled(5) and pin.state == pytest.approx(0.15)
        assert controls.describe()["leds"]["engaged"] is False
    finally:
        controls.close()
