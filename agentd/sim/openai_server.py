"""A local OpenAI chat-completions server for tests, benchmarks and the offline demo.

Speaks the wire format the official `openai` SDK parses (see openai/_streaming.py):
SSE `data: {chunk}` events ending with `data: [DONE]`, a role delta first, content in
small token-like pieces, tool calls as an id/name fragment followed by argument
fragments, a finish chunk, and a usage chunk with `choices: []` when asked for.

Replies come from a Scenario (the turn whose `visitor` text equals the last user
message: its tool call first, then after the tool result its `reply`) or else a generic
echo. `faults` can be changed at any time, also while a request is streaming, to
inject the failures a real provider produces. Every request is recorded.

Provider behaviour beyond the happy path (`openai/_base_client.py`, `_constants.py`,
`types/chat/chat_completion_chunk.py`, OpenAI's error-code guide):
- `shape` reproduces reply layouts real servers produce: several tool calls in one
  message (parallel tool calls, each its own `index`), text before the tool calls in
  the same message, an empty-`choices` first chunk (Azure OpenAI's
  `prompt_filter_results`), and the whole reply in a single chunk (Ollama's `/v1`
  with tools before 0.8, which buffered the reply to parse tool calls).
- gpt-5 and o-series model names reject `max_tokens` (400 `unsupported_parameter`)
  and a temperature other than the default 1 (400 `unsupported_value`).
- 429 comes in two kinds: `rate_limit_exceeded` (with `retry-after`; retryable) and
  `insufficient_quota` (the account is out of credit: permanent).
- Every response carries an `x-request-id` header, as OpenAI's do.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentd.sim.emulator_http import peer, sleep_until
from agentd.sim.openai_wire import (
    QUOTA_MESSAGE,
    RATE_LIMIT_MESSAGE,
    call_head,
    chunk_base,
    error_response,
    message_text,
    model_refusal,
    prompt_filter_chunk,
    request_id,
    split_tokens,
    usage,
)

__all__ = ["Faults", "OpenAiEmulator", "RecordedRequest", "Shape", "split_tokens"]

if TYPE_CHECKING:
    from aiohttp import web

    from agentd.sim.scenario import Scenario

# What the faults inject into content: C0 controls plus markdown and SSML-ish markup.
CONTROL_GARBAGE = '\x00\x07\x1b[0m **bold** # <break time="1s"/> `code` '
# Malformed tool arguments: JSON cut off mid-string, as a truncated model output looks.
BAD_ARGUMENTS = '{"day": "tomor'
ARGUMENT_FRAGMENT_CHARS = 7  # OpenAI streams arguments a few characters at a time


@dataclass
class Faults:
    """Failures to inject; plain attributes, safe to set from any thread at any time."""

    status: int | None = None  # answer 429/500/503 (JSON error body) instead of a reply
    status_times: int | None = None  # only this many requests get `status` (None: all)
    retry_after_s: float | None = None  # Retry-After header sent with `status`
    stall_after_chunks: int | None = None  # hang (keep the socket open) after N events
    drop_after_chunks: int | None = None  # close the connection abruptly after N events
    malformed_after_chunks: int | None = None  # send invalid JSON as event N
    empty_reply: bool = False  # no content at all, just finish_reason stop
    huge_reply_chars: int = 0  # reply with this much text instead
    control_chars: bool = False  # mix control characters and markup into the content
    bad_tool_arguments: bool = False  # tool call arguments are not valid JSON
    unknown_tool_name: str = ""  # call this (undeclared) tool instead of the scenario's
    insufficient_quota: bool = False  # 429 `insufficient_quota` on every request (permanent)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self._lock:
            fresh = Faults()
            for name in self.__dataclass_fields__:
                if name != "_lock":
                    setattr(self, name, getattr(fresh, name))

    def take_status(self) -> int | None:
        """The status to fail this request with, counting down `status_times`."""
        with self._lock:
            if self.status is None:
                return None
            if self.status_times is not None:
                if self.status_times <= 0:
                    return None
                self.status_times -= 1
            return self.status


@dataclass
class Shape:
    """How replies are laid out on the wire; plain attributes, change them any time."""

    # Further calls (name, arguments) in the same message as the scenario's tool call.
    parallel_tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    text_before_tool_call: str = ""  # content streamed before the calls, same message
    empty_first_chunk: bool = False  # a first chunk with `choices: []` (Azure OpenAI)
    one_chunk: bool = False  # the whole reply (text, tool calls, finish) in one chunk


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    received_at: float  # time.monotonic()
    body: dict[str, Any]
    authorized: bool
    chunks_sent: int = 0
    sent_at: list[float] = field(default_factory=list)  # time.monotonic() per SSE event
    closed_by_client: bool = False  # the client went away before the reply ended
    peer: Any = None  # the client's (host, port): which connection carried it
    finished_at: float | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools") or [])


@dataclass(frozen=True)
class _Plan:
    text: str = ""
    tool_calls: tuple[tuple[str, str], ...] = ()  # (name, arguments JSON) in order

    @property
    def pieces(self) -> int:
        """Tokens generated: what the usage block counts and the pacing spends."""
        arguments = sum(len(a) // ARGUMENT_FRAGMENT_CHARS + 1 for _, a in self.tool_calls)
        return len(split_tokens(self.text)) + arguments


class OpenAiEmulator:
    """`POST /v1/chat/completions`, streaming or not, on 127.0.0.1 (a free port by default)."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        api_key: str = "test",
        ttft_ms: float = 0.0,
        chunk_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "emulated-gpt",
    ) -> None:
        self.scenario = scenario
        self.api_key = api_key
        self.ttft_ms = ttft_ms
        self.chunk_ms = chunk_ms
        self.model = model
        self.faults = Faults()
        self.shape = Shape()
        self.requests: list[RecordedRequest] = []
        # (host, port) of the client for each GET /v1/models (clients warming a connection)
        self.model_listings: list[Any] = []
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._disconnected: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}/v1"

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        # handler_cancellation: a client closing the socket cancels its handler, which
        # is how a stalled stream notices that the client gave up.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])  # the real port when port=0
        self._disconnected = asyncio.Event()
        self._stopping = False

    async def stop(self) -> None:
        """Cancel in-flight (stalled) replies and close the server; idempotent."""
        self._stopping = True
        for task in list(self._handlers):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for_disconnect(self, timeout_s: float = 5.0) -> RecordedRequest:
        """The first request whose client hung up before the reply ended."""
        if self._disconnected is None:
            raise RuntimeError("OpenAiEmulator.start() first")
        async with asyncio.timeout(timeout_s):
            await self._disconnected.wait()
        return next(r for r in self.requests if r.closed_by_client)

    # --- HTTP -------------------------------------------------------------------------

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            authorized = request.headers.get("Authorization", "") == f"Bearer {self.api_key}"
            try:
                body = await request.json()
            except ValueError:
                body = None
            record = RecordedRequest(time.monotonic(), body or {}, authorized, peer=peer(request))
            self.requests.append(record)
            if not authorized:
                return error_response(401, "Incorrect API key provided.", "invalid_api_key")
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return error_response(400, "'messages' is a required property", "invalid_request")
            refusal = self._refusal(body)
            if refusal is not None:
                return refusal
            plan = self._plan(body)
            if not body.get("stream"):
                await sleep_until(record.received_at + self.ttft_ms / 1000)
                return web.json_response(self._completion(plan, body))
            return await self._stream(request, record, plan, body)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _models(self, request: web.Request) -> web.Response:
        """GET /v1/models, as OpenAI and the OpenAI-compatible local servers answer it."""
        from aiohttp import web

        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return error_response(401, "Incorrect API key provided.", "invalid_api_key")
        self.model_listings.append(peer(request))
        model = {"id": self.model, "object": "model", "created": 0, "owned_by": "agentd-sim"}
        return web.json_response({"object": "list", "data": [model]})

    def _refusal(self, body: dict[str, Any]) -> web.Response | None:
        """The error a real server answers this request with, if any."""
        if self.faults.insufficient_quota:
            return error_response(
                429, QUOTA_MESSAGE, "insufficient_quota", kind="insufficient_quota"
            )
        refused = model_refusal(body)
        if refused is not None:
            return refused
        status = self.faults.take_status()
        if status is None:
            return None
        if status == 429:
            response = error_response(
                429, RATE_LIMIT_MESSAGE, "rate_limit_exceeded", kind="requests"
            )
        else:
            response = error_response(status, f"emulated HTTP {status}", "emulated_fault")
        if self.faults.retry_after_s is not None:
            response.headers["retry-after"] = f"{self.faults.retry_after_s:g}"
        return response

    async def _stream(
        self, request: web.Request, record: RecordedRequest, plan: _Plan, body: dict[str, Any]
    ) -> web.StreamResponse:
        from aiohttp import web

        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "x-request-id": request_id(),
            }
        )
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        try:
            # Event k >= 1 is due at arrival + TTFT + (k - 1) x chunk_ms: deadlines, not
            # relative sleeps, so timer slack does not add up over a reply and the
            # service time a benchmark subtracts is what the emulator really waited.
            first_at = record.received_at + self.ttft_ms / 1000
            if self.shape.one_chunk:  # nothing leaves before the whole reply is generated
                first_at += max(0, plan.pieces - 1) * self.chunk_ms / 1000
            lead = self._lead()
            for index, event in enumerate(self._events(plan, body, include_usage)):
                if index >= lead:
                    step = 0 if self.shape.one_chunk else index - lead
                    await sleep_until(first_at + step * self.chunk_ms / 1000)
                if not await self._send(request, response, record, index, event):
                    return response
            await response.write_eof()
        except ConnectionError:  # the client hung up while we were writing
            self._note_disconnect(record)
        except asyncio.CancelledError:  # ... or while we waited (handler_cancellation)
            self._note_disconnect(record)
            raise
        finally:
            record.finished_at = time.monotonic()
        return response

    def _note_disconnect(self, record: RecordedRequest) -> None:
        if not self._stopping:
            record.closed_by_client = True
            if self._disconnected is not None:
                self._disconnected.set()

    async def _send(
        self,
        request: web.Request,
        response: web.StreamResponse,
        record: RecordedRequest,
        index: int,
        event: str,
    ) -> bool:
        """Write one SSE event, or inject the fault due at `index`; False ends the reply."""
        faults = self.faults
        if faults.stall_after_chunks is not None and index >= faults.stall_after_chunks:
            await asyncio.Event().wait()  # until the client hangs up or stop() cancels
        if faults.drop_after_chunks is not None and index >= faults.drop_after_chunks:
            if request.transport is not None:
                request.transport.abort()  # RST-like: no chunked terminator, no [DONE]
            return False
        if faults.malformed_after_chunks is not None and index == faults.malformed_after_chunks:
            event = '{"id": "broken", "choices": [{"delta": {"content": "oops"'
        record.sent_at.append(time.monotonic())  # before: the client may act on it first
        await response.write(f"data: {event}\n\n".encode())
        record.chunks_sent = index + 1
        return True

    # --- reply content ----------------------------------------------------------------

    def _plan(self, body: dict[str, Any]) -> _Plan:
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        user_text = message_text(messages[last_user]) if last_user >= 0 else ""
        tool_results = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
        turn = self.scenario.reply_for(user_text) if self.scenario else None
        wants_tool = bool(turn and turn.tool) and not tool_results
        if wants_tool and body.get("tool_choice") != "none" and turn is not None:
            arguments = json.dumps(turn.tool_arguments)
            if self.faults.bad_tool_arguments:
                arguments = BAD_ARGUMENTS
            calls = [(self.faults.unknown_tool_name or turn.tool, arguments)]
            calls += [(name, json.dumps(args)) for name, args in self.shape.parallel_tool_calls]
            return _Plan(text=self.shape.text_before_tool_call, tool_calls=tuple(calls))
        if turn is not None and turn.reply:
            text = turn.reply
        elif tool_results:
            text = f"I checked that for you: {message_text(tool_results[-1])[:120]}"
        else:
            text = f"You said: {user_text}. How can I help?" if user_text else "Hello!"
        if self.faults.empty_reply:
            text = ""
        elif self.faults.huge_reply_chars:
            text = ("This is a very long answer. " * (self.faults.huge_reply_chars // 28 + 1))[
                : self.faults.huge_reply_chars
            ]
        if self.faults.control_chars and text:
            text = CONTROL_GARBAGE + text
        return _Plan(text=text)

    def _lead(self) -> int:
        """How many of a reply's first events leave at once (the rest are paced)."""
        if self.shape.one_chunk:
            return 0  # everything waits for the whole generation
        return 2 if self.shape.empty_first_chunk else 1  # [filter chunk,] role chunk

    def _events(self, plan: _Plan, body: dict[str, Any], include_usage: bool) -> Iterator[str]:
        """The SSE data payloads of one streamed reply, [DONE] last (lazily: a huge
        reply must not sit in memory, the fuzz tests measure the client's)."""
        base = chunk_base(body, self.model)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return json.dumps({**base, "choices": [choice]})

        if self.shape.empty_first_chunk:
            yield prompt_filter_chunk()
        finish = "tool_calls" if plan.tool_calls else "stop"
        if self.shape.one_chunk:
            delta: dict[str, Any] = {"role": "assistant", "content": plan.text}
            if plan.tool_calls:
                delta["tool_calls"] = [
                    {**call_head(i), "function": {"name": name, "arguments": arguments}}
                    for i, (name, arguments) in enumerate(plan.tool_calls)
                ]
            yield chunk(delta, finish)
        else:
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            for piece in split_tokens(plan.text):
                yield chunk({"content": piece})
            for i, (name, arguments) in enumerate(plan.tool_calls):
                head = {**call_head(i), "function": {"name": name, "arguments": ""}}
                yield chunk({"tool_calls": [head]})
                for start in range(0, len(arguments), ARGUMENT_FRAGMENT_CHARS):
                    fragment = arguments[start : start + ARGUMENT_FRAGMENT_CHARS]
                    yield chunk({"tool_calls": [{"index": i, "function": {"arguments": fragment}}]})
            yield chunk({}, finish)
        if include_usage:
            yield json.dumps({**base, "choices": [], "usage": usage(body, plan.pieces)})
        yield "[DONE]"

    def _completion(self, plan: _Plan, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": plan.text or None,
            "refusal": None,
        }
        finish = "stop"
        if plan.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call_head(i)["id"],
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
                for i, (name, arguments) in enumerate(plan.tool_calls)
            ]
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or self.model),
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": usage(body, plan.pieces),
        }
