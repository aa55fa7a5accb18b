"""What the HTTP emulators (OpenAI, ElevenLabs) share: deadline sleeps, client identity.

Latency is injected with deadlines, not relative sleeps: relative sleeps add the event
loop's timer slack (and any GIL wait) at every step, so a reply paced with them drifts
later than its profile, and a benchmark that subtracts the profile would charge that
drift to the daemon. Deadlines keep the emulated service time what the profile says,
measured from the request's arrival.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web


async def sleep_until(deadline: float) -> None:
    """Sleep until time.monotonic() reaches `deadline` (asyncio's clock is the same)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def peer(request: web.Request) -> Any:
    """The client's (host, port): tells which pooled connection carried a request."""
    return request.transport.get_extra_info("peername") if request.transport else None
