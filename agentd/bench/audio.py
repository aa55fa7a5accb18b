"""`agentd bench audio`: CPU cost of listening, barge-in reaction and false barge-ins.

Everything runs on the simulated devices with a virtual clock (faster than real time)
through the same VadGate and BargeInDetector the daemon uses: the mic hears noise,
the visitor (espeak-ng) and the agent's own reply leaking back at a given coupling and
delay. Reaction = true speech onset in the mic -> first silent playback period.
Targets (issue 4): idle <= 1 % of one core, barge-in p95 <= 100 ms, no false
barge-ins at -10 dB coupling and below. Exit 0 when met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

from agentd.audio import dsp
from agentd.audio.barge_in import (
    BargeInDetector,
    BargeInDismissed,
    BargeInSuspected,
)
from agentd.audio.sim_mic import SimMic
from agentd.audio.sim_speaker import SimSpeaker
from agentd.audio.vad_gate import VadGate
from agentd.config.sections_audio import BargeInConfig, VadConfig
from agentd.events import BargeIn
from agentd.sim.scenario import scenario_from_dict

RATE = 16000
IDLE_TARGET = 0.01  # CPU s per audio s: 1 % of one core
REACTION_P95_TARGET_MS = 100.0
REPLY_TEXT = (
    "We're open from nine to five tomorrow, and on Saturday from ten until two. "
    "Is there anything else I can help you with today? The coffee machine is on the left."
)
VISITOR_LINES = (
    "Sorry, wait a moment please.",
    "Actually, I need the parking permit.",
    "No, I meant the other building.",
    "Hold on, can you repeat that?",
)
COUPLINGS_DB = (-20.0, -10.0, -6.0)
DELAYS_MS = (20.0, 50.0, 80.0)


@dataclass(slots=True)
class Trial:
    """Outcome of one simulated overlap (or echo-only run)."""

    reaction_ms: float | None = None
    barge_ins: int = 0
    pauses: int = 0
    cpu_s: float = 0.0
    audio_s: float = 0.0


def run_overlap(
    coupling_db: float,
    delay_ms: float,
    visitor: str = "",
    *,
    visitor_at_ms: int = 1000,
    config: BargeInConfig | None = None,
    noise_db: float = -50.0,
) -> Trial:
    """Agent replies; the visitor (if any) talks over it at `visitor_at_ms`."""
    from agentd.sim.speech import render_speech

    scenario = scenario_from_dict(
        {
            "noise_db": noise_db,
            "tail_ms": 0,
            "turn": [{"visitor": visitor, "pause_before_ms": visitor_at_ms}],
        }
    )
    speaker = SimSpeaker()
    mic = SimMic(
        scenario, speaker=speaker, realtime=False, echo_db=coupling_db, echo_delay_ms=delay_ms
    )
    gate = VadGate(VadConfig(), RATE)
    detector = BargeInDetector(config or BargeInConfig(), speaker.reference)
    speaker.write(render_speech(REPLY_TEXT, RATE, voice="en-gb"))
    trial = Trial()
    silent_at: list[float] = []

    def on_frame(frame: bytes, at_ms: float) -> None:
        gate.process(frame, at_ms)
        for event in detector.process(frame, at_ms, gate.last_voiced):
            if isinstance(event, BargeInSuspected):
                speaker.pause()
                trial.pauses += 1
                silent_at.append((speaker.silent_since_ms or at_ms) + mic.period_ms)
            elif isinstance(event, BargeIn):
                speaker.cancel()
                trial.barge_ins += 1
            elif isinstance(event, BargeInDismissed):
                speaker.resume()

    start = time.process_time()
    mic.run(on_frame)
    trial.cpu_s = time.process_time() - start
    trial.audio_s = mic.stats.frames / RATE
    if visitor and silent_at and trial.barge_ins:
        onset = mic.spans[0].start_ms
        after = [t for t in silent_at if t >= onset - mic.period_ms]
        trial.reaction_ms = (after[0] - onset) if after else None
    return trial


def idle_cpu(seconds: float, speaking: bool) -> float:
    """CPU seconds per audio second of gate (+ detector) over pre-rendered mic frames."""
    from agentd.sim.speech import render_noise, render_speech

    noise = render_noise(int(seconds * 1000), RATE, -50.0)
    speech = render_speech(REPLY_TEXT, RATE)
    mic = dsp.mix(noise, dsp.apply_gain(speech, 0.3)) if speaking else noise
    speaker = SimSpeaker()
    gate = VadGate(VadConfig(), RATE)
    detector = BargeInDetector(BargeInConfig(), speaker.reference)
    period = RATE * 20 // 1000 * 2
    frames = [mic[i : i + period] for i in range(0, len(mic) - period + 1, period)]
    reply = speech * (1 + int(seconds * RATE * 2 // max(1, len(speech))))
    start = time.process_time()
    for index, frame in enumerate(frames):
        at = index * 20.0
        mono = dsp.to_mono(frame, 1)
        gate.process(mono, at)
        if speaking:
            speaker.reference.push(reply[index * period : (index + 1) * period], at)
            detector.process(mono, at, gate.last_voiced)
    return (time.process_time() - start) / (len(frames) * 0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentd bench audio", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI-sized run (< ~15 s)")
    args = parser.parse_args(argv)
    from agentd.sim.speech import tools_available

    if not tools_available():
        print("agentd bench audio needs espeak-ng and sox on PATH")
        return 1
    seconds = 10.0 if args.quick else 30.0
    idle = idle_cpu(seconds, speaking=False)
    busy = idle_cpu(seconds, speaking=True)
    lines = VISITOR_LINES[:2] if args.quick else VISITOR_LINES
    offsets = (900, 2100) if args.quick else (700, 1300, 2100, 3000)
    reactions: list[float] = []
    missed = 0
    for coupling in (-10.0, -6.0):
        for delay in DELAYS_MS:
            for line in lines:
                for at in offsets:
                    trial = run_overlap(coupling, delay, line, visitor_at_ms=at)
                    if trial.reaction_ms is None:
                        missed += 1
                    else:
                        reactions.append(trial.reaction_ms)
    false_by: dict[float, int] = {}
    pauses_by: dict[float, int] = {}
    for coupling in COUPLINGS_DB:
        for delay in DELAYS_MS:
            trial = run_overlap(coupling, delay)
            false_by[coupling] = false_by.get(coupling, 0) + trial.barge_ins
            pauses_by[coupling] = pauses_by.get(coupling, 0) + trial.pauses
    p50 = statistics.median(reactions) if reactions else float("inf")
    p95 = _percentile(reactions, 0.95)
    checks = [
        ("idle listening CPU (core fraction)", f"{idle:.4f}", idle <= IDLE_TARGET),
        ("listening while speaking CPU", f"{busy:.4f}", True),
        ("barge-in reaction p50 (ms)", f"{p50:.0f}", True),
        ("barge-in reaction p95 (ms)", f"{p95:.0f}", p95 <= REACTION_P95_TARGET_MS),
        ("barge-ins missed", f"{missed}/{missed + len(reactions)}", missed == 0),
    ]
    for coupling in COUPLINGS_DB:
        ok = coupling > -10.0 or false_by[coupling] == 0
        label = f"false barge-ins / pauses at {coupling:+.0f} dB"
        checks.append((label, f"{false_by[coupling]} / {pauses_by[coupling]}", ok))
    for name, value, ok in checks:
        print(f"{name:<42} {value:>10}  {'ok' if ok else 'MISSED TARGET'}")
    return 0 if all(ok for _, _, ok in checks) else 1


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("inf")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


if __name__ == "__main__":
    raise SystemExit(main())
