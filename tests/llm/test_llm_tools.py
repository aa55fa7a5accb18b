"""ToolRegistry: allow-list, argument validation, built-ins, webhooks, fuzzing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _llm_support import FIXED_NOW, llm_config
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentd.llm.tool_catalog import tools_from_config
from agentd.llm.tools import RESULT_CAP_CHARS, ToolRegistry

pytestmark = pytest.mark.timeout(30)

BUILTINS = [
    {"name": "time", "kind": "time"},
    {"name": "opening_hours", "kind": "opening_hours"},
    {"name": "call_staff", "kind": "call_staff", "description": "Call reception."},
]


def registry(tools: list[dict[str, Any]] = BUILTINS, call_staff: Any = None) -> ToolRegistry:
    config = llm_config("http://127.0.0.1:9/v1", tools=tools)
    return tools_from_config(config, call_staff or (lambda reason: None), now=lambda: FIXED_NOW)


async def run(reg: ToolRegistry, name: str, arguments: Any) -> tuple[bool, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    result = await reg.execute(name, text)
    return result.ok, json.loads(result.result_json)


def test_tools_param_lists_only_declared_tools() -> None:
    param = registry(BUILTINS[1:]).tools_param()
    assert [t["function"]["name"] for t in param] == ["opening_hours", "call_staff"]
    assert all(t["type"] == "function" for t in param)
    assert param[1]["function"]["description"] == "Call reception."
    assert param[1]["function"]["parameters"]["required"] == ["reason"]


async def test_undeclared_tool_is_an_error_result() -> None:
    ok, result = await run(registry(BUILTINS[1:]), "time", {})
    assert not ok and "unknown tool 'time'" in result["error"]


async def test_time_tool_reports_site_local_time() -> None:
    ok, result = await run(registry(), "time", "")
    assert ok
    assert result == {
        "time": "10:30",
        "weekday": "wednesday",
        "date": "2025-06-11",
        "timezone": "Europe/Berlin",
    }


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("today", {"day": "wednesday", "hours": "09:00-17:00", "open_now": True, "now": "10:30"}),
        ("tomorrow", {"day": "thursday", "hours": "09:00-17:00"}),
        ("Saturday", {"day": "saturday", "hours": "closed", "date": "2025-06-14"}),
        ("wednesday", {"day": "wednesday", "date": "2025-06-11"}),
    ],
)
async def test_opening_hours(day: str, expected: dict[str, Any]) -> None:
    ok, result = await run(registry(), "opening_hours", {"day": day})
    assert ok
    assert expected.items() <= result.items()


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"day": "someday"}, "unknown day"),
        ({"day": 5}, "is not of type 'string'"),
        ({"day": "today", "extra": 1}, "Additional properties"),
        ("[1, 2]", "must be a JSON object"),
        ('{"day": "tomor', "not valid JSON"),
    ],
)
async def test_bad_arguments_are_error_results(arguments: Any, fragment: str) -> None:
    ok, result = await run(registry(), "opening_hours", arguments)
    assert not ok and fragment in result["error"]


async def test_call_staff_sync_async_and_failing_callbacks() -> None:
    seen: list[str] = []
    ok, result = await run(registry(call_staff=seen.append), "call_staff", {"reason": "Ada"})
    assert ok and result == {"notified": True} and seen == ["Ada"]

    async def async_call(reason: str) -> None:
        seen.append("async " + reason)

    ok, _ = await run(registry(call_staff=async_call), "call_staff", {"reason": "Bob"})
    assert ok and seen[-1] == "async Bob"

    def broken(reason: str) -> None:
        raise OSError("GPIO busy")

    ok, result = await run(registry(call_staff=broken), "call_staff", {"reason": "Cy"})
    assert not ok and result == {"error": "call_staff failed: OSError"}
    ok, result = await run(registry(call_staff=seen.append), "call_staff", {})
    assert not ok and "'reason' is a required property" in result["error"]


class WebhookServer:
    """A tiny local service whose behaviour each test picks by path."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.release = asyncio.Event()
        self.base = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(await request.json())
        kind = request.match_info["kind"]
        if kind == "json":
            return web.json_response({"ok": True, "echo": self.received[-1]})
        if kind == "text":
            return web.Response(text="plain answer")
        if kind == "huge":
            return web.Response(text="z" * 100_000)
        if kind == "slow":
            await self.release.wait()
            return web.Response(text="too late")
        return web.json_response({"error": "boom"}, status=500)


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookServer]:
    server = WebhookServer()
    app = web.Application()
    app.router.add_post("/{kind}", server.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    server.release.set()
    await runner.cleanup()


def hook(server: WebhookServer, kind: str, **extra: Any) -> ToolRegistry:
    return registry([{"name": "svc", "kind": "webhook", "url": f"{server.base}/{kind}", **extra}])


async def test_webhook_json_and_text(webhook: WebhookServer) -> None:
    ok, result = await run(hook(webhook, "json"), "svc", {"q": "a"})
    assert ok and result == {"ok": True, "echo": {"q": "a"}}
    ok, result = await run(hook(webhook, "text"), "svc", {})
    assert ok and result == {"text": "plain answer"}
    assert webhook.received == [{"q": "a"}, {}]


async def test_webhook_huge_answer_is_capped(webhook: WebhookServer) -> None:
    result = await hook(webhook, "huge").execute("svc", "{}")
    assert result.ok and len(result.result_json) <= RESULT_CAP_CHARS + 100
    assert json.loads(result.result_json)["truncated"] is True


async def test_webhook_errors_and_timeouts_are_error_results(webhook: WebhookServer) -> None:
    ok, result = await run(hook(webhook, "fail"), "svc", {})
    assert not ok and "HTTP 500" in result["error"]
    ok, result = await run(hook(webhook, "slow", timeout_s=0.2), "svc", {})
    assert not ok and "0.2 s" in result["error"]
    ok, result = await run(
        registry([{"name": "svc", "kind": "webhook", "url": "http://127.0.0.1:9/x"}]), "svc", {}
    )
    assert not ok and "unreachable" in result["error"]


async def test_webhook_schema_is_enforced(webhook: WebhookServer) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    reg = hook(webhook, "json", parameters=schema)
    ok, result = await run(reg, "svc", {"n": "three"})
    assert not ok and "n: 'three' is not of type 'integer'" in result["error"]
    assert webhook.received == []  # never sent


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
ARGUMENTS = (
    st.text()
    | JSON_VALUES.map(json.dumps)
    | st.dictionaries(st.sampled_from(["day", "reason", "x"]), JSON_VALUES).map(json.dumps)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["time", "opening_hours", "call_staff", "nope", ""]), text=ARGUMENTS)
def test_fuzzed_arguments_never_raise(name: str, text: str) -> None:
    reg = registry()
    result = asyncio.run(reg.execute(name, text))
    decoded = json.loads(result.result_json)
    assert isinstance(decoded, dict)
    assert result.ok or "error" in decoded
    result.result_json.encode("utf-8")  # always sendable back to the API
