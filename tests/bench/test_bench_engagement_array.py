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
    assert set(level_only.phantom_sources) <= {"bystander", "tv", "bystander+tv", "music"}
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
    for heard_by in ("single mic", "mix", "front beam", "front beam, mics +-1 dB +-3 deg"):
        for figure in ("", ": by azimuth -40/-20/0/20/40", ": false accepts"):
            assert f"array lobby: wake words heard by the {heard_by}{figure} " in out
    assert "loud lobby (+12 dB): wake words" not in out  # trials only in the lobby


def test_the_front_beam_hears_more_wake_words_than_one_mic_without_false_accepts() -> None:
    """The quick lobby's trials (a handful: a smoke test of the rows; the figures with
    CIs come from the 30-minute run in docs/engagement.md)."""
    from agentd.bench.wake_array import wake_rows

    lobby = bench.array_lobby(4.0, 14, 0.0)
    rows = dict(
        (name, value)
        for name, value, _ in wake_rows(lobby, bench.lobby_renderer(14), "quick", mismatch=False)
    )
    mix = rows["array quick: wake words heard by the single mic"]
    beam = rows["array quick: wake words heard by the front beam"]
    heard = [int(v.split("/")[0]) for v in (mix, beam)]
    trials = int(beam.split("/")[1].split()[0])
    assert trials >= 5 and heard[1] >= heard[0] and heard[1] >= trials // 2, (mix, beam)
    assert rows["array quick: wake words heard by the front beam: false accepts"] == "0"
    cpu = float(rows["array quick: front beam CPU / audio s"])
    assert 0 < cpu < 0.02  # a core fraction: well within the wake word's 2 % with the detector


def test_the_variants_table_names_its_weights() -> None:
    import numpy as np

    from agentd.audio import beam
    from agentd.bench.wake_array import ARRAYS, variant_weights

    square = list(ARRAYS["square"].positions_m)
    assert variant_weights("mic0", square) is None  # the capture's mono: the profile's mic 0
    mix = variant_weights("mix", square)
    assert mix is not None and np.allclose(mix, 0.25)  # the plain mean of the four
    sd = variant_weights("sd0.01", square)
    assert sd is not None and np.allclose(sd, beam.superdirective_weights(square, 16000, mu=0.01))
    with pytest.raises(ValueError, match="unknown variant"):
        variant_weights("mvdr", square)
