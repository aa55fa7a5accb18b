"""Config section for GPIO: buttons, LEDs and the staff-call output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentd.config._fields import section, setting
from agentd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ButtonConfig:
    pin: int = setting(-1, min=-1, max=53, doc="BCM GPIO number; -1 = not fitted.")
    pull_up: bool = setting(
        True, doc="true = button wired to ground (internal pull-up, pressed = low)."
    )
    bounce_ms: int = setting(30, min=0, max=1000, doc="Debounce; 0 = off.")
    hold_s: float = setting(2.0, min=0.2, max=30.0, doc="Long press threshold.")


@dataclass(frozen=True, slots=True)
class ButtonsConfig:
    talk: ButtonConfig = section(ButtonConfig)
    talk_mode: Literal["hold", "press"] = setting(
        "hold", doc="hold = talk while held, release ends the turn; press = a press starts one."
    )
    cancel: ButtonConfig = section(ButtonConfig)
    mute: ButtonConfig = section(ButtonConfig)
    staff: ButtonConfig = section(ButtonConfig)
    long_press_action: Literal["call_staff", "none"] = "call_staff"
    long_press_button: Literal["talk", "cancel", "mute"] = setting(
        "cancel", doc="Which button's long press calls staff (talk only in talk_mode = press)."
    )

    def validate(self, path: str) -> None:
        """Holding talk in hold mode means talking, so it cannot also mean "call staff"."""
        if (
            self.long_press_action == "call_staff"
            and self.long_press_button == "talk"
            and self.talk_mode == "hold"
        ):
            raise ConfigError(
                f"{path}.long_press_button",
                "a long press on talk is ambiguous in talk_mode = 'hold'",
                "talk",
                "cancel or mute, or talk_mode = 'press'",
            )


@dataclass(frozen=True, slots=True)
class LedsConfig:
    driver: Literal["none", "gpio", "pwm", "rgb", "apa102"] = "none"
    pins: tuple[int, ...] = setting((), doc="gpio/pwm: one pin per LED; rgb: red, green, blue.")
    active_high: bool = setting(True, doc="false for common-anode RGB LEDs / LEDs wired to 3V3.")
    apa102_count: int = setting(3, min=1, max=255)
    apa102_spi_bus: int = setting(0, min=0, max=6)
    apa102_spi_device: int = setting(0, min=0, max=3, doc="Chip select: /dev/spidev<bus>.<dev>.")
    apa102_spi_hz: int = setting(
        8_000_000, min=100_000, max=32_000_000, doc="Seeed's ReSpeaker driver uses 8 MHz."
    )
    apa102_power_pin: int = setting(-1, min=-1, max=53, doc="e.g. GPIO5 on the 4-mic array.")
    brightness: float = setting(0.5, min=0.0, max=1.0)
    patterns: dict[str, str] = setting(
        factory=dict, doc="state -> '<effect> [colour]' override, e.g. thinking = 'pulse blue'."
    )

    def validate(self, path: str) -> None:
        """Pins must fit the driver, and every pattern override must parse."""
        from agentd.gpio.patterns import check_overrides

        check_overrides(self.patterns, f"{path}.patterns")
        for i, pin in enumerate(self.pins):
            if not 0 <= pin <= 53:
                raise ConfigError(f"{path}.pins[{i}]", "out of range", pin, "0 to 53")
        if self.driver == "rgb" and len(self.pins) != 3:
            raise ConfigError(f"{path}.pins", "rgb needs 3 pins", list(self.pins), "[r, g, b]")
        if self.driver in ("gpio", "pwm") and not self.pins:
            raise ConfigError(f"{path}.pins", f"driver {self.driver!r} needs at least one pin")


@dataclass(frozen=True, slots=True)
class GpioConfig:
    enabled: bool = False
    pin_factory: Literal["auto", "lgpio", "rpigpio", "native", "mock"] = setting(
        "auto", doc="auto = gpiozero's own choice (lgpio on Bookworm); mock for tests."
    )
    buttons: ButtonsConfig = section(ButtonsConfig)
    leds: LedsConfig = section(LedsConfig)
    staff_call_pin: int = setting(-1, min=-1, max=53, doc="Output raised on a staff call.")
    staff_call_pulse_s: float = setting(3.0, min=0.1, max=60.0, doc="How long it stays high.")

    def validate(self, path: str) -> None:
        """No GPIO may be claimed twice (gpiozero would fail at start with GPIOPinInUse)."""
        used: dict[int, str] = {}
        for name, pin in self.claimed_pins():
            if pin in used:
                raise ConfigError(
                    f"{path}.{name}", f"GPIO{pin} is already used by {path}.{used[pin]}", pin
                )
            used[pin] = name

    def claimed_pins(self) -> list[tuple[str, int]]:
        """(key, BCM pin) for every GPIO this config drives or reads."""
        b = self.buttons
        pins = [
            (f"buttons.{n}.pin", c.pin)
            for n, c in (
                ("talk", b.talk),
                ("cancel", b.cancel),
                ("mute", b.mute),
                ("staff", b.staff),
            )
        ]
        if self.leds.driver in ("gpio", "pwm", "rgb"):
            pins += [(f"leds.pins[{i}]", p) for i, p in enumerate(self.leds.pins)]
        if self.leds.driver == "apa102":
            pins.append(("leds.apa102_power_pin", self.leds.apa102_power_pin))
        pins.append(("staff_call_pin", self.staff_call_pin))
        return [(name, pin) for name, pin in pins if pin >= 0]
