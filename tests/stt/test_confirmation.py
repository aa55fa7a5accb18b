"""Barge-in confirmation by words against u3-rt-pro's cadence (what bench audio prints)."""

from __future__ import annotations

import pytest

from agentd.bench.audio import _confirmation_checks
from agentd.config.sections_audio import BargeInConfig
from agentd.config.sections_stt import SttConfig
from agentd.sim.assemblyai_confirm import LINES, confirmation_ms
from agentd.sim.assemblyai_turns import U3_EARLY_PARTIAL_EXTRA_MS
from agentd.sim.speech import tools_available

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not tools_available(), reason="espeak-ng/sox missing"),
]


async def test_words_come_well_before_a_held_reply_resumes() -> None:
    ours = await confirmation_ms(LINES[1])
    server_default = await confirmation_ms(LINES[1], SttConfig(interruption_delay_ms=500))
    early = SttConfig().interruption_delay_ms + U3_EARLY_PARTIAL_EXTRA_MS
    assert early <= ours < BargeInConfig().resume_after_false_s * 1000
    # asking for the early partial sooner is what makes it come sooner
    assert server_default - ours >= 200


def test_bench_audio_reports_the_confirmation_time() -> None:
    checks = _confirmation_checks()
    names = [name for name, _, _ in checks]
    assert names == [
        "confirmation by words, u3-rt-pro p50 (ms)",
        "confirmation by words, u3-rt-pro max (ms)",
    ]
    assert all(ok for _, _, ok in checks)
    assert 0 < float(checks[1][1]) < 1500
