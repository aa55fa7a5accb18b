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


# --- provider behaviour beyond the happy path, through the official SDK ---------------


async def _sdk_stream(emu: OpenAiEmulator, text: str, **extra: Any) -> list[Any]:
    client = openai.AsyncOpenAI(base_url=emu.base_url, api_key="test", max_retries=0)
    try:
        stream = await client.chat.completions.create(
            model=extra.pop("model", "m"),
            messages=[{"role": "user", "content": text}],
            stream=True,
            **extra,
        )
        return [chunk async for chunk in stream]
    finally:
        await client.close()


def _calls_by_index(chunks: list[Any]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for frag in choice.delta.tool_calls or []:
                call = calls.setdefault(frag.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += frag.id or ""
                if frag.function is not None:
                    call["name"] += frag.function.name or ""
                    call["arguments"] += frag.function.arguments or ""
    return calls


async def test_parallel_tool_calls_and_text_in_one_message(emulator: OpenAiEmulator) -> None:
    emulator.shape.parallel_tool_calls = [("call_staff", {"reason": "a visitor"})]
    emulator.shape.text_before_tool_call = "Let me check that."
    chunks = await _sdk_stream(emulator, "Open tomorrow?")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Let me check that."
    calls = _calls_by_index(chunks)
    assert [calls[i]["name"] for i in sorted(calls)] == ["opening_hours", "call_staff"]
    assert len({c["id"] for c in calls.values()}) == 2
    assert json.loads(calls[1]["arguments"]) == {"reason": "a visitor"}
    assert json.loads(calls[0]["arguments"])["day"] == "tomorrow"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls" and finishes.count("tool_calls") == 1


async def test_empty_choices_first_chunk(emulator: OpenAiEmulator) -> None:
    emulator.shape.empty_first_chunk = True
    chunks = await _sdk_stream(emulator, "Hi there")
    assert chunks[0].choices == []
    assert chunks[0].model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, welcome to the front desk."


async def test_one_chunk_reply_with_tools_waits_for_the_whole_generation(
    emulator: OpenAiEmulator,
) -> None:
    """Ollama with tools: text, every call and the finish reason in one chunk, late."""
    emulator.shape.one_chunk = True
    emulator.shape.parallel_tool_calls = [("call_staff", {"reason": "x"})]
    emulator.ttft_ms, emulator.chunk_ms = 20.0, 10.0
    chunks = await _sdk_stream(emulator, "Open tomorrow?", stream_options={"include_usage": True})
    with_choices = [c for c in chunks if c.choices]
    assert len(with_choices) == 1
    choice = with_choices[0].choices[0]
    assert choice.finish_reason == "tool_calls" and choice.delta.role == "assistant"
    assert [t.function.name for t in choice.delta.tool_calls] == ["opening_hours", "call_staff"]
    tokens = chunks[-1].usage.completion_tokens
    assert tokens > 5
    record = emulator.requests[-1]
    generation_ms = 20.0 + 10.0 * (tokens - 1)  # the paced stream would have ended here
    assert record.sent_at[0] - record.received_at >= generation_ms / 1000 - 1e-6
    words = await _sdk_stream(emulator, "Hi there")
    assert [c.choices[0].delta.content for c in words if c.choices] == [
        "Hello, welcome to the front desk."
    ]


async def test_429_rate_limit_with_retry_after(emulator: OpenAiEmulator) -> None:
    emulator.faults.status, emulator.faults.retry_after_s = 429, 120
    with pytest.raises(openai.RateLimitError) as caught:
        await _sdk_stream(emulator, "Hi there")
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "120"
    assert caught.value.response.headers["x-request-id"].startswith("req_")


async def test_429_insufficient_quota_is_its_own_code(emulator: OpenAiEmulator) -> None:
    emulator.faults.insufficient_quota = True
    with pytest.raises(openai.RateLimitError) as caught:
        await _sdk_stream(emulator, "Hi there")
    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"
    assert "retry-after" not in caught.value.response.headers


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini", "o1", "o3-mini", "o4-mini-2025-04-16"])
async def test_reasoning_models_reject_max_tokens_and_temperature(
    emulator: OpenAiEmulator, model: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await _sdk_stream(emulator, "Hi there", model=model, max_tokens=50)
    assert caught.value.code == "unsupported_parameter" and caught.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as caught:
        await _sdk_stream(emulator, "Hi there", model=model, temperature=0.6)
    assert caught.value.code == "unsupported_value" and caught.value.param == "temperature"
    ok = await _sdk_stream(
        emulator, "Hi there", model=model, max_completion_tokens=50, temperature=1
    )
    assert ok[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4.1", "llama3.1:8b", "o"])
async def test_other_models_take_max_tokens_and_temperature(
    emulator: OpenAiEmulator, model: str
) -> None:
    chunks = await _sdk_stream(emulator, "Hi there", model=model, max_tokens=50, temperature=0.2)
    assert chunks[-1].choices[0].finish_reason == "stop"
