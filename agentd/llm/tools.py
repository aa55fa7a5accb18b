"""The tools the model may call: an allow-list built from config, never from the model.

`ToolRegistry.execute` is the single gate between model output and side effects: the
tool must be declared, the arguments must be a JSON object valid against the tool's
schema, and whatever goes wrong comes back as an `{"error": ...}` result for the model
to read, never as an exception into the reply loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agentd.errors import ConfigError, ToolError
from agentd.llm.limits import ToolLimiter

log = logging.getLogger(__name__)

# What the model reads back; big enough for a webhook's JSON answer, small enough not
# to blow the history budget (config default 6000 chars) with one result.
RESULT_CAP_CHARS = 4096
# Echoing the model's own bad input back helps it fix the call; beyond this it is noise.
ERROR_DETAIL_CAP_CHARS = 300

ToolHandler = Callable[[dict[str, Any]], Awaitable[Any]]
CallStaff = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Tool:
    """One callable tool: its OpenAI function declaration and its async handler."""

    name: str
    description: str
    parameters: dict[str, Any]
    handler: ToolHandler
    timeout_s: float = 5.0
    validator: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ToolResult:
    ok: bool
    result_json: str


def error_result(message: str) -> ToolResult:
    return ToolResult(False, _dumps({"error": message[:ERROR_DETAIL_CAP_CHARS]}))


class ToolRegistry:
    """The declared tools by name; executes calls and turns every failure into a result."""

    def __init__(self, tools: Iterable[Tool] = (), limiter: ToolLimiter | None = None) -> None:
        import jsonschema

        self.limiter = limiter  # None: no rate limits (unit tests of the registry alone)
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ConfigError("llm.tools", "duplicate tool name", tool.name)
            validator = jsonschema.Draft202012Validator(tool.parameters)
            self._tools[tool.name] = dataclasses.replace(tool, validator=validator)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def tools_param(self) -> list[dict[str, Any]]:
        """The OpenAI `tools` request parameter."""
        return [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in self._tools.values()
        ]

    async def execute(self, name: str, arguments_json: str) -> ToolResult:
        """Run one call; never raises except CancelledError."""
        tool = self._tools.get(name)
        if tool is None:
            available = ", ".join(self._tools) or "none"
            return error_result(f"unknown tool {name[:64]!r}; available tools: {available}")
        try:
            arguments = parse_arguments(arguments_json)
            problem = _schema_problem(tool, arguments)
        except ToolError as exc:
            return error_result(str(exc))
        if problem:
            return error_result(f"invalid arguments for {name}: {problem}")
        refusal = self.limiter.check(name) if self.limiter is not None else None
        if refusal is not None:
            return error_result(refusal.message(name))
        try:
            async with asyncio.timeout(tool.timeout_s):
                result = await tool.handler(arguments)
        except ToolError as exc:
            return error_result(f"{name} failed: {exc}")
        except TimeoutError:
            return error_result(f"{name} timed out after {tool.timeout_s:g} s")
        except Exception as exc:  # a tool boundary: a bug in one tool must not end the reply
            log.exception("tool %s crashed", name)
            return error_result(f"{name} failed: {type(exc).__name__}")
        return ToolResult(True, _capped(result))


def parse_arguments(arguments_json: str) -> dict[str, Any]:
    """The model's argument string as a JSON object; "" means no arguments."""
    if not arguments_json.strip():
        return {}
    try:
        value = json.loads(arguments_json)
    except (ValueError, RecursionError) as exc:
        raise ToolError(f"arguments are not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ToolError(f"arguments must be a JSON object, got {type(value).__name__}")
    return value


def _schema_problem(tool: Tool, arguments: dict[str, Any]) -> str:
    import jsonschema

    try:
        error = jsonschema.exceptions.best_match(tool.validator.iter_errors(arguments))
    except RecursionError:
        raise ToolError("arguments are nested too deeply") from None
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else str(error.message)


def _capped(result: Any) -> str:
    text = _dumps(result)
    if len(text) <= RESULT_CAP_CHARS:
        return text
    return _dumps({"result": text[: RESULT_CAP_CHARS - 64], "truncated": True})


def _dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    # Lone surrogates from the model's own JSON would make the next request unencodable.
    return text.encode("utf-8", "replace").decode("utf-8")
