"""ChatLlm through the real openai SDK against the local emulator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _llm_support import SCENARIO, collect, llm_config
from aiohttp import web

from agentd.errors import LlmError, LlmRateLimited, LlmTimeout
from agentd.llm import ChatLlm
from agentd.llm.events import (
    LlmDone,
    RequestStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReported,
)
from agentd.sim.openai_server import OpenAiEmulator

pytestmark = pytest.mark.timeout(20)

MakeLlm = Callable[..., ChatLlm]


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def done_of(events: list[Any]) -> LlmDone:
    assert isinstance(events[-1], LlmDone)
    return events[-1]


async def test_text_streams_as_ordered_deltas(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    llm = make_llm(llm_config(emulator.base_url))
    events = await collect(llm, "Tell me a story.")
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 5  # really streamed, not one blob
    assert text_of(events) == "Once upon a time, a robot said hello."
    done = done_of(events)
    assert done.finish_reason == "stop"
    assert done.prompt_tokens > 0 and done.completion_tokens == len(deltas)
    assert done.new_messages == []
    body = emulator.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "test-model"
    assert [t["function"]["name"] for t in body["tools"]] == ["opening_hours", "call_staff"]


async def test_opening_hours_tool_round_trip(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    llm = make_llm(llm_config(emulator.base_url))
    events = await collect(llm, "When are you open tomorrow?")
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [s.name for s in started] == ["opening_hours"]
    assert json.loads(started[0].arguments_json) == {"day": "tomorrow"}
    assert finished[0].ok and finished[0].call_id == started[0].call_id
    # FIXED_NOW is a Wednesday: tomorrow is Thursday, default hours.
    assert json.loads(finished[0].result_json) == {
        "day": "thursday",
        "date": "2025-06-12",
        "hours": "09:00-17:00",
    }
    assert text_of(events) == "We're open from nine to five tomorrow."
    done = done_of(events)
    assert [m["role"] for m in done.new_messages] == ["assistant", "tool"]
    assert done.new_messages[1]["tool_call_id"] == started[0].call_id
    # The second request carried the tool call and its result back to the model.
    assert len(emulator.requests) == 2
    second = emulator.requests[1].messages
    assert second[-2]["tool_calls"][0]["id"] == started[0].call_id
    assert second[-1] == {
        "role": "tool",
        "tool_call_id": started[0].call_id,
        "content": finished[0].result_json,
    }


async def test_each_request_is_accounted_as_it_happens(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    """One RequestStarted per tool round, each before its text; each round's usage
    after it; LlmDone's totals are their sums (so a reply cut short keeps its rounds)."""
    llm = make_llm(llm_config(emulator.base_url))
    events = await collect(llm, "When are you open tomorrow?")
    assert len(emulator.requests) == 2
    kinds = [type(e) for e in events]
    assert kinds.count(RequestStarted) == 2 and kinds[0] is RequestStarted
    usages = [e for e in events if isinstance(e, UsageReported)]
    assert len(usages) == 2 and all(u.prompt_tokens > 0 for u in usages)
    # The first round's usage comes before its tool runs, the second after the text.
    assert kinds.index(UsageReported) < kinds.index(ToolCallStarted)
    assert kinds.index(TextDelta) > kinds.index(RequestStarted, 1)
    done = done_of(events)
    assert done.prompt_tokens == sum(u.prompt_tokens for u in usages)
    assert done.completion_tokens == sum(u.completion_tokens for u in usages)


async def test_wire_body_is_what_the_sdk_transform_would_send(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    """History and tools skip the SDK's transform (extra_body): pin that it is a no-op.

    A tool round trip carries every message shape we send (system, user, assistant with
    tool_calls, tool). If a future SDK started rewriting any of them, this fails.
    """
    from openai._utils import async_maybe_transform
    from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming

    llm = make_llm(llm_config(emulator.base_url))
    await collect(llm, "When are you open tomorrow?")
    assert len(emulator.requests) == 2
    for request in emulator.requests:
        body = request.body
        roles = [m["role"] for m in body["messages"]]
        assert roles[0] == "system" and "user" in roles  # the placeholder was replaced
        typed = {k: v for k, v in body.items() if k != "stream"}
        transformed = await async_maybe_transform(typed, CompletionCreateParamsStreaming)
        assert transformed == typed
    assert [m["role"] for m in emulator.requests[1].messages][-2:] == ["assistant", "tool"]


async def test_warm_up_leaves_a_connection_the_turn_then_uses(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    llm = make_llm(llm_config(emulator.base_url))
    assert llm.warmer is not None
    llm.warm_up()
    await llm.warmer.settled()
    assert len(emulator.model_listings) == 1 and llm.warmer.failures == 0
    await collect(llm, "Tell me a story.")
    # The completion went over the warmed connection: no handshake on the critical path.
    assert emulator.requests[0].peer == emulator.model_listings[0]
    llm.warm_up()  # still fresh: no second probe
    await llm.warmer.settled()
    assert len(emulator.model_listings) == 1


async def test_warm_up_failure_is_silent_and_can_be_switched_off(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    refused = make_llm(llm_config(emulator.base_url), api_key="wrong")
    assert refused.warmer is not None
    refused.warm_up()
    await refused.warmer.settled()
    assert refused.warmer.failures == 1 and not emulator.model_listings
    off = make_llm(llm_config(emulator.base_url, warm_connection=False))
    off.warm_up()
    assert off.warmer is None and not emulator.model_listings


async def test_bad_tool_arguments_go_back_as_error_then_model_replies(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    emulator.faults.bad_tool_arguments = True
    llm = make_llm(llm_config(emulator.base_url))
    events = await collect(llm, "When are you open tomorrow?")
    finished = next(e for e in events if isinstance(e, ToolCallFinished))
    assert not finished.ok
    assert "not valid JSON" in json.loads(finished.result_json)["error"]
    assert text_of(events) == "We're open from nine to five tomorrow."
    assert "error" in emulator.requests[1].messages[-1]["content"]


async def test_unknown_tool_is_refused_not_executed(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    calls: list[str] = []
    emulator.faults.unknown_tool_name = "delete_everything"
    llm = make_llm(llm_config(emulator.base_url), call_staff=calls.append)
    events = await collect(llm, "Please call someone.")
    finished = next(e for e in events if isinstance(e, ToolCallFinished))
    assert finished.name == "delete_everything" and not finished.ok
    assert "unknown tool" in json.loads(finished.result_json)["error"]
    assert calls == []
    assert text_of(events) == "Someone is on their way."


async def test_call_staff_invokes_callback(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    reasons: list[str] = []

    async def call_staff(reason: str) -> None:
        reasons.append(reason)

    llm = make_llm(llm_config(emulator.base_url), call_staff=call_staff)
    events = await collect(llm, "Please call someone.")
    assert reasons == ["visitor needs help"]
    assert text_of(events) == "Someone is on their way."


@pytest.fixture
async def parcel_service() -> AsyncIterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"parcel": "at the desk", "count": 1})

    app = web.Application()
    app.router.add_post("/parcels", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/parcels", received
    await runner.cleanup()


async def test_webhook_tool_round_trip(
    emulator: OpenAiEmulator, make_llm: MakeLlm, parcel_service: tuple[str, list[Any]]
) -> None:
    url, received = parcel_service
    tool = {
        "name": "parcel_lookup",
        "kind": "webhook",
        "url": url,
        "description": "Look up parcels for a visitor.",
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    }
    llm = make_llm(llm_config(emulator.base_url, tools=[tool]))
    events = await collect(llm, "Is my parcel here?")
    assert received == [{"name": "Ada"}]
    finished = next(e for e in events if isinstance(e, ToolCallFinished))
    assert finished.ok and json.loads(finished.result_json) == {"parcel": "at the desk", "count": 1}
    assert text_of(events) == "Yes, your parcel is at the desk."
    declared = emulator.requests[0].tools[0]["function"]
    assert declared["name"] == "parcel_lookup" and declared["parameters"]["required"] == ["name"]


async def test_last_round_forbids_more_tools(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    llm = make_llm(llm_config(emulator.base_url, max_tool_rounds=1))
    events = await collect(llm, "When are you open tomorrow?")
    assert [r.body["tool_choice"] for r in emulator.requests] == ["auto", "none"]
    assert done_of(events).finish_reason == "stop"


async def test_rate_limit_maps_with_retry_after(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    emulator.faults.status = 429
    emulator.faults.retry_after_s = 7
    llm = make_llm(llm_config(emulator.base_url))
    with pytest.raises(LlmRateLimited) as info:
        await collect(llm, "Tell me a story.")
    assert info.value.retry_after_s == 7.0 and info.value.retryable


async def test_sdk_retries_a_transient_429(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    emulator.faults.status = 429
    emulator.faults.status_times = 1
    emulator.faults.retry_after_s = 0.05
    llm = make_llm(llm_config(emulator.base_url, max_retries=1))
    events = await collect(llm, "Tell me a story.")
    assert text_of(events) == "Once upon a time, a robot said hello."
    assert len(emulator.requests) == 2


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable_llm_errors(
    emulator: OpenAiEmulator, make_llm: MakeLlm, status: int
) -> None:
    emulator.faults.status = status
    llm = make_llm(llm_config(emulator.base_url))
    with pytest.raises(LlmError) as info:
        await collect(llm, "Tell me a story.")
    assert type(info.value) is LlmError and info.value.retryable
    assert f"HTTP {status}" in str(info.value)


async def test_wrong_key_is_not_retryable(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    llm = make_llm(llm_config(emulator.base_url), api_key="sk-wrong-secret")
    with pytest.raises(LlmError) as info:
        await collect(llm, "Tell me a story.")
    assert not info.value.retryable and "401" in str(info.value)
    assert "sk-wrong-secret" not in str(info.value)


async def test_stall_mid_stream_times_out(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    emulator.faults.stall_after_chunks = 4
    llm = make_llm(llm_config(emulator.base_url, chunk_gap_timeout_s=0.5))
    started = time.monotonic()
    with pytest.raises(LlmTimeout, match="mid-reply"):
        await collect(llm, "Tell me a story.")
    assert time.monotonic() - started < 3.0  # deadline 0.5 s, generous bound
    record = await emulator.wait_for_disconnect()
    assert record.chunks_sent == 4


async def test_slow_first_token_times_out(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    emulator.ttft_ms = 5000
    llm = make_llm(llm_config(emulator.base_url, first_token_timeout_s=0.3))
    started = time.monotonic()
    with pytest.raises(LlmTimeout, match="first token"):
        await collect(llm, "Tell me a story.")
    assert time.monotonic() - started < 2.0
    # The role delta arrived in time, but only content counts as the first token.
    assert emulator.requests[0].chunks_sent == 1


async def test_malformed_chunk_is_llm_error(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    emulator.faults.malformed_after_chunks = 2
    llm = make_llm(llm_config(emulator.base_url))
    with pytest.raises(LlmError, match="malformed"):
        await collect(llm, "Tell me a story.")


async def test_dropped_connection_is_llm_error(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    emulator.faults.drop_after_chunks = 3
    llm = make_llm(llm_config(emulator.base_url))
    with pytest.raises(LlmError):
        await collect(llm, "Tell me a story.")


async def test_model_text_passes_verbatim_and_the_spoken_stage_cleans_it(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    """ChatLlm reports what the model wrote; the reply pipeline's SpeakableStream cleans it."""
    from agentd.tts.speakable import SpeakableStream

    emulator.faults.control_chars = True
    llm = make_llm(llm_config(emulator.base_url))
    deltas = [e.text for e in await collect(llm, "Tell me a story.") if isinstance(e, TextDelta)]
    raw = "".join(deltas)
    assert any(c in raw for c in "\x00\x07\x1b")  # nothing hidden from the caller
    spoken = SpeakableStream()
    text = "".join(spoken.feed(d) for d in deltas) + spoken.flush()
    assert text.endswith("Once upon a time, a robot said hello.")
    assert not any(c in text for c in "\x00\x07\x1b*#`<>")
    assert "bold" in text  # the words survive, only the markup goes


async def test_empty_reply_finishes_cleanly(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    emulator.faults.empty_reply = True
    llm = make_llm(llm_config(emulator.base_url))
    events = await collect(llm, "Tell me a story.")
    prompt = done_of(events).prompt_tokens
    assert events == [RequestStarted(), UsageReported(prompt, 0), LlmDone("stop", prompt, 0, [])]


async def test_cancel_mid_stream_closes_the_connection(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    emulator.chunk_ms = 20
    emulator.faults.huge_reply_chars = 5000  # ~1000 pieces: seconds of streaming
    llm = make_llm(llm_config(emulator.base_url))
    got_text = asyncio.Event()
    deltas = 0

    seen: list[type] = []

    async def consume() -> None:
        nonlocal deltas
        async for event in llm.stream_reply([{"role": "user", "content": "Tell me a story."}]):
            seen.append(type(event))
            if isinstance(event, TextDelta):
                deltas += 1
                got_text.set()

    task = asyncio.create_task(consume())
    await got_text.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = await emulator.wait_for_disconnect(timeout_s=2.0)
    assert record.closed_by_client and record.chunks_sent < 100
    assert deltas < 100
    # The request was made; its usage chunk (the stream's last) never came.
    assert seen[0] is RequestStarted and UsageReported not in seen


def test_scenario_is_shared() -> None:
    # Guards the tests above against a scenario edit making them vacuous.
    assert SCENARIO.reply_for("when are you open tomorrow")
