"""`agentd demo`: the daemon, with simulated mic and speaker, against the local emulators.

A front-desk scenario (three visitor turns, one of them using tools) is spoken by
espeak-ng into the simulated mic in real time; the daemon runs exactly as under
systemd (same Daemon/Runtime, real SDKs over real sockets); the dialogue and a per-turn
latency table are printed and the whole conversation is written to a listenable WAV.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from agentd.sim.harness import Observed, SimulatedKiosk
from agentd.sim.stack import DEFAULT_SCENARIO


def run_demo(scenario_path: str = "", out_dir: str = "out/demo") -> int:
    """The scenario in real time: the cloud contract is real time (AssemblyAI closes a
    session fed faster, 3007), so there is no fast mode; exit 1 unless every turn ran."""
    from agentd.config import parse_config
    from agentd.logs import setup_logging

    setup_logging(parse_config({"logging": {"backend": "stderr", "level": "warning"}}).logging)
    kiosk = SimulatedKiosk(scenario_path or DEFAULT_SCENARIO, out_dir)
    scenario = kiosk.scenario
    print(f"agentd demo: scenario {scenario.name!r}, {len(scenario.turns)} visitor turns")
    print("(the visitor is espeak-ng in a simulated mic; the cloud services are local emulators)")
    code = asyncio.run(kiosk.run_scenario())
    print_report(kiosk.observed, sys.stdout)
    wav = kiosk.out / "conversation.wav"
    print(f"\nconversation audio: {wav}  (left: visitor mic, right: agent)")
    ok = code == 0 and len(kiosk.observed.turns) >= len(scenario.turns) and wav.exists()
    return 0 if ok else 1


def print_report(transcript: Observed, out: TextIO) -> None:
    out.write("\n--- dialogue ---\n")
    for who, text in transcript.lines:
        out.write(f"{who:>8}: {text}\n")
    for name, payload in transcript.events:
        if name == "staff_call":
            out.write(f"    tool: staff call ({payload.get('reason', '')})\n")
    out.write("\n--- per-turn latency (ms) ---\n")
    header = ("turn", "endpoint", "stt final", "llm ttft", "tts ttfb", "voice-to-voice", "outcome")
    out.write("{:<14}{:>10}{:>11}{:>10}{:>10}{:>16}  {}\n".format(*header))
    for m in transcript.records:  # a reply dropped unheard too (`superseded`)
        out.write(
            f"{m.turn_id:<14}{_ms(m.endpoint_delay_ms):>10}{_ms(m.stt_final_ms):>11}"
            f"{_ms(m.llm_ttft_ms):>10}{_ms(m.tts_ttfb_ms):>10}{_ms(m.voice_to_voice_ms):>16}"
            f"  {m.outcome}\n"
        )
    if transcript.faults:
        out.write(f"\nfaults: {len(transcript.faults)}\n")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
