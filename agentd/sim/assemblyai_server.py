"""A local emulator of AssemblyAI Streaming v3 for tests and the offline demo.

Speaks the wire protocol the official SDK (`assemblyai.streaming.v3`, 1.8.x) expects:
`GET /v3/ws?sample_rate=..&encoding=pcm_s16le&format_turns=..` with an `Authorization`
header; server sends `Begin`, partial `Turn`s while speech arrives, an `end_of_turn`
Turn, and (with format_turns) a formatted Turn; `Terminate` -> `Termination`;
`ForceEndpoint` ends the turn at once; `KeepAlive` is accepted.

It does its own endpointing on the PCM it receives (webrtcvad + an energy floor, on
*audio* time, like the real service: no audio, no endpoint), and takes transcript
texts from a list or a Scenario: the k-th endpointed utterance (counted across
sessions, so a dropped, unfinished utterance keeps its text) gets text k.

Faults are plain attributes/methods, safe to change while running. Every session
records the audio it received and timestamped events so tests can prove nothing was
lost across reconnects. Run it in the test's loop (`await start()`) or in a thread
with its own loop (`with running_in_thread(emu): ...`, agentd.sim.background).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from agentd.audio import dsp
from agentd.sim.scenario import Scenario

log = logging.getLogger(__name__)

# Close codes the real service uses (assemblyai/streaming/v3/models.py RealTimeErrorCodes).
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_SERVER_ERROR = 3005
CLOSE_NOT_AUTHORIZED = 4001
AUTH_MODES = ("close_1008", "close_4001", "http_401")
# webrtcvad accepts 10/20/30 ms frames at 8/16/32/48 kHz. 10 ms divides every chunk a
# client sends (50 ms, or a zero-padded flush), so a chunk's last frame is judged when
# it arrives, not when the next chunk completes it: the speech end the emulator "hears"
# is the arrival of the client's audio, and the final latency is timed from there.
_FRAME_MS = 10
_SPEECH_START_MS = 60  # voiced run that counts as speech (ignores clicks)
_ENERGY_FLOOR_DB = -42.0  # below this a frame is silence, whatever the VAD says
_MS_PER_WORD = 360  # espeak-ng at 165 wpm


class Endpointer:
    """Server-side turn detection on audio time: speech start, partial cadence, endpoint."""

    def __init__(
        self,
        rate_hz: int,
        *,
        min_silence_ms: int,
        max_silence_ms: int,
        threshold: float,
        confidence: float,
        partial_interval_ms: int,
    ) -> None:
        self.rate_hz = rate_hz
        self.min_silence_ms = min_silence_ms
        self.max_silence_ms = max(max_silence_ms, min_silence_ms)
        self.confident = confidence >= threshold
        self.partial_interval_ms = partial_interval_ms
        self.ms_per_word = _MS_PER_WORD
        self.speaking = False
        self.speech_start_ms = 0.0
        self.audio_ms = 0.0
        self.last_voiced_at = 0.0  # time.monotonic() when the last voiced frame arrived
        self._frame_bytes = rate_hz * _FRAME_MS // 1000 * 2
        self._pending = bytearray()
        self._voiced_run_ms = 0.0
        self._silence_ms = 0.0
        self._since_partial_ms = 0.0
        self._vad: Any = None
        if rate_hz in (8000, 16000, 32000, 48000):
            import webrtcvad

            self._vad = webrtcvad.Vad(2)

    def feed(self, pcm: bytes) -> list[tuple[str, Any]]:
        self._pending.extend(pcm)
        out: list[tuple[str, Any]] = []
        while len(self._pending) >= self._frame_bytes:
            frame = bytes(self._pending[: self._frame_bytes])
            del self._pending[: self._frame_bytes]
            self.audio_ms += _FRAME_MS
            out.extend(self._frame(frame, self._voiced(frame)))
        return out

    def _frame(self, frame: bytes, voiced: bool) -> list[tuple[str, Any]]:
        if not self.speaking:
            self._voiced_run_ms = self._voiced_run_ms + _FRAME_MS if voiced else 0.0
            if self._voiced_run_ms < _SPEECH_START_MS:
                return []
            self.speaking = True
            self.speech_start_ms = self.audio_ms - self._voiced_run_ms
            self._silence_ms = self._since_partial_ms = 0.0
            return [("speech_started", int(self.speech_start_ms))]
        self._silence_ms = 0.0 if voiced else self._silence_ms + _FRAME_MS
        if voiced:
            self.last_voiced_at = time.monotonic()
        limit = self.min_silence_ms if self.confident else self.max_silence_ms
        if self._silence_ms >= limit:
            self.reset()
            return [("endpoint", None)]
        self._since_partial_ms += _FRAME_MS
        if voiced and self._since_partial_ms >= self.partial_interval_ms:
            self._since_partial_ms = 0.0
            return [("partial", None)]
        return []

    def _voiced(self, frame: bytes) -> bool:
        # C-speed energy: this runs in the daemon's process during benchmarks, and a
        # pure-Python loop here would show up as GIL contention in the daemon's figures.
        mean_sq = dsp.mean_square(frame)
        if 10 * math.log10(mean_sq / 32768.0**2 + 1e-12) < _ENERGY_FLOOR_DB:
            return False
        return self._vad is None or bool(self._vad.is_speech(frame, self.rate_hz))

    def words_heard(self, total: int) -> int:
        """How many words a partial shows: grows with speech time, never the whole turn."""
        heard = int((self.audio_ms - self.speech_start_ms) / self.ms_per_word) + 1
        return max(0, min(total - 1, heard))

    def reset(self) -> None:
        self.speaking = False
        self._voiced_run_ms = self._silence_ms = 0.0


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
    format_turns: bool
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
        self.error_after_audio_ms = 0  # one-shot: Error message + close 3005
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
            code = CLOSE_NOT_AUTHORIZED if self.auth_mode == "close_4001" else CLOSE_POLICY
            self._record(session, "auth_refused", code=code)
            await ws.close(code, "Invalid API key")
            return
        params = session.params
        try:
            rate = int(params["sample_rate"])
        except (KeyError, ValueError):
            await ws.close(4000, "Sample rate must be a positive integer")
            return
        ep = Endpointer(
            rate,
            min_silence_ms=int(params.get("min_turn_silence", 400)),
            max_silence_ms=int(params.get("max_turn_silence", 1280)),
            threshold=float(params.get("end_of_turn_confidence_threshold", 0.4)),
            confidence=self.eot_confidence,
            partial_interval_ms=self.partial_interval_ms,
        )
        live = _Live(ws, session, ep, rate, params.get("format_turns", "").lower() == "true")
        await ws.send(json.dumps({"type": "Begin", "id": session.id, "expires_at": 2e9}))
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

    async def _on_audio(self, live: _Live, pcm: bytes) -> bool:
        """Record and endpoint one binary frame; False ends the session."""
        session = live.session
        session.audio.extend(pcm)
        session.chunk_ms.append(len(pcm) / 2 / live.rate * 1000)
        self._record(session, "audio", nbytes=len(pcm))
        if await self._session_fault(live):
            return False
        if self.stalled:
            return True
        for kind, detail in live.ep.feed(pcm):
            if kind == "speech_started":
                await live.ws.send(json.dumps({"type": "SpeechStarted", "timestamp": detail}))
            elif kind == "partial":
                await live.ws.send(json.dumps(self._turn(live.turn_order, live.ep, end=False)))
            elif kind == "endpoint":
                self._finish_turn(live, "silence")
        return True

    async def _on_control(self, live: _Live, message: str) -> bool:
        msg = _parse_json(message)
        kind = str(msg.get("type", ""))
        self._record(live.session, kind or "bad_json", message=msg)
        if self.stalled:
            return True
        if kind in ("ForceEndpoint", "Terminate") and live.ep.speaking:
            self._finish_turn(live, "force")
        if kind != "Terminate":
            return True
        await asyncio.gather(*live.finals, return_exceptions=True)
        audio_s = int(len(live.session.audio) / 2 / live.rate)
        await live.ws.send(json.dumps({"type": "Termination", "audio_duration_seconds": audio_s}))
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
            await live.ws.send(json.dumps({"type": "Error", "error": "Server error (emulated)"}))
            await live.ws.close(CLOSE_SERVER_ERROR, "Server error")
            return True
        return False

    def _finish_turn(self, live: _Live, why: str) -> None:
        """Endpoint now; the final Turn(s) follow after final_delay_ms."""
        text = self._text()
        self.next_text += 1
        order = live.turn_order
        live.turn_order += 1
        unformatted = self._turn(order, live.ep, end=True, text=text)
        formatted = {**unformatted, "turn_is_formatted": True, "transcript": text}
        delay_s = self.final_delay_ms / 1000
        if self.final_from_speech_end and live.ep.last_voiced_at:
            delay_s = max(0.0, live.ep.last_voiced_at + delay_s - time.monotonic())
        live.ep.reset()
        self._record(live.session, "endpoint", reason=why, turn_order=order, text=text)

        async def send_final() -> None:
            await asyncio.sleep(delay_s)
            if self.stalled:
                return
            # Timed before the send: the client may act on it before this thread runs on.
            sent_at = time.monotonic()
            await live.ws.send(json.dumps(unformatted))
            if live.format_turns:
                await live.ws.send(json.dumps(formatted))
            self._record(live.session, "final", at=sent_at, turn_order=order, text=text)

        live.finals.append(asyncio.create_task(send_final()))

    def _text(self) -> str:
        return self.transcripts[self.next_text] if self.next_text < len(self.transcripts) else ""

    def _turn(
        self, order: int, ep: Endpointer, *, end: bool, text: str | None = None
    ) -> dict[str, Any]:
        words = _plain(self._text() if text is None else text).split()
        shown = words if end else words[: ep.words_heard(len(words))]
        word_list = [
            {
                "start": int(ep.speech_start_ms + i * ep.ms_per_word),
                "end": int(ep.speech_start_ms + (i + 1) * ep.ms_per_word),
                "confidence": 0.95,
                "text": w,
                "word_is_final": end or i < len(shown) - 1,
            }
            for i, w in enumerate(shown)
        ]
        return {
            "type": "Turn",
            "turn_order": order,
            "turn_is_formatted": False,
            "end_of_turn": end,
            "transcript": " ".join(shown),
            "end_of_turn_confidence": self.eot_confidence if end else 0.05,
            "words": word_list,
        }


def _plain(text: str) -> str:
    """The unformatted transcript the real service sends before formatting."""
    return "".join(c for c in text.lower() if c.isalnum() or c in " '")


def _parse_json(message: str) -> dict[str, Any]:
    try:
        value = json.loads(message)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
