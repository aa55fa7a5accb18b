"""Status lights: each state transition asserted from the mock pins' recorded states."""

from __future__ import annotations

from typing import Any

import pytest

from agentd.config import parse_config
from agentd.config.sections_gpio import LedsConfig
from agentd.errors import GpioError
from agentd.events import AgentState
from agentd.gpio.leds import StatusLights
from agentd.gpio.patterns import level_at, next_change_s, parse_pattern

pytestmark = pytest.mark.timeout(20)


def leds(**table: Any) -> LedsConfig:
    return parse_config({"gpio": {"leds": table}}).gpio.leds


def intervals(pin: Any) -> list[float]:
    """Seconds between recorded changes (MockPin stores the delta since the last one)."""
    return [s.timestamp for s in pin.states[2:]]  # [0] is the initial, [1] the first edge


def test_gpio_leds_follow_each_state(factory: Any, wait_until: Any) -> None:
    config = leds(
        driver="gpio",
        pins=[5, 6],
        patterns={"thinking": "fast_blink", "speaking": "slow_blink"},
    )
    lights = StatusLights.from_config(config, factory)
    a, b = factory.pin(5), factory.pin(6)
    try:
        lights.show(AgentState.LISTENING)  # on
        assert lights.settled(5)
        assert a.state and b.state
        lights.show(AgentState.IDLE)  # dim -> dark on on/off LEDs
        assert lights.settled(5)
        assert not a.state and not b.state
        a.clear_states()
        lights.show(AgentState.THINKING)  # fast_blink: 0.1 s on / 0.1 s off
        wait_until(lambda: len(a.states) >= 7)
        assert [bool(s.state) for s in a.states[1:7]] == [True, False] * 3
        assert all(0.05 <= dt <= 0.5 for dt in intervals(a)[:5]), intervals(a)
        assert [bool(s.state) for s in b.states[-3:]] != []  # both LEDs animate in unison
        a.clear_states()
        lights.show(AgentState.SPEAKING)  # slow_blink: 0.2 s flash every 2 s
        wait_until(lambda: len(a.states) >= 3, timeout=5)
        on_s = a.states[2].timestamp
        assert 0.1 <= on_s <= 1.0, a.states
    finally:
        lights.close()
    assert not a.state and not b.state  # close() leaves them dark


def test_pwm_dims_idle_and_pulses_thinking(factory: Any, wait_until: Any) -> None:
    lights = StatusLights.from_config(leds(driver="pwm", pins=[12], brightness=0.8), factory)
    pin = factory.pin(12)
    try:
        lights.show(AgentState.IDLE)
        assert lights.settled(5)
        assert pin.state == pytest.approx(0.15 * 0.8)
        pin.clear_states()
        lights.show(AgentState.THINKING)  # pulse: a 25 fps raised cosine
        wait_until(lambda: len(pin.states) >= 15)
        values = [s.state for s in pin.states[1:]]
        assert all(0.0 <= v <= 0.8 + 1e-9 for v in values)
        assert len({round(v, 3) for v in values}) >= 10  # really fading, not blinking
        lights.show(AgentState.LISTENING)
        assert lights.settled(5)
        assert pin.state == pytest.approx(0.8)
    finally:
        lights.close()
    assert pin.state == 0


def test_rgb_muted_is_red_and_overrides_apply(factory: Any) -> None:
    config = leds(driver="rgb", pins=[16, 20, 21], brightness=1.0, patterns={"idle": "on #00ff00"})
    lights = StatusLights.from_config(config, factory)
    r, g, b = (factory.pin(n) for n in (16, 20, 21))
    try:
        lights.show(AgentState.MUTED)
        assert lights.settled(5)
        assert (r.state, g.state, b.state) == (1.0, 0.0, 0.0)
        lights.show(AgentState.IDLE)
        assert lights.settled(5)
        assert (r.state, g.state, b.state) == (0.0, 1.0, 0.0)
        lights.show(AgentState.LISTENING)  # default colour pattern: on blue
        assert lights.settled(5)
        assert (r.state, g.state, b.state) == (0.0, 0.0, 1.0)
    finally:
        lights.close()


def test_repeated_state_does_not_restart_the_animation(factory: Any) -> None:
    lights = StatusLights.from_config(leds(driver="gpio", pins=[5]), factory)
    try:
        lights.show(AgentState.LISTENING)
        assert lights.settled(5)
        before = len(factory.pin(5).states)
        lights.show(AgentState.LISTENING)
        assert lights.settled(5)
        assert len(factory.pin(5).states) == before
    finally:
        lights.close()
        lights.close()  # idempotent


def test_driver_errors_are_gpio_errors(factory: Any) -> None:
    from gpiozero import Button

    holder = Button(5, pin_factory=factory)
    try:
        with pytest.raises(GpioError, match=r"gpio\.leds"):
            StatusLights.from_config(leds(driver="gpio", pins=[5]), factory)
    finally:
        holder.close()


def test_bad_pattern_overrides_are_config_errors() -> None:
    from agentd.errors import ConfigError

    with pytest.raises(ConfigError, match=r"gpio\.leds\.patterns\.sleeping"):
        leds(patterns={"sleeping": "on"})
    with pytest.raises(ConfigError, match="not a valid LED colour"):
        leds(patterns={"idle": "on mauve"})
    with pytest.raises(ConfigError, match="rgb needs 3 pins"):
        leds(driver="rgb", pins=[1, 2])


def test_pattern_timelines() -> None:
    assert parse_pattern("pulse #ff8000", "k").colour == (1.0, 128 / 255, 0.0)
    assert [level_at("heartbeat", t) for t in (0.05, 0.2, 0.3, 1.0)] == [1.0, 0.0, 1.0, 0.0]
    assert next_change_s("blink", 0.2) == pytest.approx(0.3)
    assert next_change_s("on", 3.0) == float("inf")
    # spin: the head LED is brightest and moves round the ring
    heads = [max(range(12), key=lambda i, t=t: level_at("spin", t, i, 12)) for t in (0, 0.3, 0.6)]
    assert heads == [0, 3, 6]
    assert level_at("pulse", 0.0) == 0.0 and level_at("pulse", 1.0) == pytest.approx(1.0)
