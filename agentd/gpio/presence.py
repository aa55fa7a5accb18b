"""Presence sensor: someone in front of the kiosk, from a PIR or an mmWave sensor's OUT pin.

A PIR (HC-SR501, AM312) is read through gpiozero's `MotionSensor` (which smooths its
jittery output over a short queue); an mmWave radar such as the HLK-LD2410 drives its
OUT pin high while a person is in range, even sitting still, and is read as a plain
`DigitalInputDevice`. gpiozero calls back on its own thread; each change is posted as a
`PresenceChanged` fact through `post` (the conversation's inbox, safe from any thread).

A sensor that cannot be claimed (pin in use, no GPIO) is a GpioError the kiosk reports
as a degraded state: the kiosk still runs, on the other engagement modes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentd.config.sections_engagement import PresenceConfig
from agentd.errors import GpioError
from agentd.events import now_ms

log = logging.getLogger(__name__)
SETTLE_S = 1.0  # far above MotionSensor's default queue fill time (1 sample at 10 Hz)


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """Someone arrived in front of the kiosk (`present`) or is no longer detected."""

    present: bool
    at_ms: float = field(default_factory=now_ms)


class PresenceSensor:
    """One presence input; `close()` idempotent. See the module docstring."""

    def __init__(
        self, config: PresenceConfig, factory: Any, post: Callable[[object], None]
    ) -> None:
        self.config = config
        self._post = post
        self._closed = False
        try:
            if config.sensor == "pir":
                from gpiozero import MotionSensor

                self._device: Any = MotionSensor(
                    config.pin,
                    pull_up=config.pull_up if config.pull_up else None,
                    active_state=config.active_high if not config.pull_up else None,
                    pin_factory=factory,
                )
            else:
                from gpiozero import DigitalInputDevice

                self._device = DigitalInputDevice(
                    config.pin,
                    pull_up=config.pull_up if config.pull_up else None,
                    active_state=config.active_high if not config.pull_up else None,
                    pin_factory=factory,
                )
        except Exception as exc:  # gpiozero: pin in use, bad pin, no permission
            raise GpioError(
                f"engagement.presence.pin: cannot use GPIO{config.pin} ({config.sensor}): {exc}"
            ) from exc
        self._device.when_activated = lambda: self._changed(True)
        self._device.when_deactivated = lambda: self._changed(False)
        self._settle()
        if self.present:  # someone was already there: gpiozero fires no edge for that
            self._changed(True)

    def _settle(self) -> None:
        """Wait (bounded) until gpiozero has registered the initial state.

        A smoothed MotionSensor registers it from its queue thread once the queue has
        filled (queue_len / sample_rate: 0.1 s by default) and fires no callback for it;
        an edge before that would be lost.
        """
        device = self._device
        for _ in range(int(SETTLE_S / 0.01)):
            if device.wait_for_active(0) or device.wait_for_inactive(0):
                return
            device.wait_for_active(0.01)

    @property
    def present(self) -> bool:
        return bool(self._device.is_active)

    @property
    def pin(self) -> Any:
        """The gpiozero pin (tests drive a MockFactory pin through it)."""
        return self._device.pin

    def _changed(self, present: bool) -> None:
        try:
            self._post(PresenceChanged(present))
        except RuntimeError:  # loop closed during shutdown
            log.debug("presence change dropped: event loop closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._device.close()
