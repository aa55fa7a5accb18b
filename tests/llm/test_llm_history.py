"""ConversationHistory: budget trimming, idle reset, played-text truncation."""

from __future__ import annotations

from typing import Any

import pytest

from agentd.llm.history import INTERRUPTED_MARK, ConversationHistory, message_chars

pytestmark = pytest.mark.timeout(10)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tool_pair(call_id: str, result: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "opening_hours", "arguments": '{"day": "today"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def test_request_is_system_history_user() -> None:
    history = ConversationHistory("Be brief.", 10_000, 60.0)
    history.commit_turn("hi", [], "Hello there.")
    messages = history.messages_for_request("what now?")
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello there."},
        {"role": "user", "content": "what now?"},
    ]


def test_stored_assistant_text_is_what_was_played() -> None:
    history = ConversationHistory("S", 10_000, 60.0)
    history.commit_turn("tell me everything", [], "We open at nine and", interrupted=True)
    history.commit_turn("stop", [], "")  # barged in before any audio: nothing stored
    messages = history.messages_for_request("next")
    assert messages[1:] == [
        {"role": "user", "content": "tell me everything"},
        {"role": "assistant", "content": "We open at nine and" + INTERRUPTED_MARK},
        {"role": "user", "content": "stop"},
        {"role": "user", "content": "next"},
    ]


def test_trimming_drops_oldest_whole_exchanges_never_orphan_tools() -> None:
    system = "You are a kiosk."
    history = ConversationHistory(system, 400, 60.0)
    for i in range(10):
        history.commit_turn(f"question {i}", tool_pair(f"call_{i}", "x" * 60), f"answer {i}")
    messages = history.messages_for_request("latest question")
    assert sum(message_chars(m) for m in messages) <= 400
    assert messages[0] == {"role": "system", "content": system}
    assert messages[-1] == {"role": "user", "content": "latest question"}
    kept = messages[1:-1]
    assert kept, "budget leaves room for some history"
    assert kept[0]["role"] == "user"  # starts at an exchange boundary
    assert kept[-1]["content"] == "answer 9"  # newest kept
    call_ids = {c["id"] for m in kept for c in m.get("tool_calls") or []}
    results = {m["tool_call_id"] for m in kept if m["role"] == "tool"}
    assert results == call_ids  # no orphan tool result, no unanswered call
    assert history.exchange_count < 10


def test_oversized_user_text_still_sent_alone() -> None:
    history = ConversationHistory("S", 500, 60.0)
    history.commit_turn("hi", [], "hello")
    messages = history.messages_for_request("y" * 1000)
    assert [m["role"] for m in messages] == ["system", "user"]


def test_idle_gap_means_new_visitor() -> None:
    clock = FakeClock()
    history = ConversationHistory("S", 10_000, 90.0, clock=clock)
    history.commit_turn("my name is Ada", [], "Hi Ada.")
    clock.now += 89.0
    assert len(history.messages_for_request("still me")) == 4
    history.commit_turn("still me", [], "Yes.")
    clock.now += 90.5
    assert history.messages_for_request("hello?") == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "hello?"},
    ]


def test_reset_and_new_system_prompt() -> None:
    history = ConversationHistory("old", 10_000, 60.0)
    history.commit_turn("a", [], "b")
    history.set_system_prompt("new")
    assert history.messages_for_request("c")[:2] == [
        {"role": "system", "content": "new"},
        {"role": "user", "content": "a"},
    ]
    history.reset()
    assert history.messages_for_request("d") == [
        {"role": "system", "content": "new"},
        {"role": "user", "content": "d"},
    ]
