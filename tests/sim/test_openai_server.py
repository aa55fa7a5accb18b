"""The OpenAI emulator's wire format, checked raw and through the official SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from agentd.sim.background import running_in_thread
from agentd.sim.openai_server import OpenAiEmulator, split_tokens
from agentd.sim.scenario import scenario_from_dict

pytestmark = pytest.mark.timeout(20)

SCENARIO = scenario_from_dict(
    {
        "turn": [
            {"visitor": "Hi there", "reply": "Hello, welcome to the front desk."},
            {
                "visitor": "Open tomorrow?",
                "reply": "Nine to five.",
                "tool": "opening_hours",
                "tool_arguments": {"day": "tomorrow", "detail": "a longer argument value"},
            },
        ]
    }
)
HEADERS = {"Authorization": "Bearer test"}


@pytest.fixture
async def emulator() -> AsyncIterator[OpenAiEmulator]:
    emu = OpenAiEmulator(SCENARIO)
    await emu.start()
    yield emu
    await emu.stop()


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


async def raw_events(emu: OpenAiEmulator, payload: dict[str, Any]) -> list[str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emu.base_url}/chat/completions", json=payload, headers=HEADERS) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = (await resp.read()).decode()
    assert raw.endswith("\n\n")
    events = raw.split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events)
    return [e.removeprefix("data: ") for e in events]


async def test_sse_stream_shape(emulator: OpenAiEmulator) -> None:
    payload = body("Hi there", stream=True, stream_options={"include_usage": True})
    events = await raw_events(emulator, payload)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert "".join(content) == "Hello, welcome to the front desk."
    assert all(0 < len(piece) <= 5 for piece in content)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len(content)
    assert len({c["id"] for c in chunks}) == 1


async def test_latency_is_paced_on_deadlines_from_arrival(emulator: OpenAiEmulator) -> None:
    """Event k >= 1 never leaves before arrival + TTFT + (k - 1) x chunk_ms.

    The latency bench subtracts exactly that schedule as service time; an event sent
    early would make the daemon's overhead look smaller than it is.
    """
    emulator.ttft_ms, emulator.chunk_ms = 60.0, 5.0
    await raw_events(emulator, body("Hi there", stream=True))
    record = emulator.requests[-1]
    assert len(record.sent_at) == record.chunks_sent > 5
    assert record.sent_at[0] - record.received_at < 0.06  # the role chunk is not held
    for index, sent in enumerate(record.sent_at[1:], 1):
        due = record.received_at + (60.0 + (index - 1) * 5.0) / 1000
        assert sent >= due - 1e-6, f"event {index} left {1000 * (due - sent):.2f} ms early"


async def test_models_listing_needs_the_key(emulator: OpenAiEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{emulator.base_url}/models", headers=HEADERS) as resp:
            listing = await resp.json()
        async with session.get(f"{emulator.base_url}/models") as refused:
            assert refused.status == 401
    assert listing["object"] == "list" and listing["data"][0]["id"] == emulator.model
    assert len(emulator.model_listings) == 1


async def test_no_usage_chunk_unless_asked(emulator: OpenAiEmulator) -> None:
    events = await raw_events(emulator, body("Hi there", stream=True))
    assert all("usage" not in json.loads(e) for e in events[:-1])


async def test_sdk_parses_streamed_tool_call(emulator: OpenAiEmulator) -> None:
    client = openai.AsyncOpenAI(base_url=emulator.base_url, api_key="test", max_retries=0)
    try:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "open tomorrow"}], stream=True
        )
        ids, names, arguments, finish = set(), [], [], None
        async for chunk in stream:
            for call in chunk.choices[0].delta.tool_calls or []:
                if call.id:
                    ids.add(call.id)
                if call.function and call.function.name:
                    names.append(call.function.name)
                if call.function and call.function.arguments:
                    arguments.append(call.function.arguments)
            finish = chunk.choices[0].finish_reason or finish
        assert names == ["opening_hours"] and len(ids) == 1 and finish == "tool_calls"
        assert len(arguments) > 3  # fragmented
        assert json.loads("".join(arguments))["day"] == "tomorrow"
        # After the tool result, the scenario's reply.
        reply = await client.chat.completions.create(
            model="m",
            messages=[
                {"role": "user", "content": "Open tomorrow?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "opening_hours", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "{}"},
            ],
        )
        assert reply.choices[0].message.content == "Nine to five."
    finally:
        await client.close()


async def test_non_streaming_tool_call_and_default_reply(emulator: OpenAiEmulator) -> None:
    client = openai.AsyncOpenAI(base_url=emulator.base_url, api_key="test", max_retries=0)
    try:
        done = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Open tomorrow?"}]
        )
        call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert call.function.name == "opening_hours"  # type: ignore[union-attr]
        assert done.choices[0].finish_reason == "tool_calls"
        echo = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "unscripted words"}]
        )
        assert "unscripted words" in (echo.choices[0].message.content or "")
        assert echo.usage is not None and echo.usage.prompt_tokens > 0
    finally:
        await client.close()
    assert [r.messages[-1]["content"] for r in emulator.requests] == [
        "Open tomorrow?",
        "unscripted words",
    ]


async def test_auth_and_status_faults(emulator: OpenAiEmulator) -> None:
    url = f"{emulator.base_url}/chat/completions"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body("Hi"), headers={"Authorization": "Bearer x"}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "invalid_api_key"
        emulator.faults.status = 429
        emulator.faults.status_times = 1
        emulator.faults.retry_after_s = 3
        async with session.post(url, json=body("Hi"), headers=HEADERS) as r:
            assert r.status == 429 and r.headers["retry-after"] == "3"
            assert "message" in (await r.json())["error"]
        async with session.post(url, json=body("Hi"), headers=HEADERS) as r:
            assert r.status == 200  # status_times used up
    assert [r.authorized for r in emulator.requests] == [False, True, True]


async def test_faults_change_while_running(emulator: OpenAiEmulator) -> None:
    emulator.faults.huge_reply_chars = 3000
    events = await raw_events(emulator, body("Hi there", stream=True))
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert len(text) == 3000
    emulator.faults.reset()
    emulator.faults.bad_tool_arguments = True
    emulator.faults.unknown_tool_name = "rm_rf"
    events = await raw_events(emulator, body("Open tomorrow?", stream=True))
    calls = [
        c for e in events[:-1] for c in json.loads(e)["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert calls[0]["function"]["name"] == "rm_rf"
    with pytest.raises(ValueError):
        json.loads("".join(c["function"]["arguments"] for c in calls))


def test_thread_runner_serves_sync_sdk() -> None:
    with running_in_thread(OpenAiEmulator(SCENARIO, api_key="k", chunk_ms=1)) as emu:
        client = openai.OpenAI(base_url=emu.base_url, api_key="k", max_retries=0)
        with client:
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi there!"}], stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "Hello, welcome to the front desk."
        assert len(emu.requests) == 1


def test_split_tokens_round_trips() -> None:
    text = "Supercalifragilistic words,  spaced   out. "
    pieces = split_tokens(text)
    assert "".join(pieces) == text
    assert max(len(p) for p in pieces) <= 5
