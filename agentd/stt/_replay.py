"""Audio kept until its transcript is final, so a reconnect can replay it.

A websocket that drops mid-utterance takes the server's half-built turn with it, so
the new session must hear the whole utterance again, not just the tail. The buffer
holds every utterance ("segment") whose final has not arrived, re-chunks it to the
frame size the service wants, and knows where a ForceEndpoint belongs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final, Literal

ENDPOINT: Final = "endpoint"
Item = bytes | Literal["endpoint"] | None


@dataclass
class Segment:
    seg_id: int
    pcm: bytearray = field(default_factory=bytearray)
    ended: bool = False
    sent: int = 0  # bytes already handed to the current session
    endpoint_sent: bool = False
    finalized_part: bool = False  # the server already ended a turn inside this segment


class ReplayBuffer:
    """Unacknowledged utterances, bounded to `max_bytes` (oldest audio dropped first)."""

    def __init__(self, chunk_bytes: int, max_bytes: int) -> None:
        self.chunk_bytes = chunk_bytes
        self.max_bytes = max_bytes
        self.segments: deque[Segment] = deque()
        self.dropped_bytes = 0
        self.last_seg_id = -1  # the segment the last item from next_item() belongs to
        self._next_id = 0

    @property
    def pending(self) -> bool:
        return bool(self.segments)

    @property
    def open_segment(self) -> Segment | None:
        last = self.segments[-1] if self.segments else None
        return last if last is not None and not last.ended else None

    def open(self) -> Segment:
        """The open segment, starting a new one if the last has ended."""
        seg = self.open_segment
        if seg is None:
            seg = Segment(self._next_id)
            self._next_id += 1
            self.segments.append(seg)
        return seg

    def append(self, pcm: bytes) -> None:
        self.open().pcm.extend(pcm)
        self._trim()

    def pad_open_segment(self) -> int:
        """Zero-pad the open segment to a whole chunk so its tail can go out now.

        Returns the bytes added. Used when the voice pauses: the last word reaches the
        service up to one chunk (50 ms) sooner, and the caller skips as much of the
        following silence, so the audio timeline stays aligned.
        """
        seg = self.open_segment
        if seg is None:
            return 0
        pad = -(len(seg.pcm) - seg.sent) % self.chunk_bytes
        seg.pcm.extend(bytes(pad))
        return pad

    def end(self) -> Segment | None:
        """Close the open segment; an empty one is discarded (nothing to transcribe)."""
        seg = self.open_segment
        if seg is None:
            return None
        if not seg.pcm:
            self.segments.pop()
            return None
        seg.ended = True
        return seg

    def rewind(self) -> None:
        """A new session starts: everything unacknowledged is sent again."""
        for seg in self.segments:
            seg.sent = 0
            seg.endpoint_sent = False

    def next_item(self) -> Item:
        """The next chunk (full `chunk_bytes`, a padded tail), ENDPOINT, or None."""
        for seg in self.segments:
            self.last_seg_id = seg.seg_id
            remaining = len(seg.pcm) - seg.sent
            if remaining >= self.chunk_bytes:
                chunk = bytes(seg.pcm[seg.sent : seg.sent + self.chunk_bytes])
                seg.sent += self.chunk_bytes
                return chunk
            if not seg.ended:
                return None  # wait for more audio of the utterance in progress
            if remaining > 0:
                # The service rejects frames under 50 ms (close 3007): pad the tail.
                chunk = bytes(seg.pcm[seg.sent :]) + bytes(self.chunk_bytes - remaining)
                seg.sent = len(seg.pcm)
                return chunk
            if not seg.endpoint_sent:
                seg.endpoint_sent = True
                return ENDPOINT
        return None

    def acknowledge(self) -> Segment | None:
        """A final arrived: retire the oldest ended segment, or what the open one sent."""
        if not self.segments:
            return None
        first = self.segments[0]
        if first.ended:
            return self.segments.popleft()
        # The server endpointed inside an utterance still in progress (a pause): what it
        # heard so far is transcribed; keep only the rest.
        del first.pcm[: first.sent]
        first.sent = 0
        first.finalized_part = True
        return None

    def heard_before(self) -> bool:
        """The oldest segment already had a turn ended inside it (what is left is its tail)."""
        return bool(self.segments) and self.segments[0].finalized_part

    def drop_through(self, seg_id: int) -> None:
        """Abandon every segment up to and including `seg_id` (its final timed out)."""
        while self.segments and self.segments[0].seg_id <= seg_id:
            self.segments.popleft()

    def clear(self) -> None:
        self.segments.clear()

    def _trim(self) -> None:
        excess = sum(len(s.pcm) for s in self.segments) - self.max_bytes
        while excess > 0 and self.segments:
            first = self.segments[0]
            cut = min(excess, len(first.pcm))
            del first.pcm[:cut]
            first.sent = max(0, first.sent - cut)
            excess -= cut
            self.dropped_bytes += cut
            if not first.pcm and len(self.segments) > 1:
                self.segments.popleft()
