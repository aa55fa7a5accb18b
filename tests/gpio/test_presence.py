"""Presence sensor (issue 14): PIR (MotionSensor) and mmWave OUT (DigitalInputDevice) on
gpiozero's MockFactory; every change is posted as a PresenceChanged fact."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from agentd.config.sections_engagement import PresenceConfig
from agentd.errors import GpioError
from agentd.gpio.presence import PresenceChanged, PresenceSensor


class Posted:
    def __init__(self) -> None:
        self.events: list[PresenceChanged] = []
        self._lock = threading.Lock()

    def __call__(self, event: object) -> None:
        assert isinstance(event, PresenceChanged)
        with self._lock:
            self.events.append(event)

    def states(self) -> list[bool]:
        with self._lock:
            return [e.present for e in self.events]


@pytest.mark.parametrize("sensor", ["mmwave", "pir"])
def test_arrival_and_departure_are_posted(
    factory: Any, wait_until: Callable[..., None], sensor: str
) -> None:
    posted = Posted()
    presence = PresenceSensor(PresenceConfig(pin=17, sensor=sensor), factory, posted)
    try:
        presence.pin.drive_high()
        wait_until(lambda: posted.states() == [True])
        assert presence.present
        presence.pin.drive_low()
        wait_until(lambda: posted.states() == [True, False])
    finally:
        presence.close()
        presence.close()  # idempotent


def test_active_low_open_collector_output(factory: Any, wait_until: Callable[..., None]) -> None:
    posted = Posted()
    presence = PresenceSensor(PresenceConfig(pin=27, pull_up=True), factory, posted)
    try:
        presence.pin.drive_low()
        wait_until(lambda: posted.states() == [True])
    finally:
        presence.close()


def test_pin_in_use_is_a_gpio_error(factory: Any) -> None:
    from gpiozero import Button

    button = Button(17, pin_factory=factory)
    try:
        with pytest.raises(GpioError, match=r"engagement.presence.pin: cannot use GPIO17"):
            PresenceSensor(PresenceConfig(pin=17), factory, Posted())
    finally:
        button.close()


def test_someone_already_there_at_start_is_posted(factory: Any) -> None:
    posted = Posted()
    factory.pin(22).drive_high()
    presence = PresenceSensor(PresenceConfig(pin=22, sensor="pir"), factory, posted)
    try:
        assert posted.states() == [True]
    finally:
        presence.close()
