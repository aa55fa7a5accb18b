"""The daemon's speech-to-text link: AssemblyAI Streaming v3 via the official SDK.

Why the asyncio client: assemblyai 1.8.x ships `AsyncRealTimeTranscriber`
(`streaming/v3/async_client.py`), whose handlers run on the task that reads the
socket, i.e. on our loop. So every `emit()` happens on the loop thread with no bridge,
and no thread of ours exists to leak. The SDK client is single-use (one websocket per
instance, `connect()` reports failures through the Error handler instead of raising),
so each session is a fresh client and the reconnect logic lives here:

- a session opens when the VAD gate opens (`begin_utterance`), not at start-up;
- audio is re-chunked to `chunk_ms` frames and kept until its final arrives, so a
  dropped socket is followed by a replay of the whole unfinished utterance
  (`_replay.ReplayBuffer`, bounded by `buffer_s`);
- reconnects use capped exponential backoff with jitter; an auth refusal moves to
  FAILED and is retried only on an utterance at least `auth_retry_s` later;
- audio goes out paced (`session.py`) and the parameters and the final depend on the
  speech model's family (`model_family.py`);
- an empty end of turn (noise, nothing transcribable) is an empty `TurnFinalized`, not a
  fault; a session closed without `Termination` is a drop (reported, then resumed);
- no final within `final_timeout_s` of `end_utterance` (or of the last of its audio
  and its ForceEndpoint going out, when pacing sent them later) -> `FaultRaised("stt_timeout")`
  and the session is dropped (a silent server is not trusted with the next turn);
- after `idle_close_s` without an utterance the session is Terminated.

All public methods must be called on the loop thread; none of them blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentd.audio.format import AudioFormat
from agentd.backoff import Backoff
from agentd.config.sections_stt import SttConfig
from agentd.events import (
    FaultRaised,
    LinkChanged,
    LinkState,
    TranscriptPartial,
    TurnFinalized,
    VoicedAudio,
)
from agentd.events import now_ms as _now_ms
from agentd.stt._replay import ENDPOINT, ReplayBuffer
from agentd.stt.model_family import awaits_formatted_copy, session_parameters
from agentd.stt.session import DISCONNECT_TIMEOUT_S, Session, disconnect, new_client

log = logging.getLogger(__name__)

LINK = "stt"
# Close/HTTP codes that mean "your credentials or account": 401/403 at the handshake,
# 1008 policy and 4001-4003 (RealTimeErrorCodes in the SDK's models.py). Retrying
# these at backoff speed would only hammer the service.
AUTH_CODES = frozenset({401, 403, 1008, 4001, 4002, 4003})
_BACKOFF_BASE_S = 0.25  # a drop mid-utterance should cost well under a second
_STABLE_SESSION_S = 10.0  # a session that lived this long resets the backoff
CLOSE_RATE_EXCEEDED = 3007


@dataclass
class SttStats:
    sessions: int = 0
    reconnects: int = 0  # sessions opened to resume after a failure
    audio_sent_s: float = 0.0
    turns: int = 0
    timeouts: int = 0


class AssemblyAiStt:
    """Streaming STT link; see the module docstring for the contract."""

    def __init__(
        self, config: SttConfig, api_key: str, rate_hz: int, emit: Callable[[object], None]
    ) -> None:
        self._config = config
        self._backoff = Backoff(config.max_backoff_s, first_s=_BACKOFF_BASE_S)
        self._api_key = api_key
        self._rate_hz = rate_hz
        self._format = AudioFormat(rate_hz)
        self._emit_cb = emit
        self._buffer = ReplayBuffer(
            self._format.bytes_for_ms(config.chunk_ms),
            self._format.bytes_for_ms(config.buffer_s * 1000),
        )
        self._state = LinkState.DISCONNECTED
        self._wake = asyncio.Event()
        self._link_task: asyncio.Task[None] | None = None
        self._session: Session | None = None
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._params: Any = None
        self._closing = False
        self._started = False
        self._last_activity = time.monotonic()
        self._last_attempt = float("-inf")
        self._last_partial = ""
        self._turn_counter = 0
        self._was_voiced = False  # the last gated frame was voiced (pause detection)
        self._owed_bytes = 0  # unvoiced audio still to drop for early-flush padding
        self._awaits_format = awaits_formatted_copy(config)
        self._slow = False  # a 3007 was seen: send at real time from now on
        self.stats = SttStats()

    # --- public API ------------------------------------------------------------------

    @property
    def link_state(self) -> LinkState:
        return self._state

    async def start(self) -> None:
        """Validate the session parameters now (a bad speech_model fails at boot)."""
        self._params = session_parameters(self._config, self._rate_hz)
        self._started = True

    def begin_utterance(self) -> None:
        """The VAD gate opened: start a segment and make sure a session is (being) open."""
        if not self._started or self._closing:
            return
        self._was_voiced, self._owed_bytes = True, 0
        self._last_activity = time.monotonic()
        if self._state is LinkState.FAILED:
            if time.monotonic() - self._last_attempt < self._config.auth_retry_s:
                return  # no retry storm; end_utterance reports the missing transcript
            self._set_state(LinkState.CONNECTING, "retrying after credentials were refused")
        self._buffer.open()
        self._last_partial = ""
        self._ensure_link()
        self._wake.set()

    def feed(self, pcm: bytes) -> None:
        if not self._started or self._closing or self._state is LinkState.FAILED:
            return
        self._buffer.append(pcm)
        self._last_activity = time.monotonic()
        self._ensure_link()
        self._wake.set()

    def send_gated(self, audio: VoicedAudio) -> bytes:
        """Gated audio to the service; returns exactly what the service hears of it.

        When the voice stops - inside a voiced frame (`ends_quiet`) or at an unvoiced
        frame after a voiced one - the partial chunk is flushed zero-padded: the service
        hears the end of the word up to a chunk sooner, which is latency the visitor
        feels. The padding lands where the room was already quiet; as much unvoiced
        audio is dropped later ("owed"), so the stream's timeline stays aligned even
        when the voice resumes at once (a pause inside a sentence). The returned bytes
        (padding included) are what the debug recording and the turn's metrics count.
        """
        pcm = audio.chunk.pcm
        heard = b""
        if not audio.voiced:
            if self._was_voiced:
                heard += self._flush_pause()
            if self._owed_bytes:
                skipped = min(self._owed_bytes, len(pcm))
                self._owed_bytes -= skipped
                pcm = pcm[skipped:]
        if pcm:
            self.feed(pcm)
            heard += pcm
        if audio.ends_quiet:
            heard += self._flush_pause()
        self._was_voiced = audio.voiced and not audio.ends_quiet
        return heard

    def _flush_pause(self) -> bytes:
        """Send the partial chunk now, zero-padded; returns the padding (now owed)."""
        if not self._started or self._closing or self._state is LinkState.FAILED:
            return b""
        pad = self._buffer.pad_open_segment()
        if pad:
            self._owed_bytes += pad
            self._wake.set()
        return bytes(pad)

    def end_utterance(self) -> None:
        """The visitor stopped: ForceEndpoint after the audio, and arm the final timer."""
        if not self._started or self._closing:
            return
        self._last_activity = time.monotonic()
        if self._state is LinkState.FAILED:
            self._fault("stt_timeout", "STT link failed (credentials refused): no transcript")
            return
        seg = self._buffer.end()
        if seg is None:
            return
        loop = asyncio.get_running_loop()
        self._timers[seg.seg_id] = loop.call_later(
            self._config.final_timeout_s, self._on_final_timeout, seg.seg_id
        )
        self._wake.set()

    def end_session(self) -> None:
        """The conversation is over: Terminate the session once its audio is out.

        Same path as `idle_close_s`, only sooner: nothing more of this visitor goes to
        the service, and an open session costs money. The next utterance opens a new one.
        """
        self._last_activity = time.monotonic() - self._config.idle_close_s
        self._wake.set()

    async def close(self) -> None:
        """Terminate the session (if any) and stop; idempotent."""
        if self._closing:
            return
        self._closing = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._wake.set()
        task = self._link_task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), DISCONNECT_TIMEOUT_S + 1.0)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._state is not LinkState.FAILED:
            self._set_state(LinkState.DISCONNECTED)

    # --- link task ---------------------------------------------------------------------

    def _ensure_link(self) -> None:
        if self._link_task is None or self._link_task.done():
            self._link_task = asyncio.get_running_loop().create_task(
                self._run_link(), name="stt-link"
            )

    async def _run_link(self) -> None:
        outage = False
        try:
            while not self._closing:
                session = await self._connect()
                if session.error is None:
                    if outage:
                        self.stats.reconnects += 1
                    await self._pump(session)
                    stable = time.monotonic() - session.opened_at >= _STABLE_SESSION_S
                    if stable or session.got_turn:
                        self._backoff.reset()
                await disconnect(session, terminate=False)
                error = session.error
                if self._closing:
                    break
                if error is not None and getattr(error, "code", None) == CLOSE_RATE_EXCEEDED:
                    self._slow = True  # never answer a 3007 with the same burst
                if error is not None and _is_auth(error):
                    self._on_auth_failure(error)
                    return
                if error is not None and not outage:
                    self._fault("stt", f"STT session failed: {error}")
                outage = error is not None
                if not self._buffer.pending:
                    break  # idle or nothing left to resend: reconnect on the next utterance
                await self._wait_before_retry()
        except Exception as exc:  # task boundary: report, never kill the loop
            log.exception("STT link task failed")
            self._fault("stt", f"STT link task failed: {exc}")
        finally:
            self._session = None
            if self._state is not LinkState.FAILED:
                self._set_state(LinkState.DISCONNECTED)

    async def _connect(self) -> Session:
        from assemblyai.streaming.v3 import RealTimeEvents

        self._set_state(LinkState.CONNECTING)
        self._last_attempt = time.monotonic()
        session = Session(new_client(self._config, self._api_key))
        client = session.client
        client.on(RealTimeEvents.Turn, lambda _c, ev: self._on_turn(session, ev))
        client.on(RealTimeEvents.Termination, lambda _c, _ev: self._on_termination(session))
        client.on(RealTimeEvents.Error, lambda _c, err: self._on_end(session, err))
        self._session = session
        self.stats.sessions += 1
        await client.connect(self._params)
        session.begun_at = time.monotonic()
        # The SDK reports nothing when the server closes with 1000 without Termination;
        # its read task ending is the only sign (SDK-private attribute, checked for).
        read_task = getattr(client, "_read_task", None)
        if isinstance(read_task, asyncio.Task):
            read_task.add_done_callback(lambda _t: self._on_read_done(session))
        if session.error is None and not session.ended:
            self._set_state(LinkState.CONNECTED)
        return session

    async def _pump(self, session: Session) -> None:
        """Send buffered audio and endpoints in order until the session ends or idles."""
        self._buffer.rewind()
        bytes_per_s = self._format.bytes_per_s
        while not (session.ended or session.abort or self._closing):
            self._wake.clear()
            item = self._buffer.next_item()
            if item == ENDPOINT:
                await session.client.force_endpoint()
                self._rearm_final_timer(self._buffer.last_seg_id)
                continue
            if isinstance(item, bytes):
                await self._pace(session, len(item) / bytes_per_s * 1000)
                if session.ended or session.abort or self._closing:
                    break
                await session.client.stream(item)
                session.sent_ms += len(item) / bytes_per_s * 1000
                self._rearm_final_timer(self._buffer.last_seg_id)
                self.stats.audio_sent_s += len(item) / bytes_per_s
                continue
            idle_left = self._config.idle_close_s - (time.monotonic() - self._last_activity)
            if not self._buffer.pending and idle_left <= 0:
                await disconnect(session, terminate=True)
                return
            timeout = None if self._buffer.pending else max(idle_left, 0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        if self._closing and not session.ended:
            await disconnect(session, terminate=True)

    def _rearm_final_timer(self, seg_id: int) -> None:
        """An ended utterance still going out (paced): its final is due after the last of it."""
        timer = self._timers.get(seg_id)
        if timer is None:
            return
        timer.cancel()
        self._timers[seg_id] = asyncio.get_running_loop().call_later(
            self._config.final_timeout_s, self._on_final_timeout, seg_id
        )

    async def _pace(self, session: Session, chunk_ms: float) -> None:
        """Wait until `chunk_ms` more audio keeps the session within its rate budget."""
        while not (session.over or self._closing):
            left_ms = session.ms_until_ready(chunk_ms, slow=self._slow)
            if left_ms <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left_ms / 1000)

    async def _wait_before_retry(self) -> None:
        delay = self._backoff.next_delay()
        self._set_state(LinkState.BACKOFF, f"retry in {delay:.2f} s")
        self._wake.clear()
        deadline = time.monotonic() + delay
        while not self._closing and (left := deadline - time.monotonic()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    # --- SDK handlers (run on the loop, in the SDK's read task) -------------------------

    def _on_turn(self, session: Session, event: Any) -> None:
        session.got_turn = True
        if not event.end_of_turn:
            text = str(event.transcript)
            if text and text != self._last_partial:
                self._last_partial = text
                self._emit(TranscriptPartial(text=text, at_ms=_now_ms()))
            return
        text = str(event.transcript)
        if self._awaits_format and not event.turn_is_formatted and text.strip():
            return  # the formatted copy of this turn follows
        if event.turn_order in session.finalized:
            return
        session.finalized.add(event.turn_order)
        tail_of_heard = self._buffer.heard_before()
        seg = self._buffer.acknowledge()
        if seg is not None:
            timer = self._timers.pop(seg.seg_id, None)
            if timer is not None:
                timer.cancel()
        self._last_partial = ""
        self._last_activity = time.monotonic()
        self._wake.set()
        if not text.strip() and tail_of_heard:
            return  # the silence after a turn the server already ended: no new turn
        self.stats.turns += 1
        order, self._turn_counter = self._turn_counter, self._turn_counter + 1
        self._emit(TurnFinalized(text=text, at_ms=_now_ms(), turn_order=order))

    def _on_termination(self, session: Session) -> None:
        session.terminated = True
        self._on_end(session, None)

    def _on_read_done(self, session: Session) -> None:
        """The socket is gone: unless it ended by Termination, an error or us, it dropped."""
        if session.ended or session.disconnected or session.terminated:
            return
        from assemblyai.streaming.v3 import RealTimeError

        ws = getattr(session.client, "_websocket", None)
        code = getattr(ws, "close_code", None)
        self._on_end(session, RealTimeError(f"closed without Termination (code={code})", code))

    def _on_end(self, session: Session, error: Any) -> None:
        if error is not None and session.error is None:
            session.error = error
        session.ended = True
        self._wake.set()

    def _on_final_timeout(self, seg_id: int) -> None:
        self._timers.pop(seg_id, None)
        self._buffer.drop_through(seg_id)
        self.stats.timeouts += 1
        self._fault(
            "stt_timeout",
            f"no final transcript within {self._config.final_timeout_s} s of end of speech",
        )
        if self._session is not None and self._state is LinkState.CONNECTED:
            self._session.abort = True  # a server that went quiet is not trusted again
            self._wake.set()

    def _on_auth_failure(self, error: Any) -> None:
        self._buffer.clear()
        self._set_state(LinkState.FAILED, "credentials refused")
        self._fault("stt_auth", f"STT credentials refused: {error} (code={error.code})")

    # --- helpers -----------------------------------------------------------------------

    def _set_state(self, state: LinkState, detail: str = "") -> None:
        if state is not self._state:
            self._state = state
            self._emit(LinkChanged(link=LINK, state=state, detail=detail))

    def _fault(self, kind: str, message: str) -> None:
        self._emit(FaultRaised(error_kind=kind, message=message, link=LINK))

    def _emit(self, event: object) -> None:
        try:
            self._emit_cb(event)
        except Exception:  # the consumer's bug must not kill the link
            log.exception("STT emit callback raised for %s", type(event).__name__)


def _is_auth(error: Any) -> bool:
    return getattr(error, "code", None) in AUTH_CODES
