"""Per-tool rate limits: a public kiosk takes orders from anyone, so no tool is unbounded.

Speech is untrusted input to the model, and the model's tool calls are untrusted output:
a visitor who asks for staff ten times, or a model that calls a webhook in a loop, must
meet a limit. Each tool has a per-conversation cooldown, an hourly and a per-minute cap
(`llm.tools[].cooldown_s`, `max_per_hour`, `max_per_minute`; -1 takes the kind's
default below). A refused call is not silent: the model reads a polite refusal it can
relay to the visitor, and `on_limit` reports it (event + journal).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agentd.config.sections_llm import ToolConfig

# Defaults per kind. call_staff: one call brings someone; a second within two minutes
# is the same request, and six an hour is more than one front desk answers. Webhooks
# reach other systems (bookings, tickets): ten a minute is far above one visitor's need.
DEFAULT_COOLDOWN_S = {"call_staff": 120.0}
DEFAULT_PER_HOUR = {"call_staff": 6}
DEFAULT_PER_MINUTE = {"webhook": 10}
FALLBACK_PER_HOUR = 240
FALLBACK_PER_MINUTE = 20

LimitReport = Callable[[str, str, float], None]  # tool name, which limit, retry after (s)


@dataclass(frozen=True, slots=True)
class ToolLimit:
    cooldown_s: float
    per_hour: int
    per_minute: int

    @classmethod
    def for_tool(cls, config: ToolConfig) -> ToolLimit:
        kind = config.kind
        return cls(
            config.cooldown_s if config.cooldown_s >= 0 else DEFAULT_COOLDOWN_S.get(kind, 0.0),
            config.max_per_hour
            if config.max_per_hour >= 0
            else DEFAULT_PER_HOUR.get(kind, FALLBACK_PER_HOUR),
            config.max_per_minute
            if config.max_per_minute >= 0
            else DEFAULT_PER_MINUTE.get(kind, FALLBACK_PER_MINUTE),
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """A call the limits refused: which limit, and when a call would be allowed again."""

    limit: str  # "cooldown", "per_hour", "per_minute"
    retry_after_s: float

    def message(self, tool: str) -> str:
        """What the model reads: polite, and telling it what to say instead of retrying."""
        if tool == "call_staff" or self.limit == "cooldown":
            return (
                f"{tool} was already done a moment ago and must not be repeated now; tell "
                "the visitor politely that it has been taken care of"
            )
        return (
            f"{tool} is busy (too many requests); do not call it again now, tell the "
            f"visitor politely to try again in about {max(1, round(self.retry_after_s))} seconds"
        )


class ToolLimiter:
    """Sliding-window counters per tool; `new_conversation()` resets the cooldowns."""

    def __init__(
        self,
        limits: dict[str, ToolLimit],
        on_limit: LimitReport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._on_limit = on_limit
        self._clock = clock
        self._calls: dict[str, deque[float]] = {name: deque() for name in limits}
        self._last_in_conversation: dict[str, float] = {}
        self.refused = 0

    def set_reporter(self, on_limit: LimitReport) -> None:
        self._on_limit = on_limit

    def new_conversation(self) -> None:
        """A new visitor: per-conversation cooldowns start afresh (hourly caps do not)."""
        self._last_in_conversation.clear()

    def check(self, name: str) -> Refusal | None:
        """Admit one call of `name` now (and count it), or say which limit refuses it."""
        limit = self._limits.get(name)
        if limit is None:
            return None
        now = self._clock()
        calls = self._calls[name]
        while calls and calls[0] <= now - 3600.0:
            calls.popleft()
        refusal = self._refusal(name, limit, calls, now)
        if refusal is not None:
            self.refused += 1
            if self._on_limit is not None:
                self._on_limit(name, refusal.limit, refusal.retry_after_s)
            return refusal
        calls.append(now)
        self._last_in_conversation[name] = now
        return None

    def _refusal(
        self, name: str, limit: ToolLimit, calls: deque[float], now: float
    ) -> Refusal | None:
        last = self._last_in_conversation.get(name)
        if limit.cooldown_s > 0 and last is not None and now - last < limit.cooldown_s:
            return Refusal("cooldown", limit.cooldown_s - (now - last))
        if len(calls) >= limit.per_hour:
            return Refusal("per_hour", calls[0] + 3600.0 - now if calls else 3600.0)
        recent = [t for t in calls if t > now - 60.0]
        if len(recent) >= limit.per_minute:
            return Refusal("per_minute", recent[0] + 60.0 - now if recent else 60.0)
        return None
