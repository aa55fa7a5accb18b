"""The simulated lobby is reproducible: a benchmark's phantom-turn count must not change
from run to run because a noise generator was seeded from the clock."""

from __future__ import annotations

import hashlib

from agentd.sim import speech
from agentd.sim.lobby import build_lobby


def _fresh(seed: int) -> bytes:
    """A lobby rendered anew, as another run would (the renders' in-process cache hid
    sox's randomly seeded dither: every run's speech differed in its last bits)."""
    speech.render_speech.cache_clear()
    speech.render_noise.cache_clear()
    return build_lobby(0.5, seed=seed).pcm


def test_the_same_seed_renders_the_same_lobby_and_another_seed_another() -> None:
    first, again, other = (_fresh(s) for s in (3, 3, 4))
    digest = [hashlib.sha256(pcm).hexdigest() for pcm in (first, again, other)]
    assert len(first) > 0
    assert digest[0] == digest[1]
    assert digest[0] != digest[2]
