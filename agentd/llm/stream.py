"""Reassemble streamed tool calls from their fragments.

The first fragment of a call carries `id` and `function.name`, later ones only pieces of
`function.arguments`, all keyed by `index`. Some OpenAI-compatible servers (Ollama,
older llama.cpp) send a whole call in one fragment, or omit the index or the id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

# A model emitting more calls in one round than this is looping, not helping.
MAX_CALLS_PER_ROUND = 8
# Generous for any sane argument object; protects memory from a runaway stream.
MAX_ARGUMENT_CHARS = 16384


@dataclass(slots=True)
class PendingCall:
    call_id: str
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def arguments_json(self) -> str:
        return "".join(self.arguments)


class ToolCallAccumulator:
    """Collects `delta.tool_calls` fragments of one streamed round."""

    def __init__(self) -> None:
        self._calls: dict[int, PendingCall] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, fragment: Any) -> None:
        """Merge one `ChoiceDeltaToolCall`; ValueError if it is not shaped like one."""
        index = getattr(fragment, "index", None)
        if index is None:
            index = len(self._calls)
        if not isinstance(index, int) or index < 0:
            raise ValueError(f"bad tool call index {index!r}")
        call = self._calls.get(index)
        if call is None:
            if len(self._calls) >= MAX_CALLS_PER_ROUND:
                raise ValueError(f"more than {MAX_CALLS_PER_ROUND} tool calls in one reply")
            call = self._calls[index] = PendingCall(f"call_{uuid.uuid4().hex[:12]}")
        call_id = getattr(fragment, "id", None)
        if isinstance(call_id, str) and call_id:
            call.call_id = call_id
        function = getattr(fragment, "function", None)
        name = getattr(function, "name", None)
        if isinstance(name, str) and name:
            call.name = name
        arguments = getattr(function, "arguments", None)
        if isinstance(arguments, str) and arguments:
            call.size += len(arguments)
            if call.size > MAX_ARGUMENT_CHARS:
                raise ValueError(f"tool call arguments longer than {MAX_ARGUMENT_CHARS} chars")
            call.arguments.append(arguments)

    def calls(self) -> list[PendingCall]:
        return [self._calls[i] for i in sorted(self._calls)]

    def assistant_message(self, text: str) -> dict[str, Any]:
        """The assistant message that carries these calls, as the API expects it back."""
        return {
            "role": "assistant",
            "content": text or None,
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for call in self.calls()
            ],
        }
