"""The daemon's one handle on GPIO: buttons in, status lights and staff-call output out.

Usage on the loop:
    controls = GpioControls(config.gpio, post=inbox.post)  # presses -> facts + commands
    controls.start()                     # GpioError if the hardware is unusable
    controls.show_state(AgentState.IDLE, engaged=False)  # waiting; engaged: its own pattern
    await controls.raise_staff_call()    # on CallStaff
    controls.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from agentd.config.sections_gpio import GpioConfig
from agentd.errors import GpioError
from agentd.events import AgentState
from agentd.gpio.buttons import ButtonPanel
from agentd.gpio.leds import StatusLights
from agentd.gpio.pins import factory_name, make_pin_factory


class GpioControls:
    """Buttons, LEDs and the staff-call output of one kiosk; nothing happens before start()."""

    def __init__(
        self,
        config: GpioConfig,
        post: Callable[[object], None],
        *,
        led_engaged: str = "",
        factory: Any = None,
        spi: Any = None,
    ) -> None:
        self.config = config
        self.led_engaged = led_engaged  # engagement.led_engaged; "" = the driver's default
        self._post = post  # thread-safe: button facts and commands (conversation inbox)
        self.factory = factory  # injected (tests) or made in start() from config
        self._spi = spi  # injected fake SPI device for apa102 (tests)
        self.buttons: ButtonPanel | None = None
        self.lights: StatusLights | None = None
        self._staff_out: Any = None
        self._staff_calls = 0
        self._started = False
        self._closed = False

    def start(self) -> None:
        """Claim the pins; with gpio.enabled = false this does nothing."""
        if not self.config.enabled or self._started:
            return
        self._started = True
        try:
            if self.factory is None:
                self.factory = make_pin_factory(self.config.pin_factory)
            self.buttons = ButtonPanel(self.config.buttons, self.factory, self._post)
            self.lights = StatusLights.from_config(
                self.config.leds, self.factory, spi=self._spi, led_engaged=self.led_engaged
            )
            if self.config.staff_call_pin >= 0:
                from gpiozero import DigitalOutputDevice

                self._staff_out = DigitalOutputDevice(
                    self.config.staff_call_pin, pin_factory=self.factory
                )
        except GpioError:
            self.close()
            raise
        except Exception as exc:  # gpiozero errors on the staff-call pin
            self.close()
            raise GpioError(f"gpio.staff_call_pin GPIO{self.config.staff_call_pin}: {exc}") from exc

    def show_state(self, state: AgentState, engaged: bool = False) -> None:
        """Show the agent state on the LEDs, idle while `engaged` as engaged (cheap,
        non-blocking; repeated states are no-ops)."""
        if self.lights is not None:
            self.lights.show(state, engaged)

    def set_led_engaged(self, text: str) -> None:
        """A reloaded engagement.led_engaged ("" = the driver's default), shown at once."""
        from agentd.gpio.patterns import engaged_pattern

        self.led_engaged = text
        if self.lights is not None:
            self.lights.set_engaged_pattern(engaged_pattern(text, colour=self.lights.driver.colour))

    def show_capture(self, active: bool) -> None:
        """Turn capture armed: the LEDs say so whatever the state (patterns.capture_variant)."""
        if self.lights is not None:
            self.lights.set_capture(active)

    async def raise_staff_call(self) -> None:
        """Hold the staff-call output high for staff_call_pulse_s; a new call extends it."""
        out = self._staff_out
        if out is None:
            return
        self._staff_calls += 1
        call = self._staff_calls
        out.on()
        await asyncio.sleep(self.config.staff_call_pulse_s)
        if call == self._staff_calls and self._staff_out is out:  # latest call, not closed
            out.off()

    def describe(self) -> dict[str, Any]:
        """Diagnostics for `agentd devices` / MQTT status."""
        info: dict[str, Any] = {"enabled": self.config.enabled, "started": self._started}
        if self.factory is not None:
            info["pin_factory"] = factory_name(self.factory)
        if self.buttons is not None:
            info["buttons"] = {
                name: getattr(self.config.buttons, name).pin for name in self.buttons.names
            }
        if self.lights is not None:
            info["leds"] = {
                "driver": self.config.leds.driver,
                "count": self.lights.driver.count,
                "state": str(self.lights.state) if self.lights.state else None,
                "engaged": self.lights.engaged,
            }
        info["staff_call_pin"] = self.config.staff_call_pin if self._staff_out else None
        return info

    def close(self) -> None:
        """Release every pin (LEDs off, staff output low); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.buttons is not None:
            self.buttons.close()
        if self.lights is not None:
            self.lights.close()
        if self._staff_out is not None:
            out, self._staff_out = self._staff_out, None
            out.close()
