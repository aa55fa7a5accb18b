"""Stream one spoken reply from an OpenAI-compatible chat server, running tools in between.

`ChatLlm.stream_reply` is an async generator: text deltas as they arrive (so TTS can
start on the first clause), tool activity, each request's start and usage as they
happen (a reply cut short still accounts what it used), then one `LlmDone`. It owns
the deadlines a voice UI needs (the SDK's own timeouts are minutes long, and its retry
loop waits out a Retry-After of up to 120 s in silence), so the SDK runs with
`max_retries=0` and every request sits under agentd's deadlines: `connect_timeout_s`
per attempt, `first_token_timeout_s` from the request to the first text or tool call
(retries and their waits included), `chunk_gap_timeout_s` between chunks and
`request_timeout_s` for the whole stream. Every SDK failure maps to the agentd error tree
(`agentd.llm.failures`); 429 `insufficient_quota` is permanent and never retried.
Closing or cancelling the generator closes the HTTP stream, which tells the server
to stop generating (barge-in must not keep paying for tokens).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentd.connection_warmer import ConnectionWarmer
from agentd.errors import LlmError, LlmTimeout
from agentd.llm.events import (
    LlmDone,
    LlmEvent,
    RequestStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReported,
)
from agentd.llm.failures import map_error, retry_wait_s
from agentd.llm.stream import ToolCallAccumulator
from agentd.llm.tools import ToolRegistry

if TYPE_CHECKING:
    from agentd.config.sections_llm import LlmConfig

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Round:
    """What one streamed request produced besides text."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_reported: bool = False  # the stream's usage chunk came (include_usage)


class ChatLlm:
    """One chat model behind `config.base_url`, with the tools of `tools`."""

    def __init__(self, config: LlmConfig, api_key: str, tools: ToolRegistry) -> None:
        import openai

        self._config = config
        self._tools = tools
        # The SDK's read timeout is a backstop only: our own first-token and chunk-gap
        # deadlines are shorter and produce LlmTimeout with a clear message.
        backstop_s = max(config.first_token_timeout_s, config.chunk_gap_timeout_s) + 1.0
        connect_s = min(config.connect_timeout_s, backstop_s)
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=api_key,
            max_retries=0,  # ours: bounded by first_token_timeout_s (see _open)
            timeout=openai.Timeout(backstop_s, connect=connect_s),
        )
        # Same connection pool: a warm-up is worth one try only.
        self._probe_client = self._client
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
            yield RequestStarted()
            async for delta in self._stream_round(
                conversation, offer_tools, tool_choice, calls, result
            ):
                yield delta
            if result.usage_reported:
                yield UsageReported(result.prompt_tokens, result.completion_tokens)
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
        request = build_request(
            self._config,
            conversation,
            self._tools.tools_param() if offer_tools else None,
            tool_choice,
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadlines = _Deadlines(
            first=started + self._config.first_token_timeout_s,
            end=started + self._config.request_timeout_s,
        )
        stream = await self._open(request, deadlines.first)
        text = io.StringIO()  # one growing buffer: a str per delta costs ~50 B each
        try:
            # The model's text as written: what is spoken of it is the reply pipeline's
            # business (agentd.tts.speakable), the history keeps only what was heard.
            async for chunk in _with_deadlines(stream, self._config, deadlines):
                for piece in _apply_chunk(chunk, calls, result):
                    if piece:
                        text.write(piece)
                        yield TextDelta(piece)
        finally:
            await stream.close()
        result.text = text.getvalue()
        if result.finish_reason is None:
            raise LlmError("stream ended without a finish_reason (reply cut off)")

    async def _open(self, request: dict[str, Any], deadline: float) -> Any:
        """The response stream, retrying retryable failures while `deadline` allows."""
        import openai

        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    return await self._client.chat.completions.create(**request)
            except TimeoutError:
                raise LlmTimeout(
                    f"no response within first_token_timeout_s="
                    f"{self._config.first_token_timeout_s:g} ({attempt + 1} attempts)"
                ) from None
            except openai.OpenAIError as exc:
                error = map_error(exc)
            wait_s = retry_wait_s(error, attempt)
            if not error.retryable or attempt >= self._config.max_retries:
                raise error
            if loop.time() + wait_s >= deadline:
                log.warning(
                    "llm: not retrying (%s): a wait of %.3g s does not fit "
                    "first_token_timeout_s=%g",
                    error,
                    wait_s,
                    self._config.first_token_timeout_s,
                )
                raise error
            log.info("llm: retry %d in %.3g s after: %s", attempt + 1, wait_s, error)
            await asyncio.sleep(wait_s)
            attempt += 1


@dataclass(frozen=True, slots=True)
class _Deadlines:
    """Event-loop times one streamed request must meet."""

    first: float  # first text or tool call (request sent, retries included)
    end: float  # the whole stream


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
        # gpt-5/o-series refuse `max_tokens` and a non-default temperature (HTTP 400).
        config.token_limit_param: config.max_tokens,
        "extra_body": extra,
    }
    if config.temperature is not None:
        request["temperature"] = config.temperature
    if tools:
        extra["tools"] = tools
        request["tool_choice"] = tool_choice
    return request


async def _with_deadlines(
    stream: Any, config: LlmConfig, deadlines: _Deadlines
) -> AsyncIterator[Any]:
    """The stream's chunks; LlmTimeout if first content, a later chunk or the end is late.

    Only text or a tool call counts as the first token: a role-only or empty-`choices`
    chunk (Azure's prompt-filter chunk) proves the server is alive, not that it answers.
    A server that sends the whole reply in one chunk (Ollama with tools) meets the
    first-token deadline with that chunk; what follows is only bound by the gap.
    """
    import openai

    loop = asyncio.get_running_loop()
    iterator = stream.__aiter__()
    have_content = False
    while True:
        due = loop.time() + config.chunk_gap_timeout_s if have_content else deadlines.first
        try:
            async with asyncio.timeout_at(min(due, deadlines.end)):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if loop.time() >= deadlines.end:
                raise LlmTimeout(
                    f"reply not finished within request_timeout_s={config.request_timeout_s:g}"
                ) from None
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
            result.usage_reported = True
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
