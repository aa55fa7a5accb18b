"""Fixtures: the OpenAI emulator on a free port, and ChatLlm instances pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _llm_support import FIXED_NOW, SCENARIO

from agentd.config.sections_llm import LlmConfig
from agentd.llm import ChatLlm
from agentd.llm.tool_catalog import tools_from_config
from agentd.sim.openai_server import OpenAiEmulator


@pytest.fixture
async def emulator() -> AsyncIterator[OpenAiEmulator]:
    emu = OpenAiEmulator(SCENARIO, api_key="test")
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def make_llm() -> AsyncIterator[Callable[..., ChatLlm]]:
    """make_llm(config, api_key="test", call_staff=...) -> ChatLlm, closed at teardown."""
    made: list[ChatLlm] = []

    def factory(config: LlmConfig, api_key: str = "test", call_staff: Any = None) -> ChatLlm:
        registry = tools_from_config(
            config, call_staff or (lambda reason: None), now=lambda: FIXED_NOW
        )
        llm = ChatLlm(config, api_key, registry)
        made.append(llm)
        return llm

    yield factory
    for llm in made:
        await llm.aclose()
