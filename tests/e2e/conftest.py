"""End-to-end fixtures: the real daemon in-process with sim devices and the emulators."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentd.sim.harness import SimulatedKiosk
from agentd.sim.stack import ServiceProfile

FAST = ServiceProfile(stt_final_ms=120, llm_ttft_ms=80, llm_chunk_ms=5, tts_ttfb_ms=40)


def write_scenario(path: Path, turns: list[dict[str, Any]], *, tail_ms: int = 2500) -> Path:
    """A scenario TOML from plain dicts (keys as in agentd/sim/scenario.py)."""
    lines = ['name = "e2e"', "noise_db = -55.0", f"tail_ms = {tail_ms}"]
    for turn in turns:
        lines.append("\n[[turn]]")
        for key, value in turn.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {inner} }}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


class LineReader:
    """Collects a subprocess's stdout lines on a thread, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, name="line-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def close(self) -> str:
        """Stop the process; everything it printed."""
        self._proc.terminate()
        self._proc.wait(5)
        self._thread.join(5)
        return "\n".join(self.lines)


def audible_ms(kiosk: SimulatedKiosk) -> float:
    """How much of the agent's audio the simulated speaker has played so far."""
    speaker = kiosk.speaker
    played = sum(len(chunk) for _, chunk in list(speaker.played) if any(chunk))
    return speaker.format.duration_ms(played)


@pytest.fixture
def make_kiosk(tmp_path: Path) -> Callable[..., SimulatedKiosk]:
    def make(
        turns: list[dict[str, Any]],
        *,
        profile: ServiceProfile = FAST,
        extra_toml: str = "",
        tail_ms: int = 2500,
    ) -> SimulatedKiosk:
        scenario = write_scenario(tmp_path / "scenario.toml", turns, tail_ms=tail_ms)
        return SimulatedKiosk(scenario, tmp_path / "out", profile=profile, extra_toml=extra_toml)

    return make


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    """Fail the test if it leaves asyncio tasks behind."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0.05)
    leaked = [
        t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
    ]
    assert not leaked, f"leaked tasks: {[t.get_name() for t in leaked]}"
