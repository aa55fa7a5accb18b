"""`agentd demo`: the daemon, with simulated mic and speaker, against the local emulators.

A front-desk scenario (three visitor turns, one of them using tools) is spoken by
espeak-ng into the simulated mic in real time; the daemon runs exactly as under
systemd (same Daemon/Runtime, real SDKs over real sockets); the dialogue and a per-turn
latency table are printed and the whole conversation is written to a listenable WAV.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from agentd.events import TurnMetrics
from agentd.sim.all import DEFAULT_SCENARIO, EMULATOR_KEY, EmulatorStack, ServiceProfile
from agentd.sim.scenario import load_scenario

SECRET_ENV = ("ASSEMBLYAI_API_KEY", "OPENAI_API_KEY", "ELEVENLABS_API_KEY")


def demo_config_toml(
    stack: EmulatorStack,
    scenario_path: str,
    out_dir: Path,
    *,
    realtime: bool = True,
    extra: str = "",
) -> str:
    """The config the demo (and the end-to-end tests) run the daemon with."""
    return f"""
[logging]
backend = "stderr"
level = "warning"

[systemd]
state_dir = {json.dumps(str(out_dir / "state"))}

[audio.capture]
backend = "sim"
period_ms = 20

[audio.playback]
backend = "sim"

[audio.sim]
scenario = {json.dumps(scenario_path)}
speaker_wav = {json.dumps(str(out_dir / "conversation.wav"))}
realtime = {"true" if realtime else "false"}

[audio.vad]
stop_unvoiced_frames = 12
hangover_ms = 0

[stt]
api_host = {json.dumps(stack.stt_url)}

[llm]
base_url = {json.dumps(stack.llm_url)}
model = "emulated-gpt"

[[llm.tools]]
name = "opening_hours"
kind = "opening_hours"
description = "Opening hours for today, tomorrow or a weekday."

[[llm.tools]]
name = "call_staff"
kind = "call_staff"
description = "Ask a member of staff to come to the front desk."

[tts]
base_url = {json.dumps(stack.tts_url)}
{extra}
"""


@dataclass
class Transcript:
    """What the observers saw: the dialogue and every turn's metrics."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    turns: list[TurnMetrics] = field(default_factory=list)
    faults: list[Any] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)

    def observe(self, kind: str, payload: Any) -> None:
        if kind == "transcript":
            self.lines.append(payload)
        elif kind == "turn":
            self.turns.append(payload)
        elif kind == "fault":
            self.faults.append(payload)
        elif kind == "event/staff_call":
            self.tools.append(f"staff call: {payload.get('reason', '')}")


def run_demo(scenario_path: str = "", out_dir: str = "out/demo", realtime: bool = True) -> int:
    from agentd.config import load_config
    from agentd.daemon import Daemon
    from agentd.logs import setup_logging
    from agentd.secrets import Secrets

    scenario_file = str(Path(scenario_path or DEFAULT_SCENARIO).resolve())
    scenario = load_scenario(scenario_file)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in SECRET_ENV:
        os.environ.setdefault(name, EMULATOR_KEY)
    print(f"agentd demo: scenario {scenario.name!r}, {len(scenario.turns)} visitor turns")
    with EmulatorStack(scenario, ServiceProfile()) as stack:
        config_path = out / "demo.toml"
        config_path.write_text(demo_config_toml(stack, scenario_file, out, realtime=realtime))
        config = load_config(config_path)
        secrets = Secrets.load()
        setup_logging(config.logging, secrets.known_values())
        daemon = Daemon(str(config_path), config, secrets)
        transcript = Transcript()
        code = asyncio.run(_run_until_scenario_done(daemon, transcript))
    print_report(transcript, sys.stdout)
    wav = out / "conversation.wav"
    print(f"\nconversation audio: {wav}  (left: visitor mic, right: agent)")
    ok = code == 0 and len(transcript.turns) >= len(scenario.turns) and wav.exists()
    return 0 if ok else 1


async def _run_until_scenario_done(daemon: Any, transcript: Transcript) -> int:
    """Run the daemon until the simulated mic has played the whole scenario."""
    task = asyncio.create_task(daemon.run())
    while daemon.runtime is None or daemon.runtime.orchestrator is None:
        if task.done():
            return int(task.result())
        await asyncio.sleep(0.05)
    runtime = daemon.runtime
    runtime.observers.append(transcript.observe)
    mic = runtime.audio.capture
    finished = asyncio.ensure_future(asyncio.to_thread(mic.finished.wait))
    await asyncio.wait({task, finished}, return_when=asyncio.FIRST_COMPLETED)
    if not finished.done():
        mic.finished.set()  # the daemon ended first: release the waiting thread
    await asyncio.sleep(0.3)
    daemon.request_stop()
    return int(await task)


def print_report(transcript: Transcript, out: TextIO) -> None:
    logging.getLogger().handlers  # noqa: B018 - keep logging configured while printing
    out.write("\n--- dialogue ---\n")
    for who, text in transcript.lines:
        out.write(f"{who:>8}: {text}\n")
    for note in transcript.tools:
        out.write(f"    tool: {note}\n")
    out.write("\n--- per-turn latency (ms) ---\n")
    header = ("turn", "endpoint", "stt final", "llm ttft", "tts ttfb", "voice-to-voice", "outcome")
    out.write("{:<14}{:>10}{:>11}{:>10}{:>10}{:>16}  {}\n".format(*header))
    for m in transcript.turns:
        out.write(
            f"{m.turn_id:<14}{_ms(m.endpoint_delay_ms):>10}{_ms(m.stt_final_ms):>11}"
            f"{_ms(m.llm_ttft_ms):>10}{_ms(m.tts_ttfb_ms):>10}{_ms(m.voice_to_voice_ms):>16}"
            f"  {m.outcome}\n"
        )
    if transcript.faults:
        out.write(f"\nfaults: {len(transcript.faults)}\n")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
