"""Opt-in turn capture: the next N turns as one WAV + JSON each, for an operator to fetch.

Off unless `privacy.allow_remote_capture = true`; an operator arms it with
`cmd/capture {"turns": N}`. A captured turn holds what STT heard (the gated audio, the
same bytes the cloud received), then what the agent played (cut where a cancel or
barge-in stopped it), and the turn's timeline: VAD, STT partials and final, barge-in
decisions, state changes (thinking = LLM asked, speaking = TTS audio out), first audio
and the turn's metrics. Files wait under a size and age cap and are deleted once fetched
(`cmd/capture_get`, chunked, resumable by offset) or when they expire. Capture is never
silent: `health`, a journal line on every change and an MQTT event say when it is on.

All methods run on the asyncio loop; file writes go to a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agentd.config.sections_core import PrivacyConfig
from agentd.diagnostics.probe import resample
from agentd.errors import CommandError
from agentd.events import (
    AgentState,
    BargeIn,
    BargeInDismissed,
    BargeInSuspected,
    CancelReply,
    FalseBargeIn,
    FirstAudioPlayed,
    Outcome,
    SpeechEnded,
    SpeechStarted,
    TranscriptPartial,
    TurnFinalized,
    TurnMetrics,
    VoicedAudio,
    now_ms,
)
from agentd.logs import fields

log = logging.getLogger("agentd.capture")

GAP_MS = 300  # silence between the heard and the played part of a turn's WAV
RETRIEVED_GRACE_S = 60.0  # a fully served file stays this long for a lost last chunk
MAX_TIMELINE = 2000  # entries per turn; a runaway turn must not grow the JSON unbounded
_EVENT_NAMES: dict[type, str] = {
    SpeechStarted: "vad.speech_started",
    SpeechEnded: "vad.speech_ended",
    TranscriptPartial: "stt.partial",
    TurnFinalized: "stt.final",
    BargeInSuspected: "barge_in.suspected",
    BargeInDismissed: "barge_in.dismissed",
    BargeIn: "barge_in.confirmed",
    FalseBargeIn: "barge_in.false",
    FirstAudioPlayed: "tts.first_audio",
    CancelReply: "reply.cancelled",
}
Notify = Callable[[str, dict[str, object]], None]  # (event name, payload) -> MQTT event


@dataclass(slots=True)
class _Turn:
    started_ms: float
    heard: bytearray = field(default_factory=bytearray)
    played: bytearray = field(default_factory=bytearray)
    timeline: list[dict[str, object]] = field(default_factory=list)
    truncated: bool = False


@dataclass(slots=True)
class _Stored:
    path: Path
    retrieved_at: float | None = None
    sha256: str = ""  # of the whole file, computed on the first chunk served


class TurnCapture:
    """See the module docstring. `heard`/`played` are fed by the recorder and speaker tees."""

    def __init__(
        self,
        config: PrivacyConfig,
        directory: str,
        *,
        in_rate_hz: int,
        out_rate_hz: int,
        notify: Notify | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.directory = Path(directory)
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._notify = notify
        self._clock = clock
        self.armed_turns = 0
        self._turn: _Turn | None = None
        self._played_base: int | None = None
        self._stored: dict[str, _Stored] = {}
        self._writes: set[asyncio.Future[None]] = set()
        self.sweep()

    # --- control (cmd/capture, reload) ------------------------------------------------

    def arm(self, turns: int) -> dict[str, object]:
        """Capture the next `turns` turns (0 = stop now); CommandError names the field."""
        if not self.config.allow_remote_capture:
            raise CommandError(
                "forbidden", "capture is disabled (privacy.allow_remote_capture = false)"
            )
        limit = self.config.capture_max_turns
        if not 0 <= turns <= limit:
            raise CommandError(
                "invalid", f"'turns' must be 0..{limit} (privacy.capture_max_turns), got {turns}"
            )
        self.sweep()
        self.armed_turns = turns
        if turns == 0:
            self._turn = None
        self._announce("requested over MQTT")
        return self.health()

    def reconfigure(self, config: PrivacyConfig, directory: str) -> None:
        """A reload: capture switched off deletes what waits and disarms at once."""
        self.config, self.directory = config, Path(directory)
        if not config.allow_remote_capture:
            was_on = self.armed_turns > 0 or bool(self._stored)
            self.armed_turns, self._turn = 0, None
            for name in list(self._stored):
                self._delete(name)
            if was_on:
                self._announce("privacy.allow_remote_capture turned off")

    @property
    def active(self) -> bool:
        return self.armed_turns > 0

    def health(self) -> dict[str, object]:
        """Always in `health`: whether the kiosk records, and what waits for retrieval."""
        self.sweep()
        return {
            "allowed": self.config.allow_remote_capture,
            "armed_turns": self.armed_turns,
            "recording": self._turn is not None,
            "stored_files": len(self._stored),
            "stored_bytes": self._stored_bytes(),
        }

    def _announce(self, why: str) -> None:
        state = f"ON for {self.armed_turns} more turn(s)" if self.active else "OFF"
        log.warning(
            "turn capture %s (%s)",
            state,
            why,
            extra=fields(stage="capture", capture_armed_turns=self.armed_turns),
        )
        if self._notify is not None:
            self._notify("capture", {"armed_turns": self.armed_turns, "reason": why})

    # --- feeds ------------------------------------------------------------------------

    def heard(self, pcm: bytes) -> None:
        """Audio STT received (the recorder tee)."""
        turn = self._turn
        if turn is not None and self._room(turn, len(pcm)):
            turn.heard += pcm

    def played(self, pcm: bytes, played_bytes: int) -> None:
        """Audio written to the speaker; `played_bytes` is the device's count before it."""
        turn = self._turn
        if turn is None:
            return
        if self._played_base is None:
            self._played_base = played_bytes
        if self._room(turn, len(pcm)):
            turn.played += pcm

    def playback_cut(self, played_bytes: int) -> None:
        """A cancel dropped the queue: keep only what had been played."""
        turn, base = self._turn, self._played_base
        if turn is not None and base is not None:
            keep = max(0, played_bytes - base)
            del turn.played[keep:]
            self._played_base = None

    def discard(self) -> None:
        """An utterance that became no turn (no words): not a captured turn."""
        self._turn, self._played_base = None, None

    def on_event(self, event: object) -> None:
        """Conversation.event_observer: starts a turn on speech, notes the timeline."""
        kind = type(event)
        if kind is VoicedAudio:
            return  # 50 per second: the audio itself is in the WAV
        if kind is SpeechStarted and self.active and self._turn is None:
            self._turn = _Turn(started_ms=getattr(event, "at_ms", now_ms()))
            self._played_base = None
        name = _EVENT_NAMES.get(kind)
        if name is not None:
            self._mark(name, getattr(event, "at_ms", now_ms()), _details(event))

    def on_report(self, kind: str, payload: object) -> None:
        """Reporting observer: state changes and the turn's end (its metrics)."""
        if self._turn is None:
            return
        if kind == "state" and isinstance(payload, AgentState):
            self._mark(f"state.{payload.value}", now_ms(), {})
        elif kind == "transcript" and isinstance(payload, tuple) and len(payload) == 2:
            self._mark(f"transcript.{payload[0]}", now_ms(), {"text": str(payload[1])[:2000]})
        elif kind.startswith("event/") and isinstance(payload, dict):
            self._mark(kind[len("event/") :], now_ms(), dict(payload))
        elif kind == "turn" and isinstance(payload, TurnMetrics):
            if payload.outcome is Outcome.SUPERSEDED:
                # The visitor went on: so does their turn; the reply dropped unheard is a
                # moment of it, and the capture ends with the record of the answer.
                details = {"turn_id": payload.turn_id, "llm_requests": payload.llm_requests}
                self._mark("reply.superseded", now_ms(), details)
            else:
                self._finish(payload)

    def _mark(self, name: str, at_ms: float, details: dict[str, object]) -> None:
        turn = self._turn
        if turn is None or len(turn.timeline) >= MAX_TIMELINE:
            return
        entry: dict[str, object] = {"t_ms": round(at_ms - turn.started_ms, 1), "what": name}
        entry.update(details)
        turn.timeline.append(entry)

    def _room(self, turn: _Turn, extra: int) -> bool:
        """The turn still fits the total cap; else it is marked truncated."""
        used = self._stored_bytes() + len(turn.heard) + len(turn.played)
        if used + extra > self.config.capture_max_bytes:
            turn.truncated = True
            return False
        return True

    # --- the end of a turn ------------------------------------------------------------

    def _finish(self, metrics: TurnMetrics) -> None:
        turn, self._turn, self._played_base = self._turn, None, None
        if turn is None:
            return
        self.armed_turns = max(0, self.armed_turns - 1)
        name = _safe_id(metrics.turn_id)
        played = resample(bytes(turn.played), self.out_rate_hz, self.in_rate_hz)
        gap = bytes(self.in_rate_hz * GAP_MS // 1000 * 2)
        heard_s = len(turn.heard) / 2 / self.in_rate_hz
        document = {
            "turn_id": metrics.turn_id,
            "captured_at_unix_s": round(self._clock(), 1),
            "wav": f"{name}.wav",
            "rate_hz": self.in_rate_hz,
            "segments": [
                {"what": "heard_by_stt", "start_s": 0.0, "duration_s": round(heard_s, 3)},
                {
                    "what": "played_by_agent",
                    "start_s": round(heard_s + GAP_MS / 1000, 3),
                    "duration_s": round(len(played) / 2 / self.in_rate_hz, 3),
                },
            ],
            "truncated": turn.truncated,
            "metrics": asdict(metrics),
            "timeline": turn.timeline,
        }
        wav = self.directory / f"{name}.wav"
        meta = self.directory / f"{name}.json"
        pcm = bytes(turn.heard) + gap + played
        self._stored[wav.name] = _Stored(wav)
        self._stored[meta.name] = _Stored(meta)
        future = asyncio.get_running_loop().run_in_executor(
            None, _write_turn, wav, meta, pcm, self.in_rate_hz, document
        )
        self._writes.add(future)
        future.add_done_callback(self._writes.discard)
        log.info("captured turn %s", metrics.turn_id,
                 extra=fields(stage="capture", turn_id=metrics.turn_id,
                              capture_armed_turns=self.armed_turns))  # fmt: skip
        if not self.active:
            self._announce(f"{name} was the last requested turn")

    async def flush(self) -> None:
        """Wait for pending file writes (tests, shutdown)."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    # --- retrieval ----------------------------------------------------------------------

    def listing(self) -> dict[str, object]:
        self._require_allowed()
        self.sweep()
        now = self._clock()
        files = []
        for name, stored in sorted(self._stored.items()):
            try:
                stat = stored.path.stat()
            except OSError:
                continue
            files.append({"file": name, "bytes": stat.st_size,
                          "age_s": round(now - stat.st_mtime, 1)})  # fmt: skip
        return {"files": files, **self.health()}

    def read_chunk(self, name: str, offset: int, length: int) -> dict[str, object]:
        """One chunk; the last one marks the file retrieved, `offset == size` deletes it."""
        self._require_allowed()
        self.sweep()
        stored = self._stored.get(name)
        if stored is None:
            raise CommandError("not_found", f"'file' {name!r} is not stored (fetched or expired)")
        try:
            size = stored.path.stat().st_size
            if offset < size and not stored.sha256:
                stored.sha256 = hashlib.sha256(stored.path.read_bytes()).hexdigest()
            with stored.path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read(length)
        except OSError as exc:
            raise CommandError("not_found", f"'file' {name!r}: {exc.strerror}") from None
        if offset > size:
            raise CommandError("invalid", f"'offset' {offset} is past the end of {name} ({size})")
        if offset == size:  # the client confirms it has everything
            self._delete(name)
            return {"file": name, "size": size, "offset": offset, "deleted": True}
        end = offset + len(chunk)
        if end == size:
            stored.retrieved_at = self._clock()
        return {
            "file": name,
            "size": size,
            "sha256": stored.sha256,
            "offset": offset,
            "data": base64.b64encode(chunk).decode("ascii"),
            "next_offset": end if end < size else None,
        }

    def _require_allowed(self) -> None:
        if not self.config.allow_remote_capture:
            raise CommandError(
                "forbidden", "capture is disabled (privacy.allow_remote_capture = false)"
            )

    # --- caps ---------------------------------------------------------------------------

    def sweep(self) -> None:
        """Delete what expired (capture_max_age_s) or was fetched over a minute ago."""
        now = self._clock()
        for name, stored in list(self._stored.items()):
            try:
                age = now - stored.path.stat().st_mtime
            except FileNotFoundError:
                if not self._pending(stored.path):
                    self._stored.pop(name, None)
                continue
            except OSError:
                continue
            retrieved = stored.retrieved_at
            if age > self.config.capture_max_age_s or (
                retrieved is not None and now - retrieved > RETRIEVED_GRACE_S
            ):
                self._delete(name)

    def _pending(self, path: Path) -> bool:
        return bool(self._writes) and not path.exists()

    def _delete(self, name: str) -> None:
        stored = self._stored.pop(name, None)
        if stored is not None:
            with contextlib.suppress(OSError):
                stored.path.unlink()

    def _stored_bytes(self) -> int:
        total = 0
        for stored in self._stored.values():
            try:
                total += stored.path.stat().st_size
            except OSError:
                continue
        return total


def _details(event: object) -> dict[str, object]:
    if isinstance(event, TranscriptPartial | TurnFinalized):
        return {"text": event.text[:2000]}
    if isinstance(event, SpeechEnded):
        return {"duration_ms": round(event.duration_ms, 1), "too_short": event.too_short}
    if isinstance(event, BargeInSuspected | BargeInDismissed | BargeIn | FalseBargeIn):
        return {"onset_ms": round(event.onset_ms, 1)}
    if isinstance(event, CancelReply):
        return {"source": event.source}
    return {}


def _safe_id(turn_id: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in turn_id)[:60]
    return cleaned or "turn"


def _write_turn(
    wav: Path, meta: Path, pcm: bytes, rate_hz: int, document: dict[str, object]
) -> None:
    try:
        os.makedirs(wav.parent, mode=0o700, exist_ok=True)
        with wave.open(str(wav), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate_hz)
            out.writeframes(pcm)
        meta.write_text(json.dumps(document, indent=1, default=str), encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write captured turn %s: %s", wav, exc)
