"""ChatLlm against provider behaviour beyond the happy path (official SDK, emulator).

Pins issue #13's LLM half: the request parameters gpt-5/o-series accept, agentd's own
deadlines around the SDK's retry loop, the permanent `insufficient_quota`, and reply
layouts real servers produce (parallel tool calls, text with a tool call, an empty
`choices` first chunk, the whole reply in one chunk).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from _llm_support import collect, llm_config

from agentd.errors import (
    LlmAuthError,
    LlmError,
    LlmQuotaExceeded,
    LlmRateLimited,
    LlmRequestRejected,
    LlmTimeout,
)
from agentd.llm import ChatLlm
from agentd.llm.events import LlmDone, TextDelta, ToolCallFinished, ToolCallStarted
from agentd.sim.openai_server import OpenAiEmulator

pytestmark = pytest.mark.timeout(20)

MakeLlm = Callable[..., ChatLlm]


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_sends_max_completion_tokens_and_no_temperature_by_default(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    llm = make_llm(llm_config(emulator.base_url, model="gpt-5-mini"))
    events = await collect(llm, "Tell me a story.")
    assert text_of(events) == "Once upon a time, a robot said hello."
    body = emulator.requests[0].body
    assert body["max_completion_tokens"] == 300
    assert "max_tokens" not in body and "temperature" not in body


async def test_configured_temperature_is_sent_and_a_refusal_is_permanent(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    llm = make_llm(llm_config(emulator.base_url, temperature=0.6, max_retries=3))
    await collect(llm, "Tell me a story.")
    assert emulator.requests[0].body["temperature"] == 0.6
    refused = make_llm(llm_config(emulator.base_url, model="o4-mini", temperature=0.6))
    with pytest.raises(LlmRequestRejected) as info:
        await collect(refused, "Tell me a story.")
    assert info.value.error_kind == "llm_rejected" and not info.value.retryable
    assert "unsupported_value" in str(info.value) and "temperature" in str(info.value)
    assert len(emulator.requests) == 2  # not retried


async def test_old_token_limit_name_on_request_and_its_refusal(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    config = llm_config(emulator.base_url, token_limit_param="max_tokens", max_tokens=64)
    await collect(make_llm(config), "Tell me a story.")
    assert emulator.requests[0].body["max_tokens"] == 64
    assert "max_completion_tokens" not in emulator.requests[0].body
    gpt5 = llm_config(emulator.base_url, token_limit_param="max_tokens", model="gpt-5")
    with pytest.raises(LlmRequestRejected, match=r"unsupported_parameter, param max_tokens"):
        await collect(make_llm(gpt5), "Tell me a story.")


async def test_insufficient_quota_is_permanent_and_not_retried(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    emulator.faults.insufficient_quota = True
    llm = make_llm(llm_config(emulator.base_url, max_retries=3))
    with pytest.raises(LlmQuotaExceeded) as info:
        await collect(llm, "Tell me a story.")
    assert info.value.error_kind == "llm_quota" and not info.value.retryable
    assert "billing" in str(info.value)
    assert len(emulator.requests) == 1


async def test_wrong_key_has_its_own_kind(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    llm = make_llm(llm_config(emulator.base_url, max_retries=3), api_key="sk-canary-8c1f")
    with pytest.raises(LlmAuthError) as info:
        await collect(llm, "Tell me a story.")
    assert info.value.error_kind == "llm_auth" and "sk-canary-8c1f" not in str(info.value)
    assert len(emulator.requests) == 1


async def test_retry_after_beyond_the_deadline_fails_at_once(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    """The SDK alone would sleep 120 s here (MAX_RETRY_AFTER_DELAY) before its retry."""
    emulator.faults.status, emulator.faults.retry_after_s = 429, 120
    llm = make_llm(llm_config(emulator.base_url, max_retries=2, first_token_timeout_s=1.0))
    started = time.monotonic()
    with pytest.raises(LlmRateLimited, match="retry-after 120 s") as info:
        await collect(llm, "Tell me a story.")
    assert time.monotonic() - started < 1.0
    assert info.value.retry_after_s == 120 and info.value.retryable
    assert len(emulator.requests) == 1


async def test_retry_after_that_fits_is_honoured(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    emulator.faults.status, emulator.faults.status_times = 429, 1
    emulator.faults.retry_after_s = 0.3
    llm = make_llm(llm_config(emulator.base_url, max_retries=1, first_token_timeout_s=3.0))
    events = await collect(llm, "Tell me a story.")
    assert text_of(events) == "Once upon a time, a robot said hello."
    first, second = emulator.requests
    assert second.received_at - first.received_at >= 0.3


async def test_retries_never_outlast_the_first_token_deadline(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    emulator.faults.status = 503
    llm = make_llm(llm_config(emulator.base_url, max_retries=5, first_token_timeout_s=1.0))
    started = time.monotonic()
    with pytest.raises(LlmError, match="HTTP 503") as info:
        await collect(llm, "Tell me a story.")
    assert time.monotonic() - started < 1.0
    assert info.value.retryable
    # 0.5 s then 1 s backoff (less up to 25 % jitter): the second wait cannot fit.
    assert len(emulator.requests) == 2


async def test_whole_request_deadline(emulator: OpenAiEmulator, make_llm: MakeLlm) -> None:
    emulator.faults.huge_reply_chars = 2000
    emulator.chunk_ms = 20.0
    llm = make_llm(llm_config(emulator.base_url, request_timeout_s=1.0))
    started = time.monotonic()
    with pytest.raises(LlmTimeout, match="request_timeout_s=1"):
        await collect(llm, "Tell me a story.")
    assert 0.9 < time.monotonic() - started < 2.0


async def test_parallel_tool_calls_all_run_and_all_results_go_back(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    emulator.shape.parallel_tool_calls = [("call_staff", {"reason": "visitor asks"})]
    staff: list[str] = []
    llm = make_llm(llm_config(emulator.base_url), call_staff=staff.append)
    events = await collect(llm, "When are you open tomorrow?")
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [e.name for e in started] == ["opening_hours", "call_staff"]
    assert all(f.ok for f in finished) and staff == ["visitor asks"]
    assert text_of(events) == "We're open from nine to five tomorrow."
    sent = emulator.requests[1].messages
    assistant = next(m for m in sent if m["role"] == "assistant")
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert len(set(ids)) == 2
    assert [m["tool_call_id"] for m in sent if m["role"] == "tool"] == ids


async def test_text_and_tool_call_in_one_message(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    emulator.shape.text_before_tool_call = "Let me check the hours."
    llm = make_llm(llm_config(emulator.base_url))
    events = await collect(llm, "When are you open tomorrow?")
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    first_tool = next(i for i, e in enumerate(events) if isinstance(e, ToolCallStarted))
    assert first_text < first_tool
    assert text_of(events) == "Let me check the hours.We're open from nine to five tomorrow."
    done = events[-1]
    assert isinstance(done, LlmDone)
    assistant = done.new_messages[0]
    assert assistant["content"] == "Let me check the hours."
    assert assistant["tool_calls"][0]["function"]["name"] == "opening_hours"


async def test_empty_choices_first_chunk_is_not_a_first_token(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    emulator.shape.empty_first_chunk = True
    llm = make_llm(llm_config(emulator.base_url))
    events = await collect(llm, "Tell me a story.")
    assert text_of(events) == "Once upon a time, a robot said hello."
    emulator.ttft_ms = 3000.0
    slow = make_llm(llm_config(emulator.base_url, first_token_timeout_s=0.4))
    with pytest.raises(LlmTimeout, match="first token"):
        await collect(slow, "Tell me a story.")


async def test_one_chunk_reply_is_spoken_whole_under_the_first_token_deadline(
    emulator: OpenAiEmulator, make_llm: MakeLlm
) -> None:
    """Ollama with tools: nothing for the whole generation, then everything at once.

    The chunk arrives after ~0.5 s, longer than the 0.3 s chunk gap: only the
    first-token deadline applies to it, and the whole text and the calls come through.
    """
    emulator.shape.one_chunk = True
    emulator.shape.parallel_tool_calls = [("call_staff", {"reason": "x"})]
    emulator.chunk_ms = 60.0
    config = llm_config(emulator.base_url, chunk_gap_timeout_s=0.3, first_token_timeout_s=3.0)
    events = await collect(make_llm(config), "When are you open tomorrow?")
    assert [e.name for e in events if isinstance(e, ToolCallStarted)] == [
        "opening_hours",
        "call_staff",
    ]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == "We're open from nine to five tomorrow."
    reply = emulator.requests[-1]
    assert reply.sent_at[0] - reply.received_at > 0.3  # later than a chunk gap
    first_call = next(e for e in events if isinstance(e, ToolCallStarted))
    assert json.loads(first_call.arguments_json) == {"day": "tomorrow"}
