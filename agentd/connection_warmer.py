"""Open the HTTPS connection to a cloud service while the visitor is still speaking.

A turn's LLM and TTS requests sit on the critical path from the end of speech to the
first reply sample. After a few idle seconds (httpx drops pooled connections after 5 s)
or a cancelled stream (barge-in closes the connection), each request would begin with
a TCP and TLS handshake: 2-4 round trips, 30-150 ms from a kiosk over Wi-Fi. A cheap
authenticated GET on the same client (so the same pool) when speech starts, and again at
the local endpoint if the connection may have gone stale, leaves a warm connection for
the request that matters. Failures are logged at debug level and otherwise ignored: the
real request reports problems on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0  # longer than a handshake over a poor link, shorter than a turn
# httpx keeps an idle pooled connection for 5 s: younger than this, it is still there.
FRESH_S = 4.0


class ConnectionWarmer:
    """Runs `probe` in the background, at most one at a time and not when still fresh."""

    def __init__(self, name: str, probe: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self._probe = probe
        self._task: asyncio.Task[None] | None = None
        self._warmed_at = -FRESH_S  # time.monotonic() of the last probe that succeeded
        self.probes = 0  # started, for tests and metrics
        self.failures = 0

    def poke(self) -> None:
        """Warm the connection unless a probe is running or one just succeeded."""
        if self._task is not None and not self._task.done():
            return
        if time.monotonic() - self._warmed_at < FRESH_S:
            return
        self.probes += 1
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"warm-{self.name}")

    async def _run(self) -> None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await self._probe()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # task boundary: a failed probe must never surface
            self.failures += 1
            log.debug("%s: connection warm-up failed: %s", self.name, type(exc).__name__)
            return
        self._warmed_at = time.monotonic()

    async def settled(self) -> None:
        """Wait for a running probe to finish (it never raises)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel a running probe; idempotent."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
