"""`agentd bench turn_model` runs and reports its figures (no timing targets here)."""

from __future__ import annotations

import pytest

from agentd.audio.turn_model import DEFAULT_MODEL

pytest.importorskip("onnxruntime", reason="extra `turnmodel` not installed (scripts/setup.sh)")
if not DEFAULT_MODEL.is_file():
    pytest.skip("no model file: run scripts/fetch-turn-model.sh", allow_module_level=True)


def test_the_turn_model_bench_reports_cost_and_answers() -> None:
    from agentd.bench.turn_model import measure

    report = measure(runs=2)
    assert report["runs"] == 2
    assert report["cpu_ms_per_inference"] > 0 and report["wall_ms_p50"] > 0
    assert report["rss_added_mib"] > 0
    for key in ("p_complete_finished", "p_complete_fragment"):
        assert 0.0 <= report[key] <= 1.0
