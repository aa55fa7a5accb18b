"""`agentd bench engagement_array` (issue 14, item 2): the lobby heard by a 4-mic array.

With bystanders and the TV raised so they are about as loud at the array as a visitor,
the level gate alone starts many phantom turns; the channels' agreement removes them and
still hears every visitor. In the issue's own lobby the agreement costs no visitor.
"""

from __future__ import annotations

import pytest

from agentd.bench import engagement_array as bench
from agentd.sim.lobby import build_lobby
from agentd.sim.speech import tools_available

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not tools_available(), reason="espeak-ng and sox are needed"),
]


def test_the_array_lobby_plays_the_same_script() -> None:
    mono = build_lobby(2.0, seed=21)
    array = bench.array_lobby(2.0, 21, 0.0)
    assert [(s.source, s.start_ms, s.text) for s in array.spans] == [
        (s.source, s.start_ms, s.text) for s in mono.spans
    ]
    assert array.array_channels == 4 and len(array.array) == 4 * len(array.pcm)
    assert mono.array == b"" and mono.array_channels == 0


def test_agreement_removes_loud_far_phantoms_and_keeps_visitors() -> None:
    loud = bench.run_rows(bench.array_lobby(4.0, 14, bench.LOUD_DB), "loud")
    level_only, agreement = loud
    assert len(level_only.phantoms) >= 10  # the level gate is fooled by loud far talkers
    assert set(level_only.phantom_sources) <= {"bystander", "tv", "bystander+tv"}
    assert agreement.phantoms == [], agreement.phantom_sources
    assert agreement.expected >= 4 and agreement.activated == agreement.expected
    quiet = bench.run_rows(bench.array_lobby(4.0, 14, 0.0), "quiet")
    assert quiet[1].activated == quiet[1].expected and len(quiet[1].phantoms) <= len(
        quiet[0].phantoms
    )
    checks = bench.checks_for(loud + quiet)
    assert all(ok for _, _, ok in checks), checks


def test_main_prints_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--minutes", "1", "--seed", "3"]) in (0, 1)
    out = capsys.readouterr().out
    for row in ("array lobby: level only", "array loud lobby (+12 dB): level + agreement"):
        for figure in ("phantom / h", "recall", "CPU / audio s"):
            assert f"{row}: {figure}" in out
