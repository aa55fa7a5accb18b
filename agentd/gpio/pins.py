"""Choose the gpiozero pin factory by name, following gpiozero's own conventions.

`auto` lets gpiozero pick (lgpio on Raspberry Pi OS Bookworm, then RPi.GPIO, pigpio,
native; GPIOZERO_PIN_FACTORY is honoured, as gpiozero documents). `mock` is gpiozero's
MockFactory with PWM-capable mock pins, for tests and `test-hardware` dry runs. There is
never a silent fallback to mock: if no real factory loads, GpioError says why each failed.

lgpio under systemd: importing lgpio creates notification FIFOs (`.lgd-nfy*`) in the
current working directory (or $LG_WD), so a read-only CWD makes lgpio fail and gpiozero
fall back (gpiozero/gpiozero#1106, joan2937/lg#22). The unit therefore sets
`RuntimeDirectory=agentd`, `WorkingDirectory=/run/agentd` and `Environment=LG_WD=/run/agentd`.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from agentd.errors import GpioError

# name -> (module, class), as in gpiozero.devices.Device._default_pin_factory.
FACTORIES: dict[str, tuple[str, str]] = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
}


def make_pin_factory(name: str) -> Any:
    """A gpiozero pin factory for config `gpio.pin_factory`; GpioError if none can load."""
    if name == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        # PWM-capable mock pins serve buttons too, and let PWMLED/RGBLED work on any pin.
        return MockFactory(pin_class=MockPWMPin)
    if name == "auto":
        return _auto_factory()
    if name not in FACTORIES:
        raise GpioError(f"gpio.pin_factory: unknown factory {name!r}")
    module_name, class_name = FACTORIES[name]
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)()
    except Exception as exc:  # any import/init failure of a third-party backend
        raise GpioError(f"gpio.pin_factory {name!r} is not usable here: {exc}") from exc


def _auto_factory() -> Any:
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Device.ensure_pin_factory()
        except Exception as exc:  # gpiozero raises BadPinFactory after trying each
            reasons = "; ".join(str(w.message) for w in caught) or str(exc)
            raise GpioError(
                f"gpio.pin_factory 'auto': no GPIO pin factory works here ({reasons}). "
                "Check that lgpio is installed, /dev/gpiochip* exists and the working "
                "directory is writable (LG_WD)"
            ) from exc
    factory = Device.pin_factory
    if isinstance(factory, MockFactory):
        raise GpioError(
            "gpio.pin_factory 'auto' resolved to gpiozero's MockFactory "
            "(GPIOZERO_PIN_FACTORY=mock?); set gpio.pin_factory = 'mock' explicitly"
        )
    return factory


def factory_name(factory: Any) -> str:
    """Short name of a factory instance for diagnostics ('lgpio', 'mock', ...)."""
    cls = type(factory).__name__
    for name, (_, class_name) in FACTORIES.items():
        if cls == class_name:
            return name
    return "mock" if cls == "MockFactory" else cls


def probe_factories() -> dict[str, str]:
    """For `agentd devices`: which factory modules import ("ok" or the error)."""
    result: dict[str, str] = {}
    for name, (module_name, _) in FACTORIES.items():
        try:
            importlib.import_module(module_name)
        except Exception as exc:  # report, never raise: this is a diagnostic
            result[name] = f"unavailable: {exc}"
        else:
            result[name] = "ok"
    return result
