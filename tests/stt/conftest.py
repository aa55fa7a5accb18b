"""Fixtures for the STT link: the AssemblyAI emulator and an event collector."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _stt_support import KEY, RATE, TEXTS, Collector

from agentd.config.sections_stt import SttConfig
from agentd.sim.assemblyai_server import AssemblyAiEmulator
from agentd.sim.speech import tools_available
from agentd.stt.assemblyai import AssemblyAiStt


@pytest.fixture
def need_tools() -> None:
    if not tools_available():
        pytest.skip("espeak-ng/sox missing")


@pytest.fixture
async def emu(need_tools: None) -> AsyncIterator[AssemblyAiEmulator]:
    server = AssemblyAiEmulator(transcripts=TEXTS, api_key=KEY, final_delay_ms=50)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def events() -> Collector:
    return Collector()


@pytest.fixture
async def make_stt(emu: AssemblyAiEmulator, events: Collector) -> AsyncIterator[Callable[..., Any]]:
    """Build started links against the emulator; closes them and checks for leaks."""
    tasks_before = asyncio.all_tasks()
    threads_before = set(threading.enumerate())
    made: list[AssemblyAiStt] = []

    async def make(key: str = KEY, **overrides: Any) -> AssemblyAiStt:
        config = dataclasses.replace(SttConfig(api_host=emu.url), **overrides)
        stt = AssemblyAiStt(config, key, RATE, events)
        await stt.start()
        made.append(stt)
        return stt

    yield make
    for stt in made:
        await stt.close()
    # Once every server-side session has seen its socket close, nothing may remain.
    await emu.wait_until(lambda: all(s.closed for s in emu.sessions))
    await asyncio.sleep(0)
    leaked = {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
    leaked -= {asyncio.current_task()}
    assert not leaked, f"leaked tasks: {leaked}"
    assert set(threading.enumerate()) <= threads_before, "leaked threads"
