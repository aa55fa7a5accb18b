"""Local ElevenLabs HTTP streaming TTS emulator (aiohttp), spoken to by the official SDK.

Serves `POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_<rate>` the way the
`elevenlabs` SDK (2.7x, `text_to_speech/raw_client.py`) calls it: `xi-api-key` header,
JSON body with text/model_id/voice_settings/previous_text/next_text, chunked raw S16_LE
mono PCM back. The audio is real speech (espeak-ng via `agentd.sim.speech`), so VAD,
barge-in and duration checks downstream see what a real voice produces.

Latency (`ttfb_ms`, `chunk_delay_ms`, `pace`) and faults (`.faults`) can be changed at
any time, also while a request streams; every request is recorded in `.requests`.

Provider behaviour (ElevenLabs help centre "API Error Code 400 or 401" and "429", the
SDK's `text_to_speech/raw_client.py` docstrings): errors are
`{"detail": {"status": code, "message": ...}}` except request validation (422), whose
`detail` is FastAPI's list of `{type, loc, msg, input}`; a 429 is `system_busy` or
`too_many_concurrent_requests`; an exhausted quota is 401 `quota_exceeded`, the same
status as a wrong key. `pcm_44100` needs the Pro plan or above (SDK docstring); the
refusal's shape is not documented: the emulator answers 403 `subscription_required`
as third-party reports describe it (see docs/cloud-contract.md). Every response has a
`request-id` header; the stitching fields a request carried are recorded so tests can
check them on the wire.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from agentd.sim.elevenlabs_wire import (
    NAMED_ERRORS,
    PCM_RATES,
    PRO_ONLY_RATES,
    PRO_PLANS,
    TtsRequestRecord,
    body_issues,
    error_response,
    invalid,
    issue,
    pcm_rate,
)
from agentd.sim.emulator_http import peer, sleep_until
from agentd.sim.speech import render_speech

ErrorName = Literal["system_busy", "too_many_concurrent_requests", "quota_exceeded"]
EMULATED_MODELS = (
    ("eleven_flash_v2_5", "Eleven Flash v2.5"),
    ("eleven_multilingual_v2", "Eleven Multilingual v2"),
)
_SAMPLE_BYTES = 2  # S16_LE mono
_SHUTDOWN_TIMEOUT_S = 1.0  # stop() must not wait aiohttp's default 60 s for stalled handlers

Malformed = Literal["odd_bytes", "not_audio"]


@dataclass
class Faults:
    """Faults applied to incoming requests; mutate freely, also from another thread.

    `remaining` limits how many further requests get the faults (None = all of them);
    it counts down per request, and at 0 the faults are cleared.
    """

    status: int | None = None  # answer with this HTTP status and an ElevenLabs JSON error
    error: ErrorName | None = None  # answer with this named ElevenLabs error instead
    retry_after_s: int | None = None  # Retry-After header sent with `status`
    stall_after_chunks: int | None = None  # send N chunks, then go silent (keep the socket)
    truncate_after_chunks: int | None = None  # send N chunks, then drop the connection
    malformed: Malformed | None = None  # odd-sized chunks, or a 200 HTML page
    remaining: int | None = None

    def clear(self) -> None:
        self.status = None
        self.error = None
        self.retry_after_s = None
        self.stall_after_chunks = None
        self.truncate_after_chunks = None
        self.malformed = None
        self.remaining = None

    def _take(self) -> Faults:
        """Snapshot for one request, counting down `remaining`."""
        snap = Faults(
            self.status,
            self.error,
            self.retry_after_s,
            self.stall_after_chunks,
            self.truncate_after_chunks,
            self.malformed,
        )
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.clear()
        return snap


class ElevenLabsEmulator:
    """The ElevenLabs streaming TTS endpoint on 127.0.0.1, with latency and fault injection."""

    def __init__(
        self,
        api_key: str = "test",
        *,
        ttfb_ms: float = 0.0,
        chunk_ms: int = 100,
        chunk_delay_ms: float = 0.0,
        pace: float = 0.0,
        espeak_voice: str = "en-us",
        plan: str = "creator",
        port: int = 0,
    ) -> None:
        self.port = port
        self.api_key = api_key
        self.plan = plan  # the key's subscription: pcm_44100 needs one of PRO_PLANS
        self.ttfb_ms = ttfb_ms  # before the response headers and first chunk
        self.chunk_ms = chunk_ms  # audio per chunk
        self.chunk_delay_ms = chunk_delay_ms  # fixed gap between chunks
        self.pace = pace  # gap += pace x chunk audio (1.0 = real time, 0 = as fast as possible)
        self.espeak_voice = espeak_voice
        self.faults = Faults()
        self.requests: list[TtsRequestRecord] = []
        # (host, port) of the client for each GET /v1/models (clients warming a connection)
        self.model_listings: list[Any] = []
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self._changed_sync = threading.Condition()

    @property
    def base_url(self) -> str:
        if not self._port:
            raise RuntimeError("ElevenLabsEmulator is not started")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        self._stopping = asyncio.Event()  # fresh, so a stopped emulator can start again
        app = web.Application()
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._handle_stream)
        app.router.add_get("/v1/models", self._models)
        # handler_cancellation: a client disconnect cancels the handler, so we see it at once.
        self._runner = web.AppRunner(
            app,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
            access_log=None,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        # aiohttp exposes the bound port only via the underlying asyncio server
        sockets = getattr(site._server, "sockets", None) or []
        if not sockets:
            raise RuntimeError("ElevenLabsEmulator: no listening socket after start")
        self._port = int(sockets[0].getsockname()[1])
        self.port = self._port  # a restart (network back) listens on the same port

    async def stop(self) -> None:
        """Idempotent; releases stalled handlers so shutdown is quick."""
        self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> ElevenLabsEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_until(
        self, predicate: Callable[[ElevenLabsEmulator], bool], timeout_s: float = 5.0
    ) -> None:
        """Wait (on the emulator's loop) until `predicate(self)` holds; TimeoutError otherwise."""
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    def wait_until_sync(
        self, predicate: Callable[[ElevenLabsEmulator], bool], timeout_s: float = 5.0
    ) -> None:
        """Thread-side twin of `wait_until`, for code using `running_in_thread`."""
        with self._changed_sync:
            if not self._changed_sync.wait_for(lambda: predicate(self), timeout_s):
                raise TimeoutError(f"emulator condition not met within {timeout_s} s")

    def _notify(self) -> None:
        self._changed.set()
        with self._changed_sync:
            self._changed_sync.notify_all()

    async def _models(self, request: web.Request) -> web.Response:
        """GET /v1/models: the model list (clients use it to warm a connection)."""
        if request.headers.get("xi-api-key") != self.api_key:
            return error_response(401, "invalid_api_key", "Invalid API key")
        self.model_listings.append(peer(request))
        return web.json_response(
            [
                {
                    "model_id": model_id,
                    "name": name,
                    "can_do_text_to_speech": True,
                    "can_use_style": False,
                    "languages": [{"language_id": "en", "name": "English"}],
                }
                for model_id, name in EMULATED_MODELS
            ]
        )

    async def _handle_stream(self, request: web.Request) -> web.StreamResponse:
        output_format = request.query.get("output_format", "mp3_44100_128")
        record = TtsRequestRecord(
            arrived_s=time.monotonic(),
            voice_id=request.match_info["voice_id"],
            output_format=output_format,
            optimize_streaming_latency=request.query.get("optimize_streaming_latency"),
            peer=peer(request),
            request_id=uuid.uuid4().hex,
        )
        self.requests.append(record)
        try:
            response = await self._serve(request, record, output_format)
            record.status = response.status
            return response
        except (asyncio.CancelledError, ConnectionError):
            record.disconnected = not record.completed
            raise
        finally:
            record.finished_s = time.monotonic()
            self._notify()

    async def _serve(
        self, request: web.Request, record: TtsRequestRecord, output_format: str
    ) -> web.StreamResponse:
        refused = await self._refusal(request, record, output_format)
        if refused is not None:
            refused.headers["request-id"] = record.request_id
            return refused
        rate_hz = pcm_rate(output_format)
        if rate_hz is None:  # unreachable: _refusal answered every other format
            raise RuntimeError(f"no PCM rate in {output_format!r}")
        faults = self.faults._take()
        # Synthesis runs during the TTFB wait, which is timed from the request's arrival
        # (a real service's TTFB includes its own synthesis); slow renders still delay.
        render = asyncio.ensure_future(
            asyncio.to_thread(render_speech, record.text, rate_hz, self.espeak_voice)
        )
        try:
            await sleep_until(record.arrived_s + self.ttfb_ms / 1000)
            if faults.error is not None:
                status, message = NAMED_ERRORS[faults.error]
                return error_response(status, faults.error, message, faults.retry_after_s, record)
            if faults.status is not None:
                return error_response(
                    faults.status, "injected_fault", "injected fault", faults.retry_after_s, record
                )
            if faults.malformed == "not_audio":
                return web.Response(
                    status=200,
                    text="<html><body>captive portal</body></html>",
                    content_type="text/html",
                )
            pcm = await render
        finally:
            render.cancel()  # no-op once done; else the render's result is not wanted
        return await self._stream_pcm(request, record, faults, pcm, rate_hz)

    async def _refusal(
        self, request: web.Request, record: TtsRequestRecord, output_format: str
    ) -> web.Response | None:
        """Check key, body and format as the service does; the error response, if any."""
        if request.headers.get("xi-api-key") != self.api_key:
            return error_response(401, "invalid_api_key", "Invalid API key")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "invalid_json", "Request body is not valid JSON")
        if not isinstance(body, dict):
            return invalid(
                [
                    issue(
                        "model_attributes_type",
                        ["body"],
                        "Input should be a valid dictionary",
                        body,
                    )
                ]
            )
        issues = body_issues(body)
        if issues:
            return invalid(issues)
        record.text = body["text"]
        record.model_id = body.get("model_id")
        record.voice_settings = body.get("voice_settings")
        record.previous_text = body.get("previous_text")
        record.next_text = body.get("next_text")
        record.previous_request_ids = body.get("previous_request_ids")
        record.next_request_ids = body.get("next_request_ids")
        self._notify()
        rate_hz = pcm_rate(output_format)
        if rate_hz is None:
            if output_format.startswith("pcm_"):
                allowed = ", ".join(f"'pcm_{r}'" for r in PCM_RATES)
                return invalid(
                    [
                        issue(
                            "enum",
                            ["query", "output_format"],
                            f"Input should be {allowed}",
                            output_format,
                        )
                    ]
                )
            return error_response(
                422,
                "unsupported_output_format",
                f"emulator serves only pcm_{{{','.join(map(str, PCM_RATES))}}}, "
                f"got output_format={output_format!r}",
            )
        if rate_hz in PRO_ONLY_RATES and self.plan not in PRO_PLANS:
            return error_response(
                403,
                "subscription_required",
                f"Output format '{output_format}' is only available on the Pro tier and above",
            )
        return None

    async def _stream_pcm(
        self,
        request: web.Request,
        record: TtsRequestRecord,
        faults: Faults,
        pcm: bytes,
        rate_hz: int,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "audio/pcm", "request-id": record.request_id}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        step_s = (self.chunk_delay_ms + self.pace * self.chunk_ms) / 1000
        first_s = time.monotonic()
        for index, chunk in enumerate(_chunks(pcm, rate_hz, self.chunk_ms, faults.malformed)):
            if index == faults.stall_after_chunks:
                await self._stopping.wait()  # until the client gives up or we shut down
                _drop(request)  # a stalled body never ends cleanly
                return response
            if index == faults.truncate_after_chunks:
                _drop(request)  # mid-body: the chunked message never ends
                return response
            if index:  # paced on deadlines from the first chunk: no drift over a reply
                await sleep_until(first_s + index * step_s)
            if record.first_chunk_s is None:  # before: the client may act on it first
                record.first_chunk_s = time.monotonic()
            await response.write(chunk)
            record.bytes_sent += len(chunk)
            record.chunks_sent += 1
            self._notify()
        await response.write_eof()
        record.completed = True
        return response


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _chunks(pcm: bytes, rate_hz: int, chunk_ms: int, malformed: str | None) -> Iterator[bytes]:
    size = max(_SAMPLE_BYTES, rate_hz * chunk_ms // 1000 * _SAMPLE_BYTES)
    if malformed == "odd_bytes":
        size += 1  # every chunk splits a sample; the total gets one stray byte
        pcm += b"\x00"
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]
