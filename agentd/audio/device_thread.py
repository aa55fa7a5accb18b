"""Shared bits of the ALSA device threads: link-state reporting and device counters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from agentd.events import LinkState

log = logging.getLogger("agentd.audio")

# A replugged USB device usually re-enumerates within ~1 s: retry soon after.
REOPEN_FIRST_S = 0.2

OnLink = Callable[[LinkState, str], None]


@dataclass(slots=True)
class DeviceStats:
    """Counters published in status/metrics; `frames` doubles as watchdog progress."""

    frames: int = 0
    xruns: int = 0
    underruns: int = 0
    reopens: int = 0
    errors: int = 0


def report(callback: OnLink | None, name: str, state: LinkState, detail: str = "") -> None:
    """Log a link change and tell the owner; a failing callback never kills the thread."""
    log.info("%s link %s %s", name, state.value, detail)
    if callback is None:
        return
    try:
        callback(state, detail)
    except Exception:  # task boundary: the audio thread must survive its consumer
        log.exception("%s on_link callback failed", name)
