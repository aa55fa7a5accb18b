"""The conversation the model sees: system prompt plus recent whole exchanges.

An exchange is one visitor turn: the user message, any tool-call/tool-result messages,
and the assistant text that was actually *played* (a barge-in truncates it; the model
must not believe the visitor heard words that were never spoken). Trimming drops whole
exchanges, oldest first, so a tool result is never left without its tool call. A long
silence means a new visitor, so the history resets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

# Appended to a reply cut short by barge-in, so the model knows it was interrupted.
INTERRUPTED_MARK = " …"

Message = dict[str, Any]


class ConversationHistory:
    """Builds request messages within `budget_chars` and remembers committed turns."""

    def __init__(
        self,
        system_prompt: str,
        budget_chars: int,
        idle_reset_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._system_prompt = system_prompt
        self._budget_chars = budget_chars
        self._idle_reset_s = idle_reset_s
        self._clock = clock
        self._exchanges: list[list[Message]] = []
        self._last_activity: float | None = None

    @property
    def exchange_count(self) -> int:
        return len(self._exchanges)

    def set_system_prompt(self, text: str) -> None:
        """Takes effect from the next request; the history is kept."""
        self._system_prompt = text

    def reset(self) -> None:
        """Forget everything but the system prompt (a new visitor)."""
        self._exchanges.clear()
        self._last_activity = None

    def messages_for_request(self, user_text: str) -> list[Message]:
        """System prompt, as many recent exchanges as fit the budget, then `user_text`."""
        self._reset_if_idle()
        self._last_activity = self._clock()
        system = {"role": "system", "content": self._system_prompt}
        user = {"role": "user", "content": user_text}
        self._trim(message_chars(system) + message_chars(user))
        history = [message for exchange in self._exchanges for message in exchange]
        return [system, *history, user]

    def commit_turn(
        self,
        user_text: str,
        tool_messages: Sequence[Message],
        assistant_text_played: str,
        *,
        interrupted: bool = False,
    ) -> None:
        """Remember one exchange; the assistant part is only what the visitor heard."""
        exchange: list[Message] = [{"role": "user", "content": user_text}]
        exchange.extend(dict(m) for m in tool_messages)
        played = assistant_text_played.strip()
        if played:
            content = played + INTERRUPTED_MARK if interrupted else played
            exchange.append({"role": "assistant", "content": content})
        self._exchanges.append(exchange)
        self._last_activity = self._clock()
        self._trim(message_chars({"role": "system", "content": self._system_prompt}))

    def _reset_if_idle(self) -> None:
        if self._last_activity is None:
            return
        if self._clock() - self._last_activity > self._idle_reset_s:
            self.reset()

    def _trim(self, reserved_chars: int) -> None:
        total = reserved_chars + sum(_exchange_chars(e) for e in self._exchanges)
        while self._exchanges and total > self._budget_chars:
            total -= _exchange_chars(self._exchanges.pop(0))


def message_chars(message: Message) -> int:
    """Size of one message as the budget counts it: text plus tool-call payloads."""
    size = len(str(message.get("content") or ""))
    calls = message.get("tool_calls")
    if calls:
        size += len(json.dumps(calls, ensure_ascii=False))
    return size


def _exchange_chars(exchange: list[Message]) -> int:
    return sum(message_chars(m) for m in exchange)
