"""One capped exponential backoff with jitter, for every link that reconnects.

ALSA devices, the STT socket and the MQTT connection all retry with it, so a fleet
behaves the same way on every link: quick first retries (a replugged USB device
re-enumerates within ~1 s; a dropped socket mid-utterance should cost well under a
second), doubling up to a cap, and jitter so kiosks on one power strip or one Wi-Fi
access point do not retry in lockstep. Never gives up: the cap is the slowest pace.
"""

from __future__ import annotations

import random

BACKOFF_FACTOR = 2.0
JITTER = 0.2  # +-20 %: enough to spread a fleet, small enough to keep the cap meaningful


class Backoff:
    """Capped exponential backoff with jitter; `reset()` after a success."""

    def __init__(self, max_s: float, first_s: float = 0.2) -> None:
        self.max_s = max_s
        self.first_s = min(first_s, max_s)
        self._next = self.first_s
        self.attempts = 0  # delays handed out since the last reset

    def next_delay(self) -> float:
        """The delay before the next attempt (seconds), then grow the next one."""
        delay = self._next * random.uniform(1 - JITTER, 1 + JITTER)
        self._next = min(self.max_s, self._next * BACKOFF_FACTOR)
        self.attempts += 1
        return min(delay, self.max_s)

    def reset(self) -> None:
        """A connection succeeded (and proved stable): start again from `first_s`."""
        self._next = self.first_s
        self.attempts = 0
