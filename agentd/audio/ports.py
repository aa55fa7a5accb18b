"""What a capture or playback device offers, ALSA or simulated (`typing.Protocol`s).

The ALSA devices (`alsa_capture`, `alsa_playback`) and the simulator's mic and speaker
satisfy the same Protocols, checked by mypy where the composition root builds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from agentd.audio.device_thread import DeviceStats
from agentd.audio.format import AudioChunk
from agentd.audio.reference import ReferenceTap
from agentd.events import LinkState

OnChunk = Callable[[AudioChunk], None]


class CaptureDevice(Protocol):
    """The mic: delivers mono chunks from its own thread until closed."""

    state: LinkState
    stats: DeviceStats

    def start(self, on_frame: OnChunk) -> None: ...

    def close(self) -> None: ...


class PlaybackDevice(Protocol):
    """The loudspeaker: plays queued PCM on its own clock, reports what it played."""

    state: LinkState
    stats: DeviceStats
    reference: ReferenceTap

    @property
    def is_playing(self) -> bool: ...

    def write(self, pcm: bytes) -> None: ...

    def cancel(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def set_volume(self, gain: float) -> None: ...

    def close(self) -> None: ...
