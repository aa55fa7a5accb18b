"""A private asyncio loop on a background thread: how emulators serve synchronous code.

The demo, the benchmarks, `agentd emulators` and tests that drive a synchronous SDK need
emulators whose sockets keep being served while the caller's thread blocks, and the
latency benchmark needs their work off the daemon's loop. One helper serves them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Server(Protocol):
    """What `running_in_thread` needs: the emulators' async start/stop."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


class BackgroundLoop:
    """An event loop running on its own thread between `start()` and `stop()`."""

    def __init__(self, name: str, *, precise_timers: bool = False) -> None:
        self.name = name
        if precise_timers:
            # epoll (the default) rounds every timer up to the next millisecond, so each
            # injected latency would come 0-1 ms late; select() takes microseconds. Only
            # for a process of its own: select() cannot watch descriptors >= 1024.
            self._loop: asyncio.AbstractEventLoop = asyncio.SelectorEventLoop(
                selectors.SelectSelector()
            )
        else:
            self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=self.name, daemon=True
        )
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError(f"{self.name}: event loop thread did not start")

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()
        # to_thread() workers and async generators belong to this loop: end them here.
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        """Run `coro` on the loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def stop(self) -> None:
        """Stop the loop and join its thread; idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        thread.join(10.0)


@contextlib.contextmanager
def running_in_thread(server: S, name: str = "emulator") -> Iterator[S]:
    """Serve `server` from a background loop for the duration of the `with` block."""
    background = BackgroundLoop(name)
    background.start()
    try:
        background.call(server.start())
        yield server
    finally:
        with contextlib.suppress(Exception):  # a failed stop must not hide the block's error
            background.call(server.stop(), 10.0)
        background.stop()
