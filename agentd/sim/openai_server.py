"""A local OpenAI chat-completions server for tests, benchmarks and the offline demo.

Speaks the wire format the official `openai` SDK parses (see openai/_streaming.py):
SSE `data: {chunk}` events ending with `data: [DONE]`, a role delta first, content in
small token-like pieces, tool calls as an id/name fragment followed by argument
fragments, a finish chunk, and a usage chunk with `choices: []` when asked for.

Replies come from a Scenario (the turn whose `visitor` text equals the last user
message: its tool call first, then after the tool result its `reply`) or else a generic
echo. `faults` can be changed at any time, also while a request is streaming, to
inject the failures a real provider produces. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentd.sim.emulator_http import peer, sleep_until

if TYPE_CHECKING:
    from aiohttp import web

    from agentd.sim.scenario import Scenario

# What the faults inject into content: C0 controls plus markdown and SSML-ish markup.
CONTROL_GARBAGE = '\x00\x07\x1b[0m **bold** # <break time="1s"/> `code` '
# Malformed tool arguments: JSON cut off mid-string, as a truncated model output looks.
BAD_ARGUMENTS = '{"day": "tomor'
ARGUMENT_FRAGMENT_CHARS = 7  # OpenAI streams arguments a few characters at a time
WORD_PIECE_CHARS = 4  # long words are split like BPE tokens


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
    tool_name: str = ""
    tool_arguments: str = ""


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
                return _error(401, "Incorrect API key provided.", "invalid_api_key")
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return _error(400, "'messages' is a required property", "invalid_request")
            status = self.faults.take_status()
            if status is not None:
                return self._status_fault(status)
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
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        self.model_listings.append(peer(request))
        model = {"id": self.model, "object": "model", "created": 0, "owned_by": "agentd-sim"}
        return web.json_response({"object": "list", "data": [model]})

    def _status_fault(self, status: int) -> web.StreamResponse:
        response = _error(status, f"emulated HTTP {status}", "emulated_fault")
        if self.faults.retry_after_s is not None:
            response.headers["retry-after"] = f"{self.faults.retry_after_s:g}"
        return response

    async def _stream(
        self, request: web.Request, record: RecordedRequest, plan: _Plan, body: dict[str, Any]
    ) -> web.StreamResponse:
        from aiohttp import web

        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        try:
            # Event k >= 1 is due at arrival + TTFT + (k - 1) x chunk_ms: deadlines, not
            # relative sleeps, so timer slack does not add up over a reply and the
            # service time a benchmark subtracts is what the emulator really waited.
            first_at = record.received_at + self.ttft_ms / 1000
            for index, event in enumerate(self._events(plan, body, include_usage)):
                if index >= 1:
                    await sleep_until(first_at + (index - 1) * self.chunk_ms / 1000)
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
        user_text = _text(messages[last_user]) if last_user >= 0 else ""
        tool_results = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
        turn = self.scenario.reply_for(user_text) if self.scenario else None
        wants_tool = bool(turn and turn.tool) and not tool_results
        if wants_tool and body.get("tool_choice") != "none" and turn is not None:
            arguments = json.dumps(turn.tool_arguments)
            if self.faults.bad_tool_arguments:
                arguments = BAD_ARGUMENTS
            return _Plan(
                tool_name=self.faults.unknown_tool_name or turn.tool, tool_arguments=arguments
            )
        if turn is not None and turn.reply:
            text = turn.reply
        elif tool_results:
            text = f"I checked that for you: {_text(tool_results[-1])[:120]}"
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

    def _events(self, plan: _Plan, body: dict[str, Any], include_usage: bool) -> Iterator[str]:
        """The SSE data payloads of one streamed reply, [DONE] last."""
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": str(body.get("model") or self.model),
            "system_fingerprint": "fp_emulator",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return json.dumps({**base, "choices": [choice]})

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        pieces = 0
        if plan.tool_name:
            call = {"index": 0, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function"}
            yield chunk(
                {"tool_calls": [{**call, "function": {"name": plan.tool_name, "arguments": ""}}]}
            )
            for start in range(0, len(plan.tool_arguments), ARGUMENT_FRAGMENT_CHARS):
                fragment = plan.tool_arguments[start : start + ARGUMENT_FRAGMENT_CHARS]
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]})
                pieces += 1
            finish = "tool_calls"
        else:
            for piece in split_tokens(plan.text):
                yield chunk({"content": piece})
                pieces += 1
            finish = "stop"
        yield chunk({}, finish)
        if include_usage:
            usage = _usage(body, pieces)
            yield json.dumps({**base, "choices": [], "usage": usage})
        yield "[DONE]"

    def _completion(self, plan: _Plan, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": plan.text or None,
            "refusal": None,
        }
        finish = "stop"
        if plan.tool_name:
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": plan.tool_name, "arguments": plan.tool_arguments},
                }
            ]
            finish = "tool_calls"
        pieces = len(split_tokens(plan.text)) + len(plan.tool_arguments) // ARGUMENT_FRAGMENT_CHARS
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or self.model),
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": _usage(body, pieces),
        }


def split_tokens(text: str) -> list[str]:
    """Token-like pieces: words with their leading space, long words cut in 4s."""
    pieces: list[str] = []
    for word in re.findall(r"\s*\S+|\s+$", text):
        pieces.extend(
            word[i : i + WORD_PIECE_CHARS + 1] for i in range(0, len(word), WORD_PIECE_CHARS + 1)
        )
    return pieces


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _usage(body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    # ~4 characters per token is OpenAI's own rule of thumb for English.
    prompt = sum(len(_text(m)) for m in body.get("messages", []) if isinstance(m, dict)) // 4
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def _error(status: int, message: str, code: str) -> web.Response:
    from aiohttp import web

    kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "server_error")
    error = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(error, status=status)
