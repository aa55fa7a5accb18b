"""Shared helpers for the STT tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

RATE = 16000
KEY = "stt-test-key"
TEXTS = ["Hello, I have a meeting with Anna Schmidt at ten.", "Where can I get a coffee?"]


class Collector:
    """The `emit` callback: records events and asserts it runs on the loop thread."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.loop_thread = threading.get_ident()
        self._changed = asyncio.Event()

    def __call__(self, event: object) -> None:
        assert threading.get_ident() == self.loop_thread, "emit() off the loop thread"
        self.events.append(event)
        self._changed.set()

    def of(self, cls: type[Any], **fields: Any) -> list[Any]:
        return [
            e
            for e in self.events
            if isinstance(e, cls) and all(getattr(e, k) == v for k, v in fields.items())
        ]

    async def wait(
        self, cls: type[Any], count: int = 1, within_s: float = 10.0, **fields: Any
    ) -> Any:
        async with asyncio.timeout(within_s):
            while True:
                self._changed.clear()
                hits = self.of(cls, **fields)
                if len(hits) >= count:
                    return hits[count - 1]
                await self._changed.wait()
