"""The lobby as a mic array hears it: every sound placed where it would be in the room.

`build_lobby(..., room=RoomMixer.factory(renderer))` plays the same script (the same
seed gives the same people, lines, times and levels) but mixes each sound through the
multi-channel room model (`agentd.sim.room`) from a place chosen for its kind:

| source | distance | why |
|---|---|---|
| visitor | 0.5-1.0 m, in front (+-40 deg) | at the kiosk (issue 14) |
| bystander | 3-5 m, anywhere | the issue's bystanders; each conversation stands still |
| TV / music | 5 m, 70 deg | one set on a wall |
| door | 7 m, -120 deg | across the lobby |
| footsteps | 1.5-4 m | people walking past |

A sound keeps its level at the array (the lobby's levels are levels at the mic) as a
steady-state level: the room's energy gain is divided out (`render_steady`). `far_gain_db`
raises bystanders and the TV - raised voices, a TV turned up: the cases the level gate
alone cannot tell from a visitor. Placements come from their own seeded generator, so
the lobby's script (its own generator) is untouched.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from agentd.sim.lobby import RATE, Lobby
from agentd.sim.room import RoomRenderer, diffuse_copies

PLACES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "visitor": ((0.5, 1.0), (-40.0, 40.0)),
    "bystander": ((3.0, 5.0), (-180.0, 180.0)),
    "tv": ((5.0, 5.0), (70.0, 70.0)),
    "door": ((7.0, 7.0), (-120.0, -120.0)),
    "steps": ((1.5, 4.0), (-180.0, 180.0)),
}
FAR_KINDS = ("bystander", "tv")  # what far_gain_db raises
DISTANCE_STEP_M = 0.25  # placements are quantised so RIRs are reused (one per spot)
AZIMUTH_STEP_DEG = 15.0


class RoomMixer:
    """A lobby mixer with one channel per mic of `renderer.array` (see module doc)."""

    def __init__(
        self,
        duration_ms: float,
        renderer: RoomRenderer,
        *,
        seed: int = 0,
        far_gain_db: float = 0.0,
        mono_channel: int = -1,
    ) -> None:
        self.renderer = renderer
        self.far_gain_db = far_gain_db
        self.mono_channel = mono_channel  # as audio.capture.channel: -1 = the mics' mean
        samples = int(duration_ms * RATE / 1000)
        self.channels = np.zeros((renderer.array.channels, samples), dtype=np.float32)
        self._rng = random.Random(seed * 7919 + 17)
        self._places: dict[str, tuple[float, float]] = {}

    @staticmethod
    def factory(
        renderer: RoomRenderer, *, seed: int = 0, far_gain_db: float = 0.0, mono_channel: int = -1
    ) -> Callable[[float], RoomMixer]:
        return lambda duration_ms: RoomMixer(
            duration_ms, renderer, seed=seed, far_gain_db=far_gain_db, mono_channel=mono_channel
        )

    def place(self, source: str) -> tuple[str, float, float]:
        """(kind, distance m, azimuth deg) of a source; the same source stays put."""
        kind = next((k for k in PLACES if source.startswith(k)), "steps")
        if source not in self._places:
            (near, far), (left, right) = PLACES[kind]
            distance = round(self._rng.uniform(near, far) / DISTANCE_STEP_M) * DISTANCE_STEP_M
            azimuth = round(self._rng.uniform(left, right) / AZIMUTH_STEP_DEG) * AZIMUTH_STEP_DEG
            self._places[source] = (distance, azimuth)
        distance, azimuth = self._places[source]
        return kind, distance, azimuth

    def add(self, signal: np.ndarray, at_ms: float, source: str = "") -> float:
        kind, distance, azimuth = self.place(source)
        wet = self.renderer.render_steady(signal, distance, azimuth)
        if kind in FAR_KINDS and self.far_gain_db:
            wet *= 10 ** (self.far_gain_db / 20)
        start = int(at_ms * RATE / 1000)
        piece = wet[:, : max(0, self.channels.shape[1] - start)]
        self.channels[:, start : start + piece.shape[1]] += piece
        return at_ms + len(signal) / RATE * 1000  # the script's clock: the dry sound's end

    def add_room_tone(self, loop: np.ndarray) -> None:
        """The room tone is diffuse: every mic hears it, coherent only as the field is."""
        tone = diffuse_copies(loop.astype(np.float64), self.renderer.array, RATE)
        tone *= float(np.std(loop)) / max(float(np.mean(np.std(tone, axis=1))), 1e-9)
        reps = -(-self.channels.shape[1] // tone.shape[1])
        self.channels += np.tile(tone, reps)[:, : self.channels.shape[1]].astype(np.float32)

    def output(self, lobby: Lobby) -> None:
        """The mics (interleaved) and the mono signal `audio.capture.channel =
        mono_channel` gives: one mic, or (-1) their mix."""
        clipped = np.clip(np.round(self.channels), -32768, 32767).astype("<i2")
        lobby.array = clipped.T.tobytes()
        lobby.array_channels = clipped.shape[0]
        if self.mono_channel >= 0:
            lobby.pcm = clipped[self.mono_channel].tobytes()
            return
        mix = clipped.astype(np.float32).mean(axis=0)
        lobby.pcm = np.clip(np.round(mix), -32768, 32767).astype("<i2").tobytes()
