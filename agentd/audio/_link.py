"""Shared bits of the device threads: capped backoff, link-state reporting, stats."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from agentd.events import LinkState

log = logging.getLogger("agentd.audio")

BACKOFF_FIRST_S = 0.2  # a replugged USB device usually re-enumerates within ~1 s
BACKOFF_FACTOR = 2.0
JITTER = 0.2  # +-20 %: kiosks on one power strip must not retry in lockstep

OnLink = Callable[[LinkState, str], None]


@dataclass(slots=True)
class DeviceStats:
    """Counters published in status/metrics; `frames` doubles as watchdog progress."""

    frames: int = 0
    xruns: int = 0
    underruns: int = 0
    reopens: int = 0
    errors: int = 0


class Backoff:
    """Capped exponential backoff with jitter; `reset()` after a success."""

    def __init__(self, max_s: float, first_s: float = BACKOFF_FIRST_S) -> None:
        self.max_s = max_s
        self.first_s = min(first_s, max_s)
        self._next = self.first_s

    def next_delay(self) -> float:
        delay = self._next * random.uniform(1 - JITTER, 1 + JITTER)
        self._next = min(self.max_s, self._next * BACKOFF_FACTOR)
        return min(delay, self.max_s)

    def reset(self) -> None:
        self._next = self.first_s


def report(callback: OnLink | None, name: str, state: LinkState, detail: str = "") -> None:
    """Log a link change and tell the owner; a failing callback never kills the thread."""
    log.info("%s link %s %s", name, state.value, detail)
    if callback is None:
        return
    try:
        callback(state, detail)
    except Exception:  # task boundary: the audio thread must survive its consumer
        log.exception("%s on_link callback failed", name)
