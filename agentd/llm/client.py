"""Stream one spoken reply from an OpenAI-compatible chat server, running tools in between.

`ChatLlm.stream_reply` is an async generator: text deltas as they arrive (so TTS can
start on the first clause), tool activity, then one `LlmDone`. It owns the deadlines a
voice UI needs (the SDK's own timeouts are minutes long) and maps every SDK failure to
the agentd error tree. Closing or cancelling the generator closes the HTTP stream, which
tells the server to stop generating (barge-in must not keep paying for tokens).
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentd.connection_warmer import ConnectionWarmer
from agentd.errors import LlmError, LlmRateLimited, LlmTimeout
from agentd.llm.events import LlmDone, LlmEvent, TextDelta, ToolCallFinished, ToolCallStarted
from agentd.llm.stream import ToolCallAccumulator
from agentd.llm.tools import ToolRegistry

if TYPE_CHECKING:
    from agentd.config.sections_llm import LlmConfig

log = logging.getLogger(__name__)

# Connecting to a healthy server takes well under a second even over a kiosk's Wi-Fi.
CONNECT_TIMEOUT_S = 5.0


@dataclass(slots=True)
class _Round:
    """What one streamed request produced besides text."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatLlm:
    """One chat model behind `config.base_url`, with the tools of `tools`."""

    def __init__(self, config: LlmConfig, api_key: str, tools: ToolRegistry) -> None:
        import openai

        self._config = config
        self._tools = tools
        # The SDK's read timeout is a backstop only: our own first-token and chunk-gap
        # deadlines are shorter and produce LlmTimeout with a clear message.
        backstop_s = max(config.first_token_timeout_s, config.chunk_gap_timeout_s) + 1.0
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=api_key,
            max_retries=config.max_retries,
            timeout=openai.Timeout(backstop_s, connect=min(CONNECT_TIMEOUT_S, backstop_s)),
        )
        # Same connection pool, no retries: a warm-up is worth one try only.
        self._probe_client = self._client.with_options(max_retries=0)
        self.warmer = ConnectionWarmer("llm", self._probe) if config.warm_connection else None

    def warm_up(self) -> None:
        """The visitor started speaking: get a connection ready for the turn's request."""
        if self.warmer is not None:
            self.warmer.poke()

    async def _probe(self) -> None:
        # GET /models: served by OpenAI, llama.cpp, Ollama and vLLM alike, never billed.
        await self._probe_client.models.with_raw_response.list()

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        if self.warmer is not None:
            await self.warmer.aclose()
        await self._client.close()

    async def stream_reply(self, messages: list[dict[str, Any]]) -> AsyncGenerator[LlmEvent, None]:
        """Yield the reply to `messages`, running up to `max_tool_rounds` tool rounds.

        Raises LlmTimeout, LlmRateLimited or LlmError; nothing else except cancellation.
        """
        conversation = list(messages)
        new_messages: list[dict[str, Any]] = []
        prompt_tokens = completion_tokens = 0
        rounds = self._config.max_tool_rounds
        for round_index in range(rounds + 1):
            calls = ToolCallAccumulator()
            result = _Round()
            offer_tools = len(self._tools) > 0
            # After the last allowed round the model must answer in words.
            tool_choice = "auto" if round_index < rounds else "none"
            async for delta in self._stream_round(
                conversation, offer_tools, tool_choice, calls, result
            ):
                yield delta
            prompt_tokens += result.prompt_tokens
            completion_tokens += result.completion_tokens
            if not calls or tool_choice == "none":
                reason = result.finish_reason or "stop"
                if calls:
                    reason = "max_tool_rounds"
                yield LlmDone(reason, prompt_tokens, completion_tokens, new_messages)
                return
            assistant = calls.assistant_message(result.text)
            conversation.append(assistant)
            new_messages.append(assistant)
            async for event in self._run_tools(calls, conversation, new_messages):
                yield event

    async def _run_tools(
        self,
        calls: ToolCallAccumulator,
        conversation: list[dict[str, Any]],
        new_messages: list[dict[str, Any]],
    ) -> AsyncIterator[LlmEvent]:
        pending = calls.calls()
        for call in pending:
            yield ToolCallStarted(call.call_id, call.name, call.arguments_json)
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._tools.execute(c.name, c.arguments_json)) for c in pending
            ]
        duration_ms = (time.monotonic() - started) * 1000.0
        for call, task in zip(pending, tasks, strict=True):
            outcome = task.result()
            message = {"role": "tool", "tool_call_id": call.call_id, "content": outcome.result_json}
            conversation.append(message)
            new_messages.append(message)
            yield ToolCallFinished(
                call.call_id, call.name, outcome.ok, outcome.result_json, duration_ms
            )

    async def _stream_round(
        self,
        conversation: list[dict[str, Any]],
        offer_tools: bool,
        tool_choice: str,
        calls: ToolCallAccumulator,
        result: _Round,
    ) -> AsyncIterator[TextDelta]:
        import openai

        request = build_request(
            self._config,
            conversation,
            self._tools.tools_param() if offer_tools else None,
            tool_choice,
        )
        try:
            stream = await self._client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            raise map_error(exc) from None
        text = io.StringIO()  # one growing buffer: a str per delta costs ~50 B each
        try:
            # The model's text as written: what is spoken of it is the reply pipeline's
            # business (agentd.tts.speakable), the history keeps only what was heard.
            async for chunk in _with_deadlines(stream, self._config):
                for piece in _apply_chunk(chunk, calls, result):
                    if piece:
                        text.write(piece)
                        yield TextDelta(piece)
        finally:
            await stream.close()
        result.text = text.getvalue()
        if result.finish_reason is None:
            raise LlmError("stream ended without a finish_reason (reply cut off)")


def build_request(
    config: LlmConfig,
    conversation: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    tool_choice: str,
) -> dict[str, Any]:
    """Keyword arguments for `chat.completions.create`, history and tools in extra_body.

    The SDK deep-copies `messages` and `tools` through its TypedDict transform before
    sending: ~0.15 ms per message here, 5-8 ms for a full history, on the event loop
    and on every turn's critical path (the same cost is reported against the Anthropic
    SDK, anthropic-sdk-python#1195). For chat completions that transform is the
    identity on plain JSON like ours (no aliased keys, no dates or files), so they go in
    `extra_body`, which the SDK merges into the body untouched; the `messages` argument
    the signature requires is an empty placeholder that extra_body replaces. A test
    pins the wire body to what the transform would have produced.
    """
    extra: dict[str, Any] = {"messages": conversation}
    request: dict[str, Any] = {
        "model": config.model,
        "messages": [],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "extra_body": extra,
    }
    if tools:
        extra["tools"] = tools
        request["tool_choice"] = tool_choice
    return request


async def _with_deadlines(stream: Any, config: LlmConfig) -> AsyncIterator[Any]:
    """The stream's chunks; LlmTimeout if the first content or any later chunk is late."""
    import openai

    loop = asyncio.get_running_loop()
    first_deadline = loop.time() + config.first_token_timeout_s
    iterator = stream.__aiter__()
    have_content = False
    while True:
        deadline = loop.time() + config.chunk_gap_timeout_s if have_content else first_deadline
        try:
            async with asyncio.timeout_at(deadline):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if have_content:
                raise LlmTimeout(
                    f"no stream data for {config.chunk_gap_timeout_s:g} s mid-reply"
                ) from None
            raise LlmTimeout(f"no first token within {config.first_token_timeout_s:g} s") from None
        except openai.OpenAIError as exc:
            raise map_error(exc) from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # json.JSONDecodeError is a ValueError: a malformed SSE data line.
            raise LlmError(f"malformed stream chunk ({type(exc).__name__}: {exc})") from None
        have_content = have_content or _has_content(chunk)
        yield chunk


def _has_content(chunk: Any) -> bool:
    for choice in getattr(chunk, "choices", None) or ():
        delta = getattr(choice, "delta", None)
        if getattr(delta, "content", None) or getattr(delta, "tool_calls", None):
            return True
    return False


def _apply_chunk(chunk: Any, calls: ToolCallAccumulator, result: _Round) -> list[str]:
    """Fold one chunk into `calls`/`result`; returns its text pieces. LlmError if malformed."""
    try:
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            result.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            result.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        pieces = []
        for choice in getattr(chunk, "choices", None) or ():
            if getattr(choice, "index", 0) not in (0, None):
                continue  # we ask for one choice (n=1); ignore any others
            delta = choice.delta
            content = getattr(delta, "content", None)
            if isinstance(content, str) and content:
                pieces.append(content)
            for fragment in getattr(delta, "tool_calls", None) or ():
                calls.add(fragment)
            if choice.finish_reason:
                result.finish_reason = str(choice.finish_reason)
    except (ValueError, TypeError, AttributeError) as exc:
        raise LlmError(f"malformed stream chunk ({exc})") from None
    return pieces


def map_error(exc: Exception) -> LlmError:
    """The agentd error for an SDK exception; never includes the API key."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return LlmTimeout("request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return LlmError(f"cannot reach the server ({exc.__cause__ or exc})")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return LlmRateLimited(
                f"rate limited (HTTP 429): {_short(exc)}",
                retry_after_s=_retry_after_s(exc.response.headers),
            )
        if status in (401, 403):
            # The provider's message may quote part of the key: do not repeat it.
            return LlmError(f"credentials refused (HTTP {status})", retryable=False)
        if 400 <= status < 500 and status not in (408, 409):
            return LlmError(f"request rejected (HTTP {status}): {_short(exc)}", retryable=False)
        return LlmError(f"server error (HTTP {status}): {_short(exc)}")
    if isinstance(exc, openai.APIError):
        return LlmError(f"error in stream: {_short(exc)}")
    return LlmError(f"{type(exc).__name__}: {exc}")


def _short(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc)[:200]


def _retry_after_s(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None
