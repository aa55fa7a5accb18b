"""The conversation's inbox: events from other threads reach the loop, control first.

Mic chunks arrive from the capture thread every period; commands from gpiozero's and
paho's threads (and from the loop itself) at any time. Each post schedules one pump on
the loop; a pump hands over every pending control event before at most one audio
chunk. So when the loop falls behind (a burst of work, a slow SD card), a cancel, a
mute or a push-to-talk press overtakes the backlog of mic audio instead of waiting
behind it - the "control events outrank audio" rule of the house style.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from agentd.audio.format import AudioChunk


class Inbox:
    """Two tiers onto one loop; `post*` are safe from any thread and never block."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_control: Callable[[object], None],
        on_audio: Callable[[AudioChunk], None],
    ) -> None:
        self._loop = loop
        self._on_control = on_control
        self._on_audio = on_audio
        # deque.append/popleft are atomic in CPython: producers need no lock.
        self._control: deque[object] = deque()
        self._audio: deque[AudioChunk] = deque()

    def post(self, event: object) -> None:
        """A control event (command or fact) for the conversation."""
        self._control.append(event)
        self._loop.call_soon_threadsafe(self._pump)

    def post_audio(self, chunk: AudioChunk) -> None:
        """One captured mic chunk (capture thread)."""
        self._audio.append(chunk)
        self._loop.call_soon_threadsafe(self._pump)

    @property
    def audio_backlog(self) -> int:
        return len(self._audio)

    def _pump(self) -> None:
        control = self._control
        while control:
            self._on_control(control.popleft())
        if self._audio:
            self._on_audio(self._audio.popleft())
