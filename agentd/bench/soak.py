"""`agentd bench soak`: hundreds of simulated turns with barge-ins, cancels and cloud faults.

The real daemon (SimulatedKiosk: Daemon -> Runtime -> Orchestrator, real SDKs over real
sockets, real-time simulated mic) talks to the three emulators for `--turns` visitor
turns. A seeded RNG gives each turn a plan: a plain turn, a barge-in by the next turn,
a remote `cancel` (the MQTT command path, RemoteCommands) while the reply plays, or a
fault switched on in an emulator for that turn only (LLM 500/429/stalled stream, TTS
500/stalled/truncated stream, STT socket dropped mid-utterance). Same seed, same plan.

Targets (issue 7): no stuck state (thinking/speaking/muted for longer than STUCK_S
with no audio progress), RSS growth <= 5 MB between the end of the warm-up and the
end, no growth of open fds, threads or asyncio tasks, the daemon still running, and
every planned visitor turn played. Exit 0 when met, 1 otherwise.

The simulated devices and the emulators record everything for tests (played audio,
requests, STT session audio); the soak trims those records every turn so what is
measured is the daemon, not the test rig.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentd.sim.stack import ServiceProfile

RSS_GROWTH_TARGET_KB = 5 * 1024  # issue 7: growth <= 5 MB
STUCK_S = 20.0  # longest reply (~6 s) + LLM/TTS timeouts (4 s + 3 s) + fallback, doubled
QUICK_TURNS = 14  # warm-up + each of the 10 plan kinds once + a few; ~60 s
# Few distinct lines so espeak-ng renders are cached. Plain and fault turns use short
# exchanges (~3.5 s a turn); barge-in and cancel turns a longer reply to interrupt.
SHORT_LINES: tuple[dict[str, Any], ...] = (
    {"visitor": "Opening hours?", "reply": "Nine to five."},
    {"visitor": "Where is the coffee?", "reply": "On your left."},
    {
        "visitor": "Open on Saturday?",
        "reply": "Ten until two.",
        "tool": "opening_hours",
        "tool_arguments": {"day": "saturday"},
    },
    {"visitor": "Thank you.", "reply": "You are welcome."},
)
LONG_LINES: tuple[dict[str, Any], ...] = (
    {
        "visitor": "Can someone help me?",
        "reply": "Of course. I have called a colleague, and they will be with you in a minute.",
        "tool": "call_staff",
        "tool_arguments": {"reason": "soak visitor"},
    },
    {
        "visitor": "Where are the toilets?",
        "reply": "Go down the corridor past the lifts, and it is the second door on the right.",
    },
)
# Plan weights: what a turn does (faults together ~30 %).
PLAN_WEIGHTS: dict[str, int] = {
    "plain": 40,
    "barge_in": 15,
    "cancel": 12,
    "llm_500": 5,
    "llm_429": 5,
    "llm_stall": 4,
    "tts_500": 5,
    "tts_stall": 4,
    "tts_truncate": 5,
    "stt_drop": 5,
}
# Faster than the latency benchmark's profile: the soak is about endurance, not latency.
SOAK_PROFILE = ServiceProfile(
    stt_final_ms=150.0, llm_ttft_ms=150.0, llm_chunk_ms=10.0, tts_ttfb_ms=80.0
)


def make_plan(turns: int, seed: int) -> list[str]:
    """Every kind at least once (when there is room), the rest drawn by PLAN_WEIGHTS."""
    rng = random.Random(seed)
    kinds, weights = zip(*PLAN_WEIGHTS.items(), strict=True)
    rest = turns - 1 - len(kinds)
    plan = list(kinds) + rng.choices(kinds, weights, k=rest) if rest >= 0 else []
    plan = plan or rng.choices(kinds, weights, k=turns - 1)
    rng.shuffle(plan)
    return ["plain", *plan]  # the first turn also warms up the connections


def make_scenario(plan: list[str], seed: int) -> dict[str, Any]:
    """The scenario TOML data: turn i+1 barges into reply i when plan[i] is barge_in."""
    rng = random.Random(seed + 1)
    turns = []
    for i in range(len(plan)):
        long_reply = plan[i] in ("barge_in", "cancel")
        turn = dict(rng.choice(LONG_LINES if long_reply else SHORT_LINES))
        turn["pause_before_ms"] = rng.randrange(200, 500, 20)
        if i > 0 and plan[i - 1] == "barge_in":
            turn["barge_in_after_ms"] = rng.randrange(500, 1300, 20)
        turns.append(turn)
    return {"name": f"soak seed {seed}", "noise_db": -55.0, "tail_ms": 1500, "turn": turns}


def scenario_toml(data: dict[str, Any]) -> str:
    """Tiny TOML writer for the scenario shape above (json strings are TOML strings)."""
    out = [f"name = {json.dumps(data['name'])}", f"noise_db = {data['noise_db']}"]
    out.append(f"tail_ms = {data['tail_ms']}")
    for turn in data["turn"]:
        out.append("\n[[turn]]")
        for key, value in turn.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                out.append(f"{key} = {{ {inner} }}")
            else:
                out.append(f"{key} = {json.dumps(value)}")
    return "\n".join(out) + "\n"


@dataclass
class Sample:
    """Process resources at one moment."""

    rss_kb: int
    fds: int
    threads: int
    tasks: int


def sample() -> Sample:
    gc.collect()
    rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return Sample(
        rss_kb=rss,
        fds=len(os.listdir("/proc/self/fd")),
        threads=threading.active_count(),
        tasks=len(asyncio.all_tasks()),
    )


@dataclass
class SoakReport:
    turns_planned: int
    seed: int
    plan: dict[str, int] = field(default_factory=dict)
    visitor_turns_played: int = 0
    turns_completed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    faults_reported: dict[str, int] = field(default_factory=dict)
    cancels_sent: int = 0
    barge_ins: int = 0
    stuck_states: int = 0
    stuck_detail: list[str] = field(default_factory=list)
    longest_busy_s: float = 0.0
    trend: list[Sample] = field(default_factory=list)  # every ~5 % of the turns
    start: Sample | None = None
    end: Sample | None = None
    daemon_exit: int | None = None
    duration_s: float = 0.0

    def failures(self) -> list[str]:
        out = []
        if self.stuck_states:
            out.append(f"{self.stuck_states} stuck state(s)")
        if self.visitor_turns_played < self.turns_planned:
            out.append(f"only {self.visitor_turns_played}/{self.turns_planned} turns played")
        if self.daemon_exit not in (0, None):
            out.append(f"daemon exited {self.daemon_exit}")
        if self.turns_completed < self.turns_planned // 2:
            out.append(f"only {self.turns_completed} turns completed")
        if self.start is None or self.end is None:
            out.append("no resource samples (too few turns, or never idle at the end)")
        else:
            s, e = self.start, self.end
            if e.rss_kb - s.rss_kb > RSS_GROWTH_TARGET_KB:
                out.append(f"RSS grew {(e.rss_kb - s.rss_kb) / 1024:.1f} MB")
            # Keep-alive pools and the STT session open and close with the traffic (a
            # connection is 2 fds here: the emulator's end too), so "growth" means more
            # than the most seen in the first half of the measured turns.
            early = self.trend[: max(1, len(self.trend) // 2)] or [s]
            for name in ("fds", "threads", "tasks"):
                most = max(getattr(x, name) for x in early)
                if getattr(e, name) > most:
                    out.append(f"{name} grew: at most {most} early, {getattr(e, name)} at the end")
        return out


class StateWatch:
    """Runtime observer: state changes with their times; flags states that do not end."""

    def __init__(self, report: SoakReport, progress: Any) -> None:
        self.report = report
        self.state = "idle"
        self.since = time.monotonic()
        self._progress = progress  # () -> int, speaker frames played
        self._last_progress = (progress(), time.monotonic())
        self._flagged = False
        self.counts: Counter[str] = Counter()

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "state":
            self._close()
            self.state, self.since, self._flagged = str(payload.value), time.monotonic(), False
        elif kind == "turn":
            if payload.outcome != "superseded":  # dropped unheard: the turn goes on
                self.report.turns_completed += 1
            self.counts[f"outcome:{payload.outcome}"] += 1
        elif kind == "fault":
            self.counts[f"fault:{payload.error_kind}"] += 1
        elif kind == "event/barge_in":
            self.report.barge_ins += 1

    def _close(self) -> None:
        if self.state not in ("idle", "listening"):
            busy = time.monotonic() - self.since
            self.report.longest_busy_s = max(self.report.longest_busy_s, busy)

    def check(self) -> None:
        """Called periodically: a busy state with no audio progress for STUCK_S is stuck."""
        now = time.monotonic()
        frames = self._progress()
        if frames != self._last_progress[0]:
            self._last_progress = (frames, now)
        idle_for = now - max(self.since, self._last_progress[1])
        if self.state not in ("idle", "listening") and idle_for > STUCK_S and not self._flagged:
            self._flagged = True
            self.report.stuck_states += 1
            self.report.stuck_detail.append(f"{self.state} for {now - self.since:.0f} s")


def apply_fault(stack: Any, kind: str) -> None:
    """Switch this turn's fault on (attributes only: atomic under the GIL)."""
    if kind == "llm_500":
        stack.llm.faults.status = 500
    elif kind == "llm_429":
        stack.llm.faults.status, stack.llm.faults.status_times = 429, 1
        stack.llm.faults.retry_after_s = 0.2
    elif kind == "llm_stall":
        stack.llm.faults.stall_after_chunks = 3
    elif kind == "tts_500":
        stack.tts.faults.status = 500
    elif kind == "tts_stall":
        stack.tts.faults.stall_after_chunks = 2
    elif kind == "tts_truncate":
        stack.tts.faults.truncate_after_chunks = 2
    elif kind == "stt_drop":
        stack.stt.drop_after_audio_ms = 400


async def _trim_records(stack: Any, turn: int) -> None:
    """On the emulators' loop: drop what they recorded; re-sync the STT text to `turn`."""
    stack.llm.requests.clear()
    stack.tts.requests.clear()
    del stack.stt.sessions[:-1]
    for session in stack.stt.sessions:
        del session.audio[:]  # drop_after_audio_ms then counts from this utterance
        session.chunk_ms.clear()
        session.events.clear()
    stack.stt.next_text = turn
    stack.llm.faults.reset()
    stack.tts.faults.clear()
    stack.stt.drop_after_audio_ms = 0


def _trim_devices(kiosk: Any) -> None:
    speaker = kiosk.speaker
    speaker.played.clear()
    speaker._mic_track.clear()  # the conversation-WAV track; no public way to drop it
    speaker.first_audio_ms.clear()


async def _cancel_later(kiosk: Any, watch: StateWatch, rng: random.Random) -> bool:
    """Post `cancel` (as the MQTT command does) some time into the reply; True if sent."""
    from agentd.events import CancelReply

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8.0
    while watch.state not in ("thinking", "speaking"):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    await asyncio.sleep(rng.uniform(0.1, 1.2))
    kiosk.service.post(CancelReply("mqtt"))
    watch.report.cancels_sent += 1
    return True


async def run_soak(turns: int, seed: int, out_dir: str) -> SoakReport:
    """Run the whole soak in-process on this loop and return its report."""
    from agentd.sim.harness import SimulatedKiosk

    plan = make_plan(turns, seed)
    report = SoakReport(turns_planned=turns, seed=seed, plan=dict(Counter(plan)))
    scenario_path = Path(out_dir) / "soak.toml"
    scenario_path.parent.mkdir(parents=True, exist_ok=True)
    scenario_path.write_text(scenario_toml(make_scenario(plan, seed)))
    kiosk = SimulatedKiosk(scenario_path, out_dir, profile=SOAK_PROFILE)
    started = time.monotonic()
    await kiosk.start()
    kiosk.speaker.wav_path = ""  # a soak-long WAV would be the test rig's memory
    watch = StateWatch(report, lambda: kiosk.speaker.stats.frames)
    kiosk.service.reporting.observers.append(watch)
    kiosk.service.reporting.observers.remove(kiosk.observed)  # it keeps every line and metric
    try:
        await _drive(kiosk, plan, watch, random.Random(seed + 2))
    finally:
        report.daemon_exit = await kiosk.stop()
    report.outcomes = {k[8:]: v for k, v in watch.counts.items() if k.startswith("outcome:")}
    report.faults_reported = {k[6:]: v for k, v in watch.counts.items() if k.startswith("fault:")}
    report.duration_s = round(time.monotonic() - started, 1)
    return report


async def _drive(kiosk: Any, plan: list[str], watch: StateWatch, rng: random.Random) -> None:
    """Follow the mic turn by turn: trim records, sample resources, set faults, cancel."""
    report, stack = watch.report, kiosk.stack
    mic = kiosk.mic
    warmup = max(3, len(plan) // 10)
    every = max(1, len(plan) // 20)
    cancels: set[asyncio.Task[bool]] = set()
    while not mic.finished.is_set() and not kiosk._task.done():
        watch.check()
        i = len(mic.spans) - 1
        if i >= report.visitor_turns_played:
            report.visitor_turns_played = i + 1
            await asyncio.to_thread(stack.call, _trim_records(stack, i))
            _trim_devices(kiosk)
            if i == warmup:
                report.start = sample()
            if i >= warmup and (i - warmup) % every == 0:
                report.trend.append(sample())
            apply_fault(stack, plan[i])
            if plan[i] == "cancel":
                task = asyncio.create_task(_cancel_later(kiosk, watch, rng))
                cancels.add(task)
                task.add_done_callback(cancels.discard)
        await asyncio.sleep(0.05)
    for task in list(cancels):
        await task
    try:
        await kiosk.wait_for(lambda: watch.state in ("idle", "listening"), STUCK_S)
    except TimeoutError:
        watch.check()
        return
    await asyncio.to_thread(stack.call, _trim_records(stack, len(mic.spans)))
    _trim_devices(kiosk)
    await asyncio.sleep(0.5)  # let closed sockets and finished tasks settle
    report.end = sample()


def print_report(report: SoakReport) -> None:
    print(f"agentd bench soak: {report.turns_planned} turns, seed {report.seed}")
    print(f"  duration            {report.duration_s:.0f} s")
    print(f"  plan                {dict(sorted(report.plan.items()))}")
    print(f"  visitor turns       {report.visitor_turns_played} played")
    print(f"  turns completed     {report.turns_completed}")
    print(f"  outcomes            {dict(sorted(report.outcomes.items()))}")
    print(f"  faults reported     {dict(sorted(report.faults_reported.items()))}")
    print(f"  cancels / barge-ins {report.cancels_sent} / {report.barge_ins}")
    print(f"  stuck states        {report.stuck_states} {report.stuck_detail or ''}")
    print(f"  longest busy state  {report.longest_busy_s:.1f} s")
    if report.start is not None and report.end is not None:
        s, e = report.start, report.end
        print(f"  RSS                 {s.rss_kb / 1024:.1f} MB -> {e.rss_kb / 1024:.1f} MB")
        print(
            f"  fds/threads/tasks   {s.fds}/{s.threads}/{s.tasks} -> {e.fds}/{e.threads}/{e.tasks}"
        )
        print(f"  RSS trend (MB)      {[round(x.rss_kb / 1024, 1) for x in report.trend]}")
        print(f"  fds trend           {[x.fds for x in report.trend]}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agentd bench soak", description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TURNS} turns (CI)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="", help="directory for the scenario and state")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    turns = QUICK_TURNS if args.quick else args.turns
    if turns < 5:
        parser.error("--turns must be at least 5 (warm-up plus measured turns)")
    from agentd.config import parse_config
    from agentd.logs import setup_logging

    setup_logging(parse_config({"logging": {"backend": "stderr", "level": "error"}}).logging)
    with tempfile.TemporaryDirectory(prefix="agentd-soak-") as tmp:
        report = asyncio.run(run_soak(turns, args.seed, args.out or tmp))
    failures = report.failures()
    if args.json:
        print(json.dumps({**asdict(report), "failures": failures}, indent=2))
    else:
        print_report(report)
        print("  result              " + ("OK" if not failures else "FAIL: " + "; ".join(failures)))
    return 1 if failures else 0
