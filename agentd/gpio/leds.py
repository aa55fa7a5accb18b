"""Status lights: the agent state shown as an LED pattern, on any LED driver.

Every driver has one method, `render(pixels)`, with one RGB 0..1 triple per LED;
`StatusLights` runs the pattern's animation on its own small thread (event-driven:
steady patterns render once, blinks wake only at their edges, pulse/spin at 25 fps), so
nothing ever sleeps on the asyncio loop. `show(state, engaged=...)` only swaps the
pattern: idle while a conversation is on (engaged) has its own pattern, so "waiting for
someone (or the wake word)" and "engaged, waiting for your next words" look different.

Drivers, chosen by `gpio.leds.driver`: gpio (on/off LEDs, gpiozero LEDBoard), pwm
(dimmable, LEDBoard(pwm=True)), rgb (one RGBLED), apa102 (SPI ring, agentd.gpio.apa102),
none. Mono drivers show all their LEDs in unison with the pattern's level.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from agentd.config.sections_gpio import LedsConfig
from agentd.errors import GpioError
from agentd.events import AgentState
from agentd.gpio.patterns import (
    Pattern,
    Rgb,
    capture_variant,
    engaged_pattern,
    level_at,
    next_change_s,
    resolve_patterns,
)

log = logging.getLogger(__name__)

OFF: Pattern = Pattern("off")
ON_THRESHOLD = 0.5  # on/off LEDs light when the level reaches half


class LedDriver(Protocol):
    count: int
    colour: bool

    def render(self, pixels: Sequence[Rgb]) -> None: ...

    def close(self) -> None: ...


class NoLights:
    """driver = "none": nothing fitted."""

    count = 0
    colour = False

    def render(self, pixels: Sequence[Rgb]) -> None:
        pass

    def close(self) -> None:
        pass


class BoardLights:
    """gpio/pwm: a gpiozero LEDBoard, every LED at the pattern's level."""

    colour = False

    def __init__(
        self, pins: Sequence[int], *, pwm: bool, active_high: bool, brightness: float, factory: Any
    ) -> None:
        from gpiozero import LEDBoard

        self.count = len(pins)
        self._pwm = pwm
        self._brightness = brightness
        self._board = LEDBoard(*pins, pwm=pwm, active_high=active_high, pin_factory=factory)

    def render(self, pixels: Sequence[Rgb]) -> None:
        levels = [max(px) if px else 0.0 for px in pixels]
        if self._pwm:
            self._board.value = tuple(level * self._brightness for level in levels)
        else:
            self._board.value = tuple(int(level >= ON_THRESHOLD) for level in levels)

    @property
    def leds(self) -> tuple[Any, ...]:
        return tuple(self._board.leds)

    def close(self) -> None:
        self._board.close()


class RgbLights:
    """rgb: one gpiozero RGBLED on three PWM pins."""

    count = 1
    colour = True

    def __init__(
        self, pins: Sequence[int], *, active_high: bool, brightness: float, factory: Any
    ) -> None:
        from gpiozero import RGBLED

        red, green, blue = pins
        self._brightness = brightness
        self._led = RGBLED(red, green, blue, active_high=active_high, pin_factory=factory)

    def render(self, pixels: Sequence[Rgb]) -> None:
        r, g, b = pixels[0] if pixels else (0.0, 0.0, 0.0)
        k = self._brightness
        self._led.value = (r * k, g * k, b * k)

    def close(self) -> None:
        self._led.close()


def make_driver(config: LedsConfig, factory: Any, *, spi: Any = None) -> LedDriver:
    """The LED driver named by `config.driver`; GpioError if its hardware is unusable."""
    try:
        if config.driver == "none":
            return NoLights()
        if config.driver in ("gpio", "pwm"):
            return BoardLights(
                config.pins,
                pwm=config.driver == "pwm",
                active_high=config.active_high,
                brightness=config.brightness,
                factory=factory,
            )
        if config.driver == "rgb":
            return RgbLights(
                config.pins,
                active_high=config.active_high,
                brightness=config.brightness,
                factory=factory,
            )
        return _make_apa102(config, factory, spi)
    except GpioError:
        raise
    except Exception as exc:  # gpiozero: pin in use, PWM unsupported, permissions
        raise GpioError(f"gpio.leds ({config.driver}): {exc}") from exc


def _make_apa102(config: LedsConfig, factory: Any, spi: Any) -> LedDriver:
    from agentd.gpio.apa102 import Apa102, open_spidev

    power = None
    if config.apa102_power_pin >= 0:
        from gpiozero import DigitalOutputDevice

        power = DigitalOutputDevice(
            config.apa102_power_pin, initial_value=True, pin_factory=factory
        )
    try:
        if spi is None:
            spi = open_spidev(config.apa102_spi_bus, config.apa102_spi_device, config.apa102_spi_hz)
    except GpioError:
        if power is not None:
            power.close()
        raise
    return Apa102(config.apa102_count, spi, brightness=config.brightness, power=power)


class StatusLights:
    """Shows the agent state on `driver`; one animation thread, `close()` idempotent."""

    def __init__(
        self,
        driver: LedDriver,
        patterns: Mapping[AgentState, Pattern],
        engaged: Pattern | None = None,
    ) -> None:
        self.driver = driver
        self._patterns = dict(patterns)
        self._engaged_pattern = engaged or engaged_pattern("", colour=driver.colour)
        self._engaged = False  # engaged and idle: `_engaged_pattern` instead of idle's
        self._lock = threading.Lock()
        self._rendered = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._pattern = OFF
        self._state: AgentState | None = None
        self._capture = False  # turn capture armed: every state in its capture variant
        self._since = time.monotonic()
        self._generation = 0
        self._rendered_generation = -1
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="agentd-leds", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(
        cls, config: LedsConfig, factory: Any, *, spi: Any = None, led_engaged: str = ""
    ) -> StatusLights:
        driver = make_driver(config, factory, spi=spi)
        return cls(
            driver,
            resolve_patterns(config.patterns, colour=driver.colour),
            engaged_pattern(led_engaged, colour=driver.colour),
        )

    @property
    def state(self) -> AgentState | None:
        return self._state

    @property
    def engaged(self) -> bool:
        """Whether the engaged-and-idle pattern is what `state` shows now."""
        return self._engaged

    def pattern_for(self, state: AgentState, engaged: bool = False) -> Pattern:
        if engaged and state is AgentState.IDLE:
            pattern = self._engaged_pattern
        else:
            pattern = self._patterns.get(state, OFF)
        if self._capture:
            return capture_variant(pattern, colour=self.driver.colour)
        return pattern

    def set_engaged_pattern(self, pattern: Pattern) -> None:
        """A new engaged-and-idle pattern (engagement.led_engaged reloaded)."""
        with self._lock:
            self._engaged_pattern = pattern
            if self._state is not None and not self._closed:
                self._set(self.pattern_for(self._state, self._engaged))

    def set_capture(self, active: bool) -> None:
        """Show (or stop showing) that turn capture is armed, over any state."""
        with self._lock:
            if self._closed or active == self._capture:
                return
            self._capture = active
            if self._state is not None:
                self._set(self.pattern_for(self._state, self._engaged))

    def show(self, state: AgentState, engaged: bool = False) -> None:
        """Switch to `state`'s pattern, or while `engaged` and idle the engaged pattern
        (no-op if already shown); never blocks on hardware."""
        engaged = engaged and state is AgentState.IDLE
        with self._lock:
            if self._closed or (state == self._state and engaged == self._engaged):
                return
            self._state, self._engaged = state, engaged
            self._set(self.pattern_for(state, engaged))

    def _set(self, pattern: Pattern) -> None:
        self._pattern = pattern
        self._since = time.monotonic()
        self._generation += 1
        self._wake.set()

    def settled(self, timeout: float) -> bool:
        """Wait until the current pattern has been rendered at least once."""
        with self._rendered:
            return self._rendered.wait_for(
                lambda: self._rendered_generation == self._generation or self._closed, timeout
            )

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                pattern, since, generation = self._pattern, self._since, self._generation
            t = time.monotonic() - since
            try:
                self.driver.render(self._pixels(pattern, t))
            except Exception:  # a broken LED must not take the daemon down
                log.exception("LED render failed; lights stay as they are")
            with self._rendered:
                self._rendered_generation = generation
                self._rendered.notify_all()
            wait = next_change_s(pattern.effect, t)
            self._wake.wait(None if wait == float("inf") else wait)
            self._wake.clear()

    def _pixels(self, pattern: Pattern, t: float) -> list[Rgb]:
        n = self.driver.count
        out: list[Rgb] = []
        for i in range(n):
            level = level_at(pattern.effect, t, i, n)
            r, g, b = pattern.colour
            out.append((r * level, g * level, b * level))
        return out

    def close(self) -> None:
        """Stop the animation, turn the LEDs off and release them; safe to call twice."""
        with self._rendered:
            if self._closed:
                return
            self._closed = True
            self._rendered.notify_all()
        self._wake.set()
        self._thread.join(timeout=2.0)
        try:
            self.driver.render([(0.0, 0.0, 0.0)] * self.driver.count)
        except Exception:  # closing anyway
            log.debug("LED off on close failed", exc_info=True)
        self.driver.close()
