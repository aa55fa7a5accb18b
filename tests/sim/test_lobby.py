"""The simulated lobby is reproducible: a benchmark's phantom-turn count must not change
from run to run because a noise generator was seeded from the clock."""

from __future__ import annotations

import hashlib

from agentd.sim.lobby import build_lobby


def test_the_same_seed_renders_the_same_lobby_and_another_seed_another() -> None:
    first, again, other = (build_lobby(0.5, seed=s) for s in (3, 3, 4))
    digest = [hashlib.sha256(lobby.pcm).hexdigest() for lobby in (first, again, other)]
    assert len(first.pcm) > 0
    assert digest[0] == digest[1]
    assert digest[0] != digest[2]
