"""`agentd bench turn_model` runs and reports its figures (no timing targets here)."""

from __future__ import annotations

import pytest

from agentd.audio.turn_model import DEFAULT_MODEL

pytest.importorskip("onnxruntime", reason="extra `turnmodel` not installed (scripts/setup.sh)")
if not DEFAULT_MODEL.is_file():
    pytest.skip("no model file: run scripts/fetch-turn-model.sh", allow_module_level=True)


def test_the_turn_model_bench_reports_cost_and_answers() -> None:
    """In a process of its own, as `agentd bench turn_model` runs: in a test worker that
    loaded a model before, the allocator reuses that memory and the RSS added reads 0."""
    import json
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "agentd", "bench", "turn_model", "--runs", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(run.stdout)
    assert report["runs"] == 2
    assert report["cpu_ms_per_inference"] > 0 and report["wall_ms_p50"] > 0
    assert report["rss_added_mib"] > 0
    for key in ("p_complete_finished", "p_complete_fragment"):
        assert 0.0 <= report[key] <= 1.0
