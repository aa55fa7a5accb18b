"""Abuse limits on tools (issue 14): a visitor who asks for staff ten times, a model that
calls a tool in a loop, a webhook per-minute cap. Every refusal is reported, never silent."""

from __future__ import annotations

from collections.abc import Callable

from _llm_support import FIXED_NOW, SCENARIO, collect, llm_config

from agentd.config._loader import build
from agentd.config.sections_llm import ToolConfig
from agentd.llm import ChatLlm
from agentd.llm.events import LlmDone, TextDelta
from agentd.llm.limits import ToolLimit, ToolLimiter
from agentd.llm.tool_catalog import tools_from_config
from agentd.sim.openai_server import OpenAiEmulator


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reports() -> tuple[list[tuple[str, str, float]], Callable[[str, str, float], None]]:
    seen: list[tuple[str, str, float]] = []
    return seen, lambda tool, limit, retry: seen.append((tool, limit, retry))


async def test_visitor_asks_for_staff_ten_times() -> None:
    config = llm_config("http://127.0.0.1:1/v1")
    calls: list[str] = []
    seen, report = _reports()
    registry = tools_from_config(config, calls.append, now=lambda: FIXED_NOW, on_limit=report)
    results = [
        await registry.execute("call_staff", '{"reason": "visitor wants staff"}') for _ in range(10)
    ]
    assert len(calls) == 1  # one call brings someone; nine more must not
    assert results[0].ok and not any(r.ok for r in results[1:])
    assert all("already" in r.result_json and "politely" in r.result_json for r in results[1:])
    assert [limit for _, limit, _ in seen] == ["cooldown"] * 9
    assert registry.limiter is not None and registry.limiter.refused == 9


def test_cooldown_is_per_conversation_and_hourly_cap_is_not() -> None:
    clock = Clock()
    seen, report = _reports()
    limiter = ToolLimiter({"call_staff": ToolLimit(120.0, 3, 20)}, report, clock)
    assert limiter.check("call_staff") is None
    assert limiter.check("call_staff") is not None  # same conversation: cooldown
    limiter.new_conversation()  # the next visitor may call staff at once
    assert limiter.check("call_staff") is None
    clock.now += 200  # cooldown over
    assert limiter.check("call_staff") is None
    clock.now += 200
    refusal = limiter.check("call_staff")  # fourth within the hour
    assert refusal is not None and refusal.limit == "per_hour"
    assert 0 < refusal.retry_after_s <= 3600
    clock.now += 3600
    assert limiter.check("call_staff") is None
    assert [limit for _, limit, _ in seen] == ["cooldown", "per_hour"]


def test_webhook_per_minute_cap_and_kind_defaults() -> None:
    webhook = build(ToolConfig, {"name": "book", "kind": "webhook", "url": "http://x/"})
    staff = build(ToolConfig, {"name": "staff", "kind": "call_staff"})
    assert ToolLimit.for_tool(webhook) == ToolLimit(0.0, 240, 10)
    assert ToolLimit.for_tool(staff) == ToolLimit(120.0, 6, 20)
    clock = Clock()
    limiter = ToolLimiter({"book": ToolLimit.for_tool(webhook)}, None, clock)
    assert all(limiter.check("book") is None for _ in range(10))
    refusal = limiter.check("book")
    assert refusal is not None and refusal.limit == "per_minute"
    assert "try again" in refusal.message("book")
    clock.now += 61
    assert limiter.check("book") is None


async def test_model_calling_a_tool_in_a_loop(emulator: OpenAiEmulator) -> None:
    """The model calls call_staff after every tool result; staff is called once, the model
    reads refusals, and each reply still ends in words (max_tool_rounds bounds a reply)."""
    emulator.faults.tool_loop = True
    calls: list[str] = []
    config = llm_config(emulator.base_url)
    seen, report = _reports()
    registry = tools_from_config(config, calls.append, now=lambda: FIXED_NOW, on_limit=report)
    llm = ChatLlm(config, "test", registry)
    assert SCENARIO.reply_for("Please call someone.") is not None
    try:
        for _ in range(3):
            events = await collect(llm, "Please call someone.")
            assert isinstance(events[-1], LlmDone)
            assert any(isinstance(e, TextDelta) and e.text for e in events)
    finally:
        await llm.aclose()
    assert len(calls) == 1
    assert len(seen) >= 3 * config.max_tool_rounds - 1
    refused = [m for r in emulator.requests for m in r.messages if m.get("role") == "tool"]
    assert any("already" in str(m.get("content")) for m in refused)
