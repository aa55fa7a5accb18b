"""Tees that let turn capture see what STT heard and what the agent played.

They wrap the conversation's recorder and speaker (the `Recorder` and `Speaker` ports),
forward every call unchanged, and copy the audio to `TurnCapture`, which keeps it only
while a captured turn is open. The composition wraps the parts only when
`privacy.allow_remote_capture` is set, so a kiosk that may not capture has no tee at all.
"""

from __future__ import annotations

from agentd.conversation.ports import Recorder, Speaker
from agentd.diagnostics.capture import TurnCapture


class CaptureRecorder:
    """A `Recorder` that also hands each chunk STT receives to the capture."""

    def __init__(self, inner: Recorder, capture: TurnCapture) -> None:
        self.inner = inner
        self.capture = capture

    def add(self, pcm: bytes) -> None:
        self.inner.add(pcm)
        self.capture.heard(pcm)

    def save(self, turn_id: str) -> None:
        self.inner.save(turn_id)

    def discard(self) -> None:
        self.inner.discard()
        self.capture.discard()


class CaptureSpeaker:
    """A `Speaker` that copies what is written, cut back to what played on a cancel."""

    def __init__(self, inner: Speaker, capture: TurnCapture) -> None:
        self.inner = inner
        self.capture = capture

    @property
    def volume(self) -> float:
        return self.inner.volume

    @property
    def is_playing(self) -> bool:
        return self.inner.is_playing

    def write(self, pcm: bytes) -> None:
        self.capture.played(pcm, self.inner.played_bytes())
        self.inner.write(pcm)

    def cancel(self) -> None:
        self.inner.cancel()
        self.capture.playback_cut(self.inner.played_bytes())

    def pause(self) -> None:
        self.inner.pause()

    def resume(self) -> None:
        self.inner.resume()

    def set_volume(self, gain: float) -> None:
        self.inner.set_volume(gain)

    def played_bytes(self) -> int:
        return self.inner.played_bytes()

    async def wait_idle(self) -> None:
        await self.inner.wait_idle()
