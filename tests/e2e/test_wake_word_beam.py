"""The wake word's front beam through the real daemon: a 4-mic profile with its geometry
builds the beam from config, a visitor at 0.7 m off to one side says "Okay Nabu, ..." and
is answered (by any reply: the emulated LLM's fallback answers this turn, not its script);
with `input = "mix"` the same daemon builds none (docs/engagement.md "Front beam")."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentd.sim.harness import SimulatedKiosk
from tests.e2e.conftest import FAST, write_scenario

pytest.importorskip("pymicro_wakeword")
pytestmark = pytest.mark.timeout(120)

ARRAY_TOML = """
[audio.capture]
channels = 4
array_geometry = "respeaker-4mic"

[engagement]
modes = ["wake_word"]
"""


@pytest.mark.parametrize("heard_by", ["beam", "mix"])
async def test_a_wake_word_at_the_side_of_the_front_engages_the_array_kiosk(
    tmp_path: Path, heard_by: str
) -> None:
    turns = [
        {"visitor": "Okay Nabu, where is the lift, please?", "reply": "It is on your right.",
         "pause_before_ms": 1500, "distance_m": 0.7, "azimuth_deg": 30.0},
    ]  # fmt: skip
    scenario = write_scenario(tmp_path / "s.toml", turns, tail_ms=4000)
    extra = ARRAY_TOML + f'\n[engagement.wake_word]\ninput = "{heard_by}"\n'
    kiosk = SimulatedKiosk(scenario, tmp_path / "out", profile=FAST, extra_toml=extra)
    try:
        service = await kiosk.start()
        assert service.conversation is not None
        engagement = service.conversation.engagement
        assert (engagement.wake_beam is not None) == (heard_by == "beam")
        await kiosk.wait_for(lambda: engagement.stats.wake_words >= 1, 40)
        await kiosk.wait_for(lambda: bool(kiosk.observed.turns), 40)
    finally:
        await kiosk.stop()
    assert engagement.stats.wake_words_far == 0
    assert any(who == "agent" for who, _ in kiosk.observed.lines)  # the visitor was answered
