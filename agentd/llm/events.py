"""What one streamed reply yields: text deltas, tool calls, request facts, a final summary.

The caller speaks `TextDelta`s as they arrive, shows tool activity, and on `LlmDone`
keeps `new_messages` (the assistant tool-call and tool-result messages of this reply)
in the conversation history so the next turn sees what the tools returned.
`RequestStarted` and `UsageReported` come per chat completion request (one per tool
round), as they happen: a reply cancelled midway (barge-in, a speculative reply dropped)
has still accounted the requests it made and every usage that reached it, which a
total at `LlmDone` alone would lose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A fragment of the spoken reply, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model asked for a tool; it is about to run."""

    call_id: str
    name: str
    arguments_json: str


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool ran (or was refused); `result_json` is what the model sees."""

    call_id: str
    name: str
    ok: bool
    result_json: str
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestStarted:
    """A chat completion request is going out (a reply sends one per tool round).

    Retries of a refused attempt (429, 5xx, within `first_token_timeout_s`) are the
    same request: a refused attempt generates no tokens.
    """


@dataclass(frozen=True, slots=True)
class UsageReported:
    """One request's token usage, from the stream's final usage chunk (`include_usage`).

    Absent for a request whose stream was closed before its end (the usage chunk comes
    last) and from servers that do not report usage: those tokens are unknown.
    """

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class LlmDone:
    """The reply is complete; the token counts are the sums of its `UsageReported`s
    (0 when the server does not report usage)."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    new_messages: list[dict[str, Any]] = field(default_factory=list)


LlmEvent = TextDelta | ToolCallStarted | ToolCallFinished | RequestStarted | UsageReported | LlmDone
