"""`agentd bench turns`: cut-offs and reply latency of the turn-end policies.

The real daemon (SimulatedKiosk, emulators in a child process) hears the same corpus
(agentd.bench.turns_corpus: complete sentences, hesitant turns with 1-3 mid-sentence
pauses of 300-1500 ms, short answers, fillers) once with `turn_end.policy = "fixed"`
(every local endpoint ends the turn: the behaviour before issue 12) and once with
"adaptive". Per visitor turn, on the mic's clock (SimMic.spans ground truth):

- cut-off: reply audio sounded, or the daemon reported a visitor turn (it finalized a
  turn and answered it), after the turn's onset and before its true end;
- reply start: the first reply audio sounded at or after the true end, minus the true
  end (cut-off turns are left out of the latency figures);
- wasted LLM requests: requests beyond one per visitor turn (speculative replies
  dropped unheard, answers to fragments), per turn, as the emulator saw them; beside
  it the daemon's own count of requests it dropped unheard (`llm_requests_wasted`, the
  health counter) and of replies it reported `superseded`;
- CPU per audio second: this process's CPU time (daemon + simulated devices; the
  emulators run in their own process) over the mic audio played.

Each reply is cut 150 ms after it starts sounding: only its start is measured.
Exit 0 when the targets hold (adaptive cut-offs <= 3 %, complete turns' p50 no more
than 50 ms slower than fixed, hesitant turns' p95 <= 1500 ms), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentd.bench.turns_corpus import CorpusTurn, corpus
from agentd.sim.stack import ServiceProfile

PROFILE = ServiceProfile(
    stt_final_ms=300.0, llm_ttft_ms=350.0, llm_chunk_ms=10.0, tts_ttfb_ms=150.0
)  # the latency bench's profile (issue 9's fixed figures)
POLICIES = ("fixed", "adaptive")
# --audio-model: a third pass, adaptive with the local audio turn model ([turn_end]
# audio_model). On espeak-ng speech the model is at chance: the figures say what it does
# here, they are no measure of its worth and nothing is tuned to them.
MODEL_POLICY = "adaptive+model"
QUICK = {"complete": 2, "hesitant": 2, "short": 2, "filler": 2}
PAUSE_BEFORE_MS = 600
TURN_BUDGET_S = 12.0
TARGET_CUTOFF = 0.03
TARGET_COMPLETE_P50_SLOWER_MS = 50.0
TARGET_HESITANT_P95_MS = 1500.0
HESITANT_KINDS = ("hesitant", "filler")


def scenario_toml(turns: list[CorpusTurn]) -> str:
    lines = ['name = "bench turns"', "noise_db = -60.0", "tail_ms = 2500", ""]
    for turn in turns:
        lines += [
            "[[turn]]",
            f"visitor = {json.dumps(turn.visitor)}",
            f"reply = {json.dumps(turn.reply)}",
            f"pause_before_ms = {PAUSE_BEFORE_MS}",
            "",
        ]
    return "\n".join(lines)


async def run_policy(policy: str, turns: list[CorpusTurn], out_dir: Path) -> dict[str, Any]:
    """One pass of the corpus through the real daemon; per-turn facts."""
    from agentd.bench.reply_cut import cut_each_reply
    from agentd.events import now_ms
    from agentd.sim.harness import SimulatedKiosk

    scenario_path = out_dir / "bench-turns.toml"
    await asyncio.to_thread(_write, scenario_path, scenario_toml(turns))
    kiosk = SimulatedKiosk(
        scenario_path,
        out_dir,
        profile=PROFILE,
        # 60 questions back to back from one visitor: the per-conversation turn limit (a
        # public kiosk's abuse guard, 30 by default) would answer the 31st with its line.
        extra_toml=f'[turn_end]\npolicy = "{policy.removesuffix("+model")}"\n'
        + ("audio_model = true\n" if policy == MODEL_POLICY else "")
        + "\n[engagement]\nmax_turns = 1000\n",
        emulator_process=True,
    )
    reported: list[float] = []  # when the daemon reported a visitor turn (mic clock)
    outcomes: list[str] = []  # every reply record's outcome, superseded ones included
    try:
        await kiosk.start()
        conversation = kiosk.conversation
        cut_each_reply(kiosk)

        def on_report(kind: str, payload: Any) -> None:
            if kind == "transcript" and payload[0] == "visitor":
                reported.append(now_ms())
            elif kind == "turn":
                outcomes.append(str(payload.outcome))

        kiosk.service.reporting.observers.append(on_report)
        cpu0 = time.process_time()
        await kiosk.wait_scenario_done(TURN_BUDGET_S * len(turns))
        cpu_s = time.process_time() - cpu0
        await asyncio.sleep(0.5)
        mic, speaker = kiosk.mic, kiosk.speaker
        spans = list(mic.spans)
        played = [at for at, _ in list(speaker.played)]
        audio_s = mic.stats.frames / mic.format.rate_hz
        dropped = conversation.speculations_dropped
        wasted = conversation.llm_requests_wasted
        turn_audio = conversation.parts.turn_audio
        model_answers = (
            [round(a.complete_probability, 3) for a in turn_audio.answers] if turn_audio else []
        )
        model_ms = [a.inference_ms for a in turn_audio.answers] if turn_audio else []
        records = await asyncio.to_thread(kiosk.stack.records)
    finally:
        await kiosk.stop()
    rows = []
    for i, (turn, span) in enumerate(zip(turns, spans, strict=False)):
        until = spans[i + 1].start_ms if i + 1 < len(spans) else float("inf")
        over = any(span.start_ms <= at < span.voice_end_ms for at in played)
        early = any(span.start_ms <= at < span.voice_end_ms for at in reported)
        after = [at for at in played if span.voice_end_ms <= at < until]
        rows.append(
            {
                "kind": turn.kind,
                "cut_off": over or early,
                "talked_over": over,
                "split": early,
                "reply_ms": round(after[0] - span.voice_end_ms) if after else None,
            }
        )
    return {
        "policy": policy,
        "turns": rows,
        "llm_requests": len(records.llm_requests),
        "speculations_dropped": dropped,
        "llm_requests_wasted": wasted,
        "superseded": outcomes.count("superseded"),
        "cpu_s": cpu_s,
        "audio_s": audio_s,
        "model_answers": model_answers,
        "model_ms_p50": _pct(model_ms, 0.5),
    }


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))])


def summarise(run: dict[str, Any]) -> dict[str, Any]:
    rows = run["turns"]
    n = len(rows)

    def lat(kinds: tuple[str, ...]) -> list[float]:
        return [r["reply_ms"] for r in rows if r["kind"] in kinds and not r["cut_off"]
                and r["reply_ms"] is not None]  # fmt: skip

    complete, hesitant, short = lat(("complete",)), lat(HESITANT_KINDS), lat(("short",))
    return {
        "policy": run["policy"],
        "turns": n,
        "cut_off_rate": sum(r["cut_off"] for r in rows) / n if n else None,
        "talked_over": sum(r["talked_over"] for r in rows),
        "split_turns": sum(r["split"] for r in rows),
        "unanswered": sum(r["reply_ms"] is None and not r["cut_off"] for r in rows),
        "complete_p50_ms": _pct(complete, 0.5),
        "complete_p95_ms": _pct(complete, 0.95),
        "hesitant_p50_ms": _pct(hesitant, 0.5),
        "hesitant_p95_ms": _pct(hesitant, 0.95),
        "short_p50_ms": _pct(short, 0.5),
        "wasted_llm_per_turn": max(0, run["llm_requests"] - n) / n if n else None,
        "speculations_dropped": run["speculations_dropped"],
        "llm_requests_wasted": run["llm_requests_wasted"],  # the daemon's own count
        "superseded": run["superseded"],  # reply records with that outcome
        "cpu_per_audio_s": run["cpu_s"] / run["audio_s"] if run["audio_s"] else None,
        "model_answers": run["model_answers"],  # P(complete) at each pause it was asked
        "model_ms_p50": run["model_ms_p50"],
        "cut_off_by_kind": {
            kind: sum(r["cut_off"] for r in rows if r["kind"] == kind)
            for kind in ("complete", "hesitant", "short", "filler")
        },
    }


def verdict(fixed: dict[str, Any], adaptive: dict[str, Any]) -> dict[str, bool]:
    slower = (adaptive["complete_p50_ms"] or 0) - (fixed["complete_p50_ms"] or 0)
    p95 = adaptive["hesitant_p95_ms"]
    return {
        "cut_offs": adaptive["cut_off_rate"] is not None
        and adaptive["cut_off_rate"] <= TARGET_CUTOFF,
        "complete_p50": slower <= TARGET_COMPLETE_P50_SLOWER_MS,
        "hesitant_p95": p95 is not None and p95 <= TARGET_HESITANT_P95_MS,
        "all_answered": adaptive["unanswered"] == 0,
    }


def print_report(report: dict[str, Any], out: Any) -> None:
    policies = report["policies"]
    skip = ("policy", "cut_off_by_kind", "model_answers")
    keys = [k for k in report["fixed"] if k not in skip]
    print(f"{'':28s}" + "".join(f"{p:>16s}" for p in policies), file=out)
    for key in keys:
        row = [report[p][key] for p in policies]
        cells = "".join(
            f"{v:16.3f}" if isinstance(v, float) else f"{'-' if v is None else v:>16}" for v in row
        )
        print(f"{key:28s}{cells}", file=out)
    for policy in policies:
        print(f"cut-offs by kind ({policy}): {report[policy]['cut_off_by_kind']}", file=out)
    if MODEL_POLICY in policies:
        print(f"model answers, P(complete): {report[MODEL_POLICY]['model_answers']}", file=out)
    print("targets: " + ", ".join(f"{k} {'ok' if v else 'FAIL'}" for k, v in
                                  report["targets"].items()), file=out)  # fmt: skip


async def run_bench(
    turns: list[CorpusTurn], out_dir: Path, policies: tuple[str, ...] = POLICIES
) -> dict[str, Any]:
    report: dict[str, Any] = {"policies": list(policies)}
    for policy in policies:
        run = await run_policy(policy, turns, out_dir / policy)
        report[policy] = summarise(run)
        report[f"{policy}_turns"] = run["turns"]
    report["targets"] = verdict(report["fixed"], report["adaptive"])
    report["pass"] = all(report["targets"].values())
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agentd bench turns", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 turns of each kind (CI)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", default="", help="directory for scenarios, configs, WAVs")
    parser.add_argument(
        "--audio-model",
        action="store_true",
        help="a third pass with [turn_end] audio_model = true (extra turnmodel)",
    )
    args = parser.parse_args(argv)
    policies = (*POLICIES, MODEL_POLICY) if args.audio_model else POLICIES
    from agentd.config import parse_config
    from agentd.logs import setup_logging

    setup_logging(parse_config({"logging": {"backend": "stderr", "level": "warning"}}).logging)
    turns = corpus(QUICK if args.quick else None)
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="agentd-bench-turns-")).resolve()
    if not args.json:
        kinds = {k: sum(t.kind == k for t in turns) for k in ("complete", "hesitant", "short",
                                                               "filler")}  # fmt: skip
        print(f"agentd bench turns: {len(turns)} visitor turns {kinds}, policies {policies}")
    report = asyncio.run(run_bench(turns, out_dir, policies))
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(report, sys.stdout)
    return 0 if report["pass"] else 1


__all__ = ["main", "run_bench"]
