"""What one streamed reply yields: text deltas, tool calls, and a final summary.

The caller speaks `TextDelta`s as they arrive, shows tool activity, and on `LlmDone`
keeps `new_messages` (the assistant tool-call and tool-result messages of this reply)
in the conversation history so the next turn sees what the tools returned.
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
class LlmDone:
    """The reply is complete; token counts are 0 when the server does not report usage."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    new_messages: list[dict[str, Any]] = field(default_factory=list)


LlmEvent = TextDelta | ToolCallStarted | ToolCallFinished | LlmDone
