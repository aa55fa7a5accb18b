"""A local emulator of AssemblyAI Streaming v3 for tests and the offline demo.

Speaks the wire protocol the official SDK (`assemblyai.streaming.v3`, 1.8.x) expects:
`GET /v3/ws?sample_rate=..&encoding=pcm_s16le&speech_model=..` with an `Authorization`
header; the server sends `Begin`, `SpeechStarted`, partial and end-of-turn `Turn`s as
the session's model family does (agentd.sim.assemblyai_turns); `ForceEndpoint` ends the
turn at once (an empty end-of-turn Turn when nothing was said); `Terminate` ->
`Termination` (with audio and session duration) then close 1000; `KeepAlive` is
accepted. Errors are an `Error` frame with `error_code`, then a close with that code:
1008 for a wrong key, 3006 for more than 100 keyterms, 3007 when audio arrives faster
than real time beyond RATE_TOLERANCE_MS, 3005 (or any code) as an injected fault.

Transcript texts come from a list or a Scenario: the k-th line (counted across
sessions, so a dropped, unfinished utterance keeps its text) is text k. A Scenario's
lines are said with pauses (agentd.sim.utterance): each end of turn transcribes what was
said so far - at a pause inside a sentence, without terminal punctuation - and the rest
of the line comes with the next; a plain list's texts are one breath each. Faults are
plain attributes/methods, safe to change while running. Every
session records the audio it received and timestamped events so tests can prove
nothing was lost across reconnects. Run it in the test's loop (`await start()`) or in a
thread with its own loop (`with running_in_thread(emu): ...`, agentd.sim.background).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from agentd.sim.assemblyai_turns import (
    MAX_KEYTERM_CHARS,
    MAX_KEYTERMS,
    Endpointer,
    TurnParams,
    turn_message,
)
from agentd.sim.scenario import Scenario
from agentd.sim.utterance import parse

log = logging.getLogger(__name__)

# Close codes of v3 (protocols.md; assemblyai/streaming/v3/models.py RealTimeErrorCodes):
# 1008 for credentials/account, 3005-3009 for the rest, 1000 after a Termination.
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_SERVER_ERROR = 3005
CLOSE_INPUT_INVALID = 3006
CLOSE_RATE_EXCEEDED = 3007
CLOSE_SESSION_EXPIRED = 3008
CLOSE_TOO_MANY_SESSIONS = 3009
AUTH_MODES = ("close_1008", "http_401")
# How far the audio received may run ahead of the wall-clock time since the session
# opened before a 3007. Unpublished by AssemblyAI; ours is 2000 ms (a third-party report,
# pigeonai-org/ViDove PR 3, saw the real limit near 310 s: ours is much stricter).
RATE_TOLERANCE_MS = 2000


@dataclass
class SessionRecord:
    """What one websocket session received and sent (times are time.monotonic())."""

    index: int
    id: str
    params: dict[str, str]
    authorized: bool
    audio: bytearray = field(default_factory=bytearray)
    chunk_ms: list[float] = field(default_factory=list)
    events: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    closed: bool = False
    opened_at: float = field(default_factory=time.monotonic)
    keyterms: list[str] = field(default_factory=list)  # the terms the session uses
    sent: list[dict[str, Any]] = field(default_factory=list)  # every JSON message sent

    def kinds(self) -> list[str]:
        return [kind for _, kind, _ in self.events]

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((d for _, k, d in self.events if k == kind), None)


@dataclass
class _Live:
    """One open session's moving parts."""

    ws: Any
    session: SessionRecord
    ep: Endpointer
    rate: int
    params: TurnParams
    turn_order: int = 0
    finals: list[asyncio.Task[None]] = field(default_factory=list)


class AssemblyAiEmulator:
    """AssemblyAI v3 streaming on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        transcripts: Sequence[str] = (),
        scenario: Scenario | None = None,
        api_key: str = "test-key",
        *,
        final_delay_ms: int = 150,
        partial_interval_ms: int = 300,
        eot_confidence: float = 0.9,
        port: int = 0,
    ) -> None:
        texts = list(transcripts) or ([t.visitor for t in scenario.turns] if scenario else [])
        self.transcripts: list[str] = texts
        self.segmented = scenario is not None and not transcripts  # said with its pauses
        self._rest: list[str] | None = None  # what is still to say of line `next_text`
        self.api_key = api_key
        self.final_delay_ms = final_delay_ms
        # False: the final follows the endpoint decision by final_delay_ms (ForceEndpoint or
        # the silence timer). True: it follows the END OF SPEECH by final_delay_ms, or comes
        # at once if the endpoint was decided later: the way providers quote STT latency,
        # so a client that endpoints late shows it as its own overhead in the benchmark.
        self.final_from_speech_end = False
        self.partial_interval_ms = partial_interval_ms
        self.eot_confidence = eot_confidence
        self.sessions: list[SessionRecord] = []
        self.connection_attempts = 0
        self.next_text = 0  # index of the text the next endpointed utterance gets
        # --- faults (settable while running) ---
        self.refuse_mode = ""  # "", "http503" or "drop" (abort TCP before the handshake)
        self.refuse_remaining = 0  # refuse this many more connections (-1: all)
        self.auth_mode = "close_1008"  # how a wrong key is refused, one of AUTH_MODES
        self.drop_after_audio_ms = 0  # one-shot: abort TCP after N ms of session audio
        self.error_after_audio_ms = 0  # one-shot: Error frame + close `error_code`
        self.error_code = CLOSE_SERVER_ERROR  # 3005-3009 (1008: an account problem)
        self.close_after_audio_ms = 0  # one-shot: close 1000 WITHOUT a Termination
        self.format_delay_ms = 120  # Universal: the formatted copy follows this much later
        self.rate_tolerance_ms = RATE_TOLERANCE_MS  # audio ahead of wall clock -> 3007
        self.stalled = False  # read everything, answer nothing
        self._port = port
        self._server: Any = None
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"ws://127.0.0.1:{self._port}"

    async def start(self) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self._port,
            process_request=self._process_request,
            max_size=2**22,
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- faults -------------------------------------------------------------------

    def refuse_next(self, count: int = 1, mode: str = "drop") -> None:
        """Refuse the next `count` connections (-1: until cleared) with `mode`."""
        self.refuse_mode, self.refuse_remaining = mode, count

    # --- waiting (works from any loop or thread) -------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], within_s: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._waiters.add(entry)
        try:
            async with asyncio.timeout(within_s):
                while True:
                    event.clear()
                    if predicate():
                        return
                    await event.wait()
        finally:
            with self._lock:
                self._waiters.discard(entry)

    def _notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop already closed
                loop.call_soon_threadsafe(event.set)

    def _record(
        self, session: SessionRecord, kind: str, at: float | None = None, **detail: Any
    ) -> None:
        session.events.append((time.monotonic() if at is None else at, kind, detail))
        self._notify()

    # --- handshake -------------------------------------------------------------------

    def _process_request(self, connection: Any, request: Any) -> Any:
        self.connection_attempts += 1
        self._notify()
        if self.refuse_mode and self.refuse_remaining != 0:
            if self.refuse_remaining > 0:
                self.refuse_remaining -= 1
            if self.refuse_mode == "drop":
                connection.transport.abort()
            return connection.respond(503, "Service unavailable (emulated)\n")
        if urlsplit(request.path).path != "/v3/ws":
            return connection.respond(404, "Not found\n")
        authorized = request.headers.get("Authorization") == self.api_key
        if not authorized and self.auth_mode == "http_401":
            return connection.respond(401, "Invalid API key\n")
        return None

    # --- session -----------------------------------------------------------------------

    async def _handle(self, ws: Any) -> None:
        query = dict(parse_qsl(urlsplit(ws.request.path).query))
        authorized = ws.request.headers.get("Authorization") == self.api_key
        session = SessionRecord(len(self.sessions), str(uuid.uuid4()), query, authorized)
        self.sessions.append(session)
        self._record(session, "open", params=query)
        try:
            await self._serve_session(ws, session)
        except Exception as exc:  # connection lost: the session just ends
            self._record(session, "lost", error=type(exc).__name__)
        finally:
            session.closed = True
            self._record(session, "closed", code=ws.close_code)

    async def _serve_session(self, ws: Any, session: SessionRecord) -> None:
        if not session.authorized:
            self._record(session, "auth_refused", code=CLOSE_POLICY)
            await self._error(ws, session, CLOSE_POLICY, "Invalid API key")
            return
        params = session.params
        try:
            rate = int(params["sample_rate"])
        except (KeyError, ValueError):
            await self._error(ws, session, CLOSE_INPUT_INVALID, "Invalid sample_rate")
            return
        keyterms = _keyterms(params.get("keyterms_prompt", ""))
        if len(keyterms) > MAX_KEYTERMS:
            message = f"keyterms_prompt: at most {MAX_KEYTERMS} terms, got {len(keyterms)}"
            await self._error(ws, session, CLOSE_INPUT_INVALID, message)
            return
        session.keyterms = [t for t in keyterms if len(t) <= MAX_KEYTERM_CHARS]
        turn_params = TurnParams.from_query(params)
        ep = Endpointer(
            rate,
            turn_params,
            confidence=self.eot_confidence,
            partial_interval_ms=self.partial_interval_ms,
        )
        live = _Live(ws, session, ep, rate, turn_params)
        ep.segmented = self.segmented
        ep.segments = self._segments()
        session.opened_at = time.monotonic()
        begin = {"type": "Begin", "id": session.id, "expires_at": int(time.time()) + 3600}
        await _send(ws, session, begin)
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    if not await self._on_audio(live, message):
                        return
                elif not await self._on_control(live, message):
                    return
        finally:
            for task in live.finals:
                task.cancel()

    async def _error(self, ws: Any, session: SessionRecord, code: int, message: str) -> None:
        """The service's way to fail a session: an Error frame, then a close with the code."""
        self._record(session, "error", code=code, message=message)
        await _send(ws, session, {"type": "Error", "error_code": code, "error": message})
        await ws.close(code, message[:120])

    async def _on_audio(self, live: _Live, pcm: bytes) -> bool:
        """Record and endpoint one binary frame; False ends the session."""
        session = live.session
        session.audio.extend(pcm)
        session.chunk_ms.append(len(pcm) / 2 / live.rate * 1000)
        self._record(session, "audio", nbytes=len(pcm))
        if await self._session_fault(live):
            return False
        if await self._rate_exceeded(live):
            return False
        if self.stalled:
            return True
        for kind, detail in live.ep.feed(pcm):
            if kind == "speech_started":
                await _send(live.ws, session, {"type": "SpeechStarted", "timestamp": detail})
            elif kind == "partial":
                await self._send_partial(live)
            elif kind == "endpoint":
                self._finish_turn(live, "silence")
        return True

    async def _rate_exceeded(self, live: _Live) -> bool:
        """3007 when the audio runs ahead of real time by more than the tolerance."""
        session = live.session
        audio_ms = len(session.audio) / 2 / live.rate * 1000
        wall_ms = (time.monotonic() - session.opened_at) * 1000
        if audio_ms - wall_ms <= self.rate_tolerance_ms:
            return False
        message = (
            "Input Duration Error: Audio Transmission Rate Exceeded: "
            f"Received {audio_ms / 1000:.1f} sec. audio in {wall_ms / 1000:.6f} sec"
        )
        await self._error(live.ws, session, CLOSE_RATE_EXCEEDED, message)
        return True

    async def _send_partial(self, live: _Live) -> None:
        text, _ = live.ep.heard(end=False)
        message = turn_message(
            live.turn_order,
            live.ep,
            text,
            end=False,
            formatted=live.ep.u3,  # U3 partials are transcribed segments, punctuated
            confidence=self.eot_confidence,
        )
        if message["transcript"]:
            self._record(
                live.session, "partial", speech_ms=live.ep.audio_ms - live.ep.speech_start_ms
            )
            await _send(live.ws, live.session, message)

    async def _on_control(self, live: _Live, message: str) -> bool:
        msg = _parse_json(message)
        kind = str(msg.get("type", ""))
        self._record(live.session, kind or "bad_json", message=msg)
        if self.stalled:
            return True
        if kind in ("ForceEndpoint", "Terminate") and live.ep.speaking:
            self._finish_turn(live, "force")
        elif kind == "ForceEndpoint" and live.ep.audio_since_turn_ms > 0:
            self._finish_turn(live, "force", empty=True)  # noise: nothing to transcribe
        if kind != "Terminate":
            return True
        await asyncio.gather(*live.finals, return_exceptions=True)
        session = live.session
        termination = {
            "type": "Termination",
            "audio_duration_seconds": int(len(session.audio) / 2 / live.rate),
            "session_duration_seconds": int(time.monotonic() - session.opened_at),
        }
        await _send(live.ws, session, termination)
        await live.ws.close(CLOSE_NORMAL)
        return False

    async def _session_fault(self, live: _Live) -> bool:
        session = live.session
        audio_ms = len(session.audio) / 2 / live.rate * 1000
        if self.drop_after_audio_ms and audio_ms >= self.drop_after_audio_ms:
            self.drop_after_audio_ms = 0
            self._record(session, "fault_drop", audio_ms=audio_ms)
            live.ws.transport.abort()
            return True
        if self.error_after_audio_ms and audio_ms >= self.error_after_audio_ms:
            self.error_after_audio_ms = 0
            self._record(session, "fault_error", audio_ms=audio_ms)
            await self._error(live.ws, session, self.error_code, "Server error (emulated)")
            return True
        if self.close_after_audio_ms and audio_ms >= self.close_after_audio_ms:
            self.close_after_audio_ms = 0
            self._record(session, "fault_close", audio_ms=audio_ms)
            await live.ws.close(CLOSE_NORMAL)  # no Termination first
            return True
        return False

    def _finish_turn(self, live: _Live, why: str, *, empty: bool = False) -> None:
        """Endpoint now; the end-of-turn Turn(s) follow after final_delay_ms."""
        text = ""
        ep = live.ep
        if not empty:
            text, rest = ep.heard(end=True)
            self._rest = rest or None
            if not rest:
                self.next_text += 1
        order = live.turn_order
        live.turn_order += 1
        confidence = self.eot_confidence
        if ep.u3:  # one end-of-turn Turn, always formatted
            messages = [turn_message(order, ep, text, end=True, formatted=True, confidence=1.0)]
        else:
            messages = [
                turn_message(order, ep, text, end=True, formatted=False, confidence=confidence)
            ]
            if live.params.format_turns:
                messages.append(
                    turn_message(order, ep, text, end=True, formatted=True, confidence=confidence)
                )
        delay_s = self.final_delay_ms / 1000
        if self.final_from_speech_end and ep.last_voiced_at and not empty:
            delay_s = max(0.0, ep.last_voiced_at + delay_s - time.monotonic())
        ep.reset()
        ep.segments = self._segments()
        self._record(
            live.session,
            "endpoint",
            reason=why,
            turn_order=order,
            text=text,
            audio_ms=ep.audio_ms,
            voice_end_ms=ep.last_voiced_at_ms,
        )

        async def send_final() -> None:
            await asyncio.sleep(delay_s)
            if self.stalled:
                return
            # Timed before the send: the client may act on it before this thread runs on.
            sent_at = time.monotonic()
            await _send(live.ws, live.session, messages[0])
            self._record(live.session, "final", at=sent_at, turn_order=order, text=text)
            for later in messages[1:]:
                await asyncio.sleep(self.format_delay_ms / 1000)
                await _send(live.ws, live.session, later)

        live.finals.append(asyncio.create_task(send_final()))

    def _segments(self) -> list[str]:
        """What is still to say of the current line, segment by segment."""
        if self._rest is not None:
            return list(self._rest)
        if self.next_text >= len(self.transcripts):
            return []
        text = self.transcripts[self.next_text]
        if not self.segmented:
            return [text] if text else []
        return [segment.text for segment in parse(text)]


async def _send(ws: Any, session: SessionRecord, message: dict[str, Any]) -> None:
    session.sent.append(message)
    await ws.send(json.dumps(message))


def _keyterms(raw: str) -> list[str]:
    """The SDK sends keyterms_prompt as a JSON list in the query string."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return [raw]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _parse_json(message: str) -> dict[str, Any]:
    try:
        value = json.loads(message)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
