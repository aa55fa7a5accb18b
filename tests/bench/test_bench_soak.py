"""`agentd bench soak --quick`: the real daemon through barge-ins, cancels and every fault kind.

The CI-sized soak (QUICK_TURNS real-time turns, ~70 s). The full 500-turn run is the
bench command; this checks that the quick run meets the same targets and that it really
exercised what it claims (faults reported, cancels sent, barge-ins seen).
"""

from __future__ import annotations

import json
import threading

import pytest

from agentd.bench import soak
from agentd.sim.speech import tools_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not tools_available(), reason="espeak-ng and sox are needed"),
]


def test_plan_is_reproducible_and_covers_every_kind() -> None:
    plan = soak.make_plan(40, seed=3)
    assert plan == soak.make_plan(40, seed=3)
    assert plan != soak.make_plan(40, seed=4)
    assert plan[0] == "plain"
    assert set(plan) == set(soak.PLAN_WEIGHTS)
    scenario = soak.make_scenario(plan, seed=3)
    barged = [i for i, t in enumerate(scenario["turn"]) if t.get("barge_in_after_ms")]
    assert barged == [i + 1 for i, kind in enumerate(plan[:-1]) if kind == "barge_in"]


def test_quick_soak_meets_targets(capsys: pytest.CaptureFixture[str]) -> None:
    threads_before = threading.active_count()
    code = soak.main(["--quick", "--json", "--seed", "5"])
    report = json.loads(capsys.readouterr().out)
    assert report["failures"] == [], report
    assert code == 0
    assert report["visitor_turns_played"] == soak.QUICK_TURNS
    assert report["stuck_states"] == 0
    # Not vacuous: the run did hit the daemon with what the plan says.
    assert report["turns_completed"] >= soak.QUICK_TURNS // 2
    assert report["outcomes"].get("ok", 0) >= 3
    assert report["outcomes"].get("cancelled", 0) >= 1
    assert report["cancels_sent"] >= 1
    assert report["barge_ins"] >= 1
    assert sum(report["faults_reported"].values()) >= 4
    assert report["start"]["rss_kb"] > 0 and report["end"]["rss_kb"] > 0
    assert report["daemon_exit"] == 0
    assert threading.active_count() <= threads_before
