"""Deadline sleeps for the emulators' latency injection.

Relative sleeps add the event loop's timer slack (and any GIL wait) at every step, so a
reply paced with them drifts later than its profile; a benchmark that subtracts the
profile would charge that drift to the daemon. Deadlines keep the emulated service time
exactly what the profile says, measured from the request's arrival.
"""

from __future__ import annotations

import asyncio
import time


async def sleep_until(deadline: float) -> None:
    """Sleep until time.monotonic() reaches `deadline` (asyncio's clock is the same)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
