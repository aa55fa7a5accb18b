"""The audio turn model inside the real daemon (`[turn_end] audio_model = true`).

Wiring only: the daemon loads the real model, asks it about the ambiguous pause ("I'm
here to see" - no full stop, not trailing off) off the loop, and the answer comes back
to the conversation. What the model answers is not asserted: on espeak-ng speech it is
at chance (docs/benchmarks.md), and nothing may be tuned to synthetic speech.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentd.audio.turn_model import DEFAULT_MODEL
from agentd.events import AgentState
from agentd.sim.harness import SimulatedKiosk

pytest.importorskip("onnxruntime", reason="extra `turnmodel` not installed (scripts/setup.sh)")
if not DEFAULT_MODEL.is_file():
    pytest.skip("no model file: run scripts/fetch-turn-model.sh", allow_module_level=True)


async def test_the_daemon_asks_the_model_about_an_ambiguous_pause(
    make_kiosk: Callable[..., SimulatedKiosk], no_leaks: None
) -> None:
    kiosk = make_kiosk(
        [{"visitor": "I'm here to see <pause 900> Anna Schmidt.", "reply": "Anna is coming."}],
        extra_toml="[turn_end]\naudio_model = true\n",
    )
    await kiosk.start()
    try:
        turn_audio = kiosk.conversation.parts.turn_audio
        assert turn_audio is not None
        await kiosk.wait_for(lambda: turn_audio.answered >= 1, timeout_s=25)
        await kiosk.wait_for(lambda: len(kiosk.observed.turns) >= 1, timeout_s=25)
        await kiosk.wait_for(lambda: kiosk.conversation.state is AgentState.IDLE)
        answers = list(turn_audio.answers)
        failed = turn_audio.failed
    finally:
        assert await kiosk.stop() == 0
    assert failed == 0
    for answer in answers:
        assert 0.0 <= answer.complete_probability <= 1.0
        # It heard the turn up to the pause: "I'm here to see" (~0.8 s) with 500 ms
        # before the voice and a 200 ms tail - not the room before it, not 8 s.
        assert 1000 <= answer.audio_ms <= 3000
