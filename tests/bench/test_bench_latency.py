"""`agentd bench latency` end to end: the real daemon, emulators, sim mic and speaker.

Two turns per strategy keep it short. Timing TARGETS are not asserted (that is the
benchmark's job); the report's structure and the plausibility of every number are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentd.bench import latency
from agentd.bench.latency_report import STAGES, percentile
from agentd.sim.speech import tools_available

pytestmark = pytest.mark.skipif(not tools_available(), reason="needs espeak-ng and sox")
TURNS = 2


def test_percentile_interpolates() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == 25.0
    assert percentile([5.0], 95) == 5.0
    assert percentile([0.0, 100.0], 95) == 95.0


def test_plan_pairs_each_line_with_both_strategies() -> None:
    turns = latency.plan(3)
    assert [s for s, _, _ in turns] == ["warmup", *["streamed", "seed"] * 3]
    assert turns[1][1:] == turns[2][1:]  # the same visitor line and reply for the pair


@pytest.mark.timeout(150)
def test_bench_latency_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = latency.main(["--turns", str(TURNS), "--json", "--out", str(tmp_path)])
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert code == (0 if report["pass"] else 1)
    assert report["complete"], report
    assert report["turns_per_strategy"] == TURNS
    profile = report["profile"]
    floor = profile["stt_final_ms"] + profile["llm_ttft_ms"] + profile["tts_ttfb_ms"]
    for name in ("streamed", "seed"):
        part = report[name]
        assert part["turns"] == TURNS and not part["errors"]
        assert len(part["samples"]) == TURNS
        for sample in part["samples"]:
            assert sample["service_ms"] >= floor
            # The ground truth and the emulators' waits bracket the overhead.
            assert sample["voice_to_voice_ms"] > sample["service_ms"] - 20
            assert -20 < sample["overhead_ms"] < 600
            assert sum(sample["stages"][k] for k in STAGES) == pytest.approx(
                sample["overhead_ms"], abs=1.0
            )
            # Each stage is a real interval on one clock, never a mismatched pair.
            assert all(-5 < sample["stages"][k] < 600 for k in STAGES), sample["stages"]
            marks = sample["marks"]
            for stage in ("llm", "tts"):  # the emulators' timestamps split it exactly
                split = [marks[f"{stage}_{k}"] for k in ("send", "slack", "receive")]
                assert all(v > -1 for v in split), marks
                assert sum(split) == pytest.approx(sample["stages"][stage], abs=0.5)
            assert sample["daemon_voice_to_voice_ms"] > 0
            assert sample["visitor"] in {line for line, _ in latency.LINES}
            if name == "seed":  # one TTS request with the whole reply, before any audio
                assert sample["tts_chars"] == sample["reply_chars"]
            else:  # the reply was cut after its first audio: only its start was requested
                assert 0 < sample["tts_chars"] < sample["reply_chars"]
    streamed, seed = report["streamed"], report["seed"]
    assert streamed["voice_to_voice_ms"]["p50"] < seed["voice_to_voice_ms"]["p50"]
    assert 0 < report["ratio_streamed_to_seed"] < 1
    assert {t["name"] for t in report["targets"]} == {
        "overhead p50 ms",
        "overhead p95 ms",
        "voice-to-voice p50 ms",
        "streamed/seed voice-to-voice",
    }
    assert (tmp_path / "conversation.wav").stat().st_size > 0
