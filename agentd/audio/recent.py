"""The last few seconds of captured chunks, kept by reference for a later look back.

Barge-in replays the onset it detected late, the near-field gate tests a mic array's
agreement over an onset it has just judged loud, the turn model hears a whole turn: each
keeps its own horizon of recent chunks, trimmed on the capture clock as chunks arrive
(an append and a comparison per chunk: cheap enough for the audio path).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from agentd.audio.format import AudioChunk


class RecentAudio:
    """Chunks whose start lies within `keep_ms` of the newest one's, oldest first."""

    def __init__(self, keep_ms: float) -> None:
        self.keep_ms = keep_ms
        self._chunks: deque[AudioChunk] = deque()

    def add(self, chunk: AudioChunk) -> None:
        chunks = self._chunks
        chunks.append(chunk)
        while chunks[0].at_ms < chunk.at_ms - self.keep_ms:
            chunks.popleft()

    def __iter__(self) -> Iterator[AudioChunk]:
        return iter(self._chunks)

    def __bool__(self) -> bool:
        return bool(self._chunks)
