"""`agentd bench turns --quick` through the real daemon: both policies, a complete report.

The targets live in the benchmark (`agentd bench turns`, docs/benchmarks.md), not here: the
quick corpus has two turns of each kind, so one cut-off is 12 % of it.
"""

from __future__ import annotations

from pathlib import Path

from agentd.bench.turns import QUICK, run_bench
from agentd.bench.turns_corpus import corpus


async def test_quick_bench_runs_both_policies_and_reports_them(tmp_path: Path) -> None:
    turns = corpus(QUICK)
    assert {t.kind for t in turns} == {"complete", "hesitant", "short", "filler"}
    report = await run_bench(turns, tmp_path)
    fixed, adaptive = report["fixed"], report["adaptive"]
    assert fixed["turns"] == adaptive["turns"] == len(turns) == 8
    assert adaptive["unanswered"] == 0 and fixed["unanswered"] == 0
    # The fixed-silence policy cuts hesitant visitors off: the bench must see it,
    # and the adaptive policy must cut off fewer.
    assert fixed["cut_off_by_kind"]["hesitant"] >= 1
    assert adaptive["cut_off_rate"] < fixed["cut_off_rate"]
    assert adaptive["speculations_dropped"] >= 1
    # Every reply dropped unheard made its request(s), and each reported its record.
    assert adaptive["llm_requests_wasted"] >= adaptive["speculations_dropped"]
    assert adaptive["superseded"] >= adaptive["speculations_dropped"]
    assert set(report["targets"]) == {"cut_offs", "complete_p50", "hesitant_p95", "all_answered"}


def test_full_corpus_has_the_issue_mix() -> None:
    turns = corpus()
    kinds = [t.kind for t in turns]
    assert len(turns) >= 60
    assert kinds.count("complete") >= 20 and kinds.count("hesitant") >= 20
    assert kinds.count("short") >= 10 and kinds.count("filler") >= 10
    from agentd.sim.utterance import parse

    for turn in turns:
        pauses = [s.pause_after_ms for s in parse(turn.visitor)[:-1]]
        if turn.kind == "hesitant":
            assert 1 <= len(pauses) <= 3 and all(300 <= p <= 1500 for p in pauses)
        if turn.kind in ("complete", "short"):
            assert pauses == []
