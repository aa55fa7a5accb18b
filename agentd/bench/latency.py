"""`agentd bench latency`: voice-to-voice and daemon overhead through the real daemon.

The production daemon (SimulatedKiosk: Daemon -> Runtime -> Orchestrator, real SDKs over
real sockets, real-time simulated mic and speaker) answers N visitor turns against the
emulators with a fixed service profile, once with the production streamed reply and
once "the seed way" (agentd.bench.seed_reply: whole LLM reply, then one TTS request for
all of it, whole audio, then play). The two strategies alternate turn by turn (same
visitor line for each pair), after one warm-up turn that is not counted.

Definitions (all per turn, ms, on one monotonic clock):

- true voice end = the SimMic ground truth: the utterance's start on the mic's frame
  clock plus the end of the last 5 ms block of the rendered speech above ONSET_DB (the
  span's end_ms would include espeak-ng's trailing silence);
- first reply sample = the instant the reply's first audio was written to the idle
  SimSpeaker (as AlsaPlayback reports it when it hands the first period to the PCM);
- voice-to-voice = first reply sample - true voice end;
- emulated service time = exactly the waits the emulators inserted on the reply's
  critical path: STT `stt_final_ms` (with final_from_speech_end the final follows the
  end of speech as the emulator heard it by this much; had the daemon endpointed later,
  the final would come at the endpoint and the extra wait is the daemon's) + LLM
  `llm_ttft_ms` + `llm_chunk_ms` x the further SSE events up to the one that lets the
  production ClauseSplitter release the first clause (streamed) or up to `[DONE]`
  (seed) + TTS `tts_ttfb_ms` (streamed) or TTFB plus the pacing of the rest of the
  whole reply's audio (seed). TTS renders are pre-warmed in espeak's in-process cache
  so the emulator spends no synthesis time beyond its TTFB;
- daemon overhead = voice-to-voice - emulated service time. It is split into stages
  (to_stt, stt_delivery, to_llm, llm, tts, playback) that add up to it exactly.

The daemon's own TurnMetrics voice-to-voice is printed next to the ground truth.
Exit 0 when every target holds, 1 otherwise (or if a turn could not be measured).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentd.bench.latency_report import (
    Sample,
    TurnRecord,
    build_report,
    measure,
    print_report,
)
from agentd.sim.stack import ServiceProfile

# The fixed profile (STT final 300 / TTFT 350 / TTFB 150). 10 ms per token is a
# fast model (~100 tokens/s); TTS pace 0.2 = whole-text synthesis at 5x real time, our
# assumption for ElevenLabs Flash (the seed design waits for all of it; the streamed
# design only for the first chunk).
PROFILE = ServiceProfile(
    stt_final_ms=300.0,
    llm_ttft_ms=350.0,
    llm_chunk_ms=10.0,
    tts_ttfb_ms=150.0,
    tts_chunk_ms=100,
    tts_pace=0.2,
)
# The kiosk runs with 10 ms audio periods (the low end of the 10-20 ms the audio front
# end supports): every stage that waits for "the next period" (capture, the gate, the
# speaker) costs half as much as with the 20 ms default. The local endpoint stays at
# 240 ms of silence (24 x 10 ms), under the STT service's 300 ms.
LOW_LATENCY_TOML = """
[audio.capture]
period_ms = 10

[audio.playback]
period_ms = 10

[audio.vad]
stop_unvoiced_frames = 24

# One visitor asks 2 x N questions back to back: the per-conversation turn limit (a
# public kiosk's abuse guard, 30 by default) would answer the 31st with its limit line.
[engagement]
max_turns = 1000
"""
DEFAULT_TURNS = 20
QUICK_TURNS = 5
PAUSE_BEFORE_MS = 400  # visitor silence before each line (enough for the gate to settle)
TURN_BUDGET_S = 12.0  # generous wall-time allowance per turn before giving up
# (visitor line, reply): each first clause ends at a comma after >= 12 characters (the
# default tts.min_clause_chars), as a chatty model's reply usually starts.
LINES = (
    (
        "When do you open tomorrow?",
        "Good morning, we open at nine tomorrow and close at five. "
        "On Saturday we are open from ten until two.",
    ),
    (
        "Where is the meeting room?",
        "Yes, of course, room three is on the second floor, left of the lifts. "
        "I can ask someone to show you the way.",
    ),
    (
        "Can I park my car here?",
        "Yes, you can, the visitor car park is behind the building. "
        "Please leave your number plate with me.",
    ),
    (
        "Is Anna Schmidt in today?",
        "Let me check, Anna is in the office until four today. "
        "Shall I tell her that you have arrived?",
    ),
    (
        "Do you have wifi for guests?",
        "We do, sure, the network is called Guest and the password is on the card. "
        "It works in the whole building.",
    ),
    (
        "Where can I get a coffee?",
        "Just over there, the coffee machine is past the lifts on your left. "
        "It is free for visitors.",
    ),
    (
        "How do I get to the station?",
        "It is not far, turn right at the main door and walk straight on for five minutes. "
        "The station is across the square.",
    ),
    (
        "Where are the toilets?",
        "Down the hall, they are the second door on the right after the lifts. "
        "There is an accessible one next to them.",
    ),
)


def plan(turns: int) -> list[tuple[str, str, str]]:
    """(strategy, visitor, reply) per scenario turn: a warm-up, then streamed/seed pairs."""
    out = [("warmup", *LINES[-1])]
    for i in range(turns):
        visitor, reply = LINES[i % len(LINES)]
        out += [("streamed", visitor, reply), ("seed", visitor, reply)]
    return out


def scenario_toml(turns: list[tuple[str, str, str]]) -> str:
    lines = ['name = "bench latency"', "noise_db = -60.0", "tail_ms = 500", ""]
    for _, visitor, reply in turns:
        lines += [
            "[[turn]]",
            f"visitor = {json.dumps(visitor)}",
            f"reply = {json.dumps(reply)}",
            f"pause_before_ms = {PAUSE_BEFORE_MS}",
            "",
        ]
    return "\n".join(lines)


class StrategySwitch:
    """The conversation's reply_factory for the bench: k-th reply -> k-th strategy."""

    def __init__(self, strategies: list[str]) -> None:
        self.strategies = strategies
        self.records: list[TurnRecord] = []

    def __call__(self, **kwargs: Any) -> Any:
        from agentd.bench.seed_reply import SeedReplyPipeline
        from agentd.conversation.reply import ReplyPipeline

        index = len(self.records)
        strategy = self.strategies[index] if index < len(self.strategies) else "extra"
        cls = SeedReplyPipeline if strategy == "seed" else ReplyPipeline
        pipeline = cls(**kwargs)
        self.records.append(TurnRecord(strategy, pipeline))
        return pipeline


async def run_bench(turns: int, out_dir: Path) -> list[Sample]:
    """Run the scenario through the real daemon; return one Sample per measured reply."""
    from agentd.bench.latency_report import tts_texts
    from agentd.bench.reply_cut import cut_each_reply
    from agentd.config import load_config
    from agentd.sim.harness import SimulatedKiosk

    turn_plan = plan(turns)
    scenario_path = out_dir / "bench-latency.toml"
    scenario_path.write_text(scenario_toml(turn_plan))
    kiosk = SimulatedKiosk(
        scenario_path,
        out_dir,
        profile=PROFILE,
        extra_toml=LOW_LATENCY_TOML,
        emulator_process=True,  # a cloud does not share the daemon's GIL
    )
    try:
        stack = kiosk.start_emulators()
        config = load_config(kiosk.write_config())
        replies = [reply for _, _, reply in turn_plan]
        await asyncio.to_thread(
            stack.render,
            tts_texts(replies, config.tts.min_clause_chars),
            config.audio.playback.rate_hz,
        )
        await kiosk.start()
        conversation = kiosk.conversation
        switch = StrategySwitch([s for s, _, _ in turn_plan])
        conversation.reply_factory = switch
        cut_each_reply(kiosk)
        await kiosk.wait_scenario_done(TURN_BUDGET_S * len(turn_plan))
        observed = kiosk.observed
        await kiosk.wait_for(lambda: len(observed.records) >= len(switch.records), 10.0)
        emulated = await asyncio.to_thread(stack.records)
        return measure(switch.records, kiosk, PROFILE, emulated)
    finally:
        await kiosk.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agentd bench latency", description=__doc__)
    parser.add_argument("--turns", type=int, default=DEFAULT_TURNS, help="turns per strategy")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TURNS} turns (CI)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", default="", help="directory for the scenario, config, WAV")
    args = parser.parse_args(argv)
    turns = QUICK_TURNS if args.quick else args.turns
    if not 1 <= turns <= 200:
        parser.error(f"--turns must be between 1 and 200, got {turns}")
    from agentd.config import parse_config
    from agentd.logs import setup_logging

    setup_logging(parse_config({"logging": {"backend": "stderr", "level": "warning"}}).logging)
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="agentd-bench-latency-")).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.json:
        print(f"agentd bench latency: {turns} turns per strategy through the real daemon")
        print("kiosk audio: 10 ms capture and playback periods, local endpoint after 240 ms")
    samples = asyncio.run(run_bench(turns, out_dir))
    report = build_report(samples, PROFILE, turns)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(report, sys.stdout)
    return 0 if report["pass"] else 1
