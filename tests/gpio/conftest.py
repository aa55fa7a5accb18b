"""Fixtures for GPIO tests: a fresh gpiozero MockFactory (PWM-capable pins) per test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentd.gpio.pins import make_pin_factory


@pytest.fixture
def factory() -> Iterator[Any]:
    """gpiozero's MockFactory, exactly as `gpio.pin_factory = "mock"` builds it."""
    mock = make_pin_factory("mock")
    before = set(threading.enumerate())
    yield mock
    mock.close()
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for t in leaked:  # gpiozero hold/blink threads end shortly after close(); wait for them
        t.join(timeout=2.0)
    assert not [t for t in leaked if t.is_alive()], f"threads leaked: {leaked}"


def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `predicate` every 5 ms (mock pins record state but cannot notify)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.005)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    return _wait_until
