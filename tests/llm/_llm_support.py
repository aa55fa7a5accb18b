"""Shared test data for the LLM tests: a scenario, a fixed clock, a config builder."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agentd.config._loader import build
from agentd.config.sections_llm import LlmConfig
from agentd.llm import ChatLlm
from agentd.llm.events import LlmEvent
from agentd.sim.scenario import scenario_from_dict

# A Wednesday, 10:30 in Berlin: inside the default 09:00-17:00 hours.
FIXED_NOW = datetime(2025, 6, 11, 10, 30, tzinfo=ZoneInfo("Europe/Berlin"))

SCENARIO = scenario_from_dict(
    {
        "name": "llm tests",
        "turn": [
            {"visitor": "Tell me a story.", "reply": "Once upon a time, a robot said hello."},
            {
                "visitor": "When are you open tomorrow?",
                "reply": "We're open from nine to five tomorrow.",
                "tool": "opening_hours",
                "tool_arguments": {"day": "tomorrow"},
            },
            {
                "visitor": "Is my parcel here?",
                "reply": "Yes, your parcel is at the desk.",
                "tool": "parcel_lookup",
                "tool_arguments": {"name": "Ada"},
            },
            {
                "visitor": "Please call someone.",
                "reply": "Someone is on their way.",
                "tool": "call_staff",
                "tool_arguments": {"reason": "visitor needs help"},
            },
        ],
    }
)


def llm_config(base_url: str, **overrides: Any) -> LlmConfig:
    data: dict[str, Any] = {
        "base_url": base_url,
        "model": "test-model",
        "first_token_timeout_s": 3.0,
        "chunk_gap_timeout_s": 2.0,
        "max_retries": 0,
        "opening_hours": {"timezone": "Europe/Berlin"},
        "tools": [
            {"name": "opening_hours", "kind": "opening_hours"},
            {"name": "call_staff", "kind": "call_staff"},
        ],
    }
    data.update(overrides)
    return build(LlmConfig, data, "llm")


async def collect(llm: ChatLlm, user_text: str) -> list[LlmEvent]:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": user_text}]
    return [event async for event in llm.stream_reply(messages)]
