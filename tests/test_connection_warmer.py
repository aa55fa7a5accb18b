"""ConnectionWarmer: one probe at a time, none while fresh, failures swallowed."""

from __future__ import annotations

import asyncio

import pytest

from agentd.connection_warmer import ConnectionWarmer

pytestmark = pytest.mark.timeout(10)


async def test_one_probe_at_a_time_and_none_while_fresh() -> None:
    release = asyncio.Event()
    calls = 0

    async def probe() -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    warmer = ConnectionWarmer("svc", probe)
    warmer.poke()
    warmer.poke()  # already running: no second connection
    await asyncio.sleep(0)
    assert calls == 1 and warmer.probes == 1
    release.set()
    await warmer.settled()
    warmer.poke()  # just succeeded: the pooled connection is still fresh
    await warmer.settled()
    assert calls == 1 and warmer.failures == 0
    await warmer.aclose()


async def test_failed_probe_is_counted_not_raised_and_retried_next_time() -> None:
    outcomes = [OSError("connection refused"), None]

    async def probe() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    warmer = ConnectionWarmer("svc", probe)
    warmer.poke()
    await warmer.settled()
    assert warmer.failures == 1
    warmer.poke()  # a failure leaves nothing fresh: try again
    await warmer.settled()
    assert warmer.probes == 2 and warmer.failures == 1 and not outcomes


async def test_aclose_cancels_a_hanging_probe() -> None:
    started = asyncio.Event()

    async def probe() -> None:
        started.set()
        await asyncio.Event().wait()

    warmer = ConnectionWarmer("svc", probe)
    warmer.poke()
    await started.wait()
    await warmer.aclose()
    await warmer.aclose()  # idempotent
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "warm-svc"]
