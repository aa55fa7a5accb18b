"""Turn detection and Turn messages of the AssemblyAI emulator, per model family.

The two families behave differently on the wire (AssemblyAI docs, "Universal-3 Pro
Streaming: partial transcripts and turn detection" and "Universal-Streaming"):

- U3 Pro (`u3-rt-pro`, `universal-3-5-pro`, `universal-3-6-pro`, ...): ONE early partial
  after `interruption_delay` (default 500 ms) + 250 ms of continuous speech (the docs'
  "750 ms"), then one partial per silence of `min_turn_silence` (default 100 ms) that
  does not end the turn. The turn ends at such a silence when the transcript ends in
  terminal punctuation, or after `max_turn_silence` (default 1000 ms) regardless. The
  end-of-turn Turn is sent once and is always formatted; `format_turns` and
  `end_of_turn_confidence_threshold` have no effect. Partial words are never final.
- Universal-Streaming (`universal-streaming-english` / `-multilingual`): partials as
  words arrive, an unformatted end-of-turn Turn (at `min_turn_silence` when the
  end-of-turn confidence reaches the threshold, else at `max_turn_silence`), then with
  `format_turns` a formatted copy; multilingual turns carry `language_code`.

Endpointing runs on *audio* time (webrtcvad + an energy floor), like the service: no
audio, no endpoint. Which words a partial shows is estimated from speech time.

What was said so far: a scenario line is said in segments with pauses between them
(agentd.sim.utterance); a silence of BOUNDARY_MS or more moves the transcript on to the
next segment. At a pause the text is the segments said so far - so at a pause inside a
sentence it ends without terminal punctuation, as the real model's does - and an end of
turn (ForceEndpoint, max_turn_silence) transcribes exactly that much; the rest of the
line is the next turn's. Plain transcripts (no scenario) are one breath each, as before.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from agentd.audio import dsp

# webrtcvad accepts 10/20/30 ms frames at 8/16/32/48 kHz. 10 ms divides every chunk a
# client sends (50 ms, or a zero-padded flush), so a chunk's last frame is judged when
# it arrives, not when the next chunk completes it.
FRAME_MS = 10
SPEECH_START_MS = 60  # voiced run that counts as speech (ignores clicks)
ENERGY_FLOOR_DB = -42.0  # below this a frame is silence, whatever the VAD says
MS_PER_WORD = 360  # espeak-ng at 165 wpm, for how far a partial has got
# A transcript counts as complete (for U3's punctuation rule) once the speech lasted at
# least this long per word: 300 wpm, faster than anyone talks to a kiosk.
MIN_MS_PER_WORD = 200
# U3 Pro: the early partial comes after interruption_delay + this much continuous speech
# (docs: "an early partial is emitted after 750ms of continuous speech", default 500).
U3_EARLY_PARTIAL_EXTRA_MS = 250
U3_DEFAULTS = {"min_turn_silence": 100, "max_turn_silence": 1000, "interruption_delay": 500}
# Universal-Streaming defaults (SDK docstrings / docs: threshold 0.4, 400 / 1280 ms).
UNIVERSAL_DEFAULTS = {"min_turn_silence": 400, "max_turn_silence": 1280}
# `universal-3-6` is in the SDK's SpeechModel (1.8.2) but no page of the docs describes it;
# by its name it is a Universal-3 release, so it is served as the U3 family here, as the
# daemon treats it (docs/cloud-contract.md marks the row docs-silent).
U3_MODELS = frozenset(
    {
        "u3-rt-pro",
        "u3-pro",
        "u3-rt-pro-beta-1",
        "universal-3-5-pro",
        "universal-3-6",
        "universal-3-6-pro",
    }
)
UNIVERSAL_MODELS = frozenset({"universal-streaming-english", "universal-streaming-multilingual"})
TERMINAL = (".", "?", "!")
# A silence this long inside speech is a pause between segments: the simulated visitor's
# scripted pauses are >= 200 ms (agentd.sim.utterance.MIN_PAUSE_MS) and espeak-ng's own
# gaps inside one breath stay under 140 ms (measured on its renders at 165 wpm).
BOUNDARY_MS = 200


def is_u3(model: str) -> bool:
    return model in U3_MODELS


@dataclass(frozen=True, slots=True)
class TurnParams:
    """The session's turn-detection parameters, defaults filled per family."""

    model: str
    min_silence_ms: int
    max_silence_ms: int
    interruption_delay_ms: int
    threshold: float
    format_turns: bool

    @classmethod
    def from_query(cls, query: dict[str, str]) -> TurnParams:
        model = query.get("speech_model", "u3-rt-pro")
        defaults = U3_DEFAULTS if is_u3(model) else UNIVERSAL_DEFAULTS
        min_s = int(query.get("min_turn_silence", defaults["min_turn_silence"]))
        max_s = int(query.get("max_turn_silence", defaults["max_turn_silence"]))
        return cls(
            model=model,
            min_silence_ms=min_s,
            max_silence_ms=max(max_s, min_s),
            interruption_delay_ms=int(query.get("interruption_delay", 500)),
            threshold=float(query.get("end_of_turn_confidence_threshold", 0.4)),
            format_turns=query.get("format_turns", "").lower() == "true",
        )


class Endpointer:
    """Server-side turn detection on audio time; `feed` returns (kind, detail) actions.

    Kinds: "speech_started" (detail: ms), "partial", "endpoint".
    """

    def __init__(
        self, rate_hz: int, params: TurnParams, *, confidence: float, partial_interval_ms: int
    ) -> None:
        self.rate_hz = rate_hz
        self.params = params
        self.u3 = is_u3(params.model)
        self.confident = confidence >= params.threshold
        self.partial_interval_ms = partial_interval_ms
        # The formatted text of the line in progress, as said: its segments (set by the
        # server); `seg` is the one being said, from `_seg_start_ms` on audio time.
        self.segments: list[str] = []
        self.segmented = False  # True: the line is said with pauses between segments
        self.seg = 0
        self._seg_start_ms = 0.0
        self.speaking = False
        self.speech_start_ms = 0.0
        self.audio_ms = 0.0
        self.audio_since_turn_ms = 0.0
        self.last_voiced_at_ms = 0.0  # audio time of the last voiced frame
        self.last_voiced_at = 0.0  # time.monotonic() when the last voiced frame arrived
        self._frame_bytes = rate_hz * FRAME_MS // 1000 * 2
        self._pending = bytearray()
        self._voiced_run_ms = 0.0
        self._silence_ms = 0.0
        self._since_partial_ms = 0.0
        self._continuous_ms = 0.0
        self._early_sent = False
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
            self.audio_ms += FRAME_MS
            self.audio_since_turn_ms += FRAME_MS
            out.extend(self._frame(self._voiced(frame)))
        return out

    def _frame(self, voiced: bool) -> list[tuple[str, Any]]:
        if not self.speaking:
            self._voiced_run_ms = self._voiced_run_ms + FRAME_MS if voiced else 0.0
            if self._voiced_run_ms < SPEECH_START_MS:
                return []
            self.speaking = True
            self.speech_start_ms = self.audio_ms - self._voiced_run_ms
            self.seg, self._seg_start_ms = 0, self.speech_start_ms
            self._silence_ms = self._since_partial_ms = 0.0
            self._continuous_ms = self._voiced_run_ms
            self._early_sent = False
            return [("speech_started", int(self.speech_start_ms))]
        if voiced:
            if self._silence_ms >= BOUNDARY_MS and self.seg < len(self.segments) - 1:
                self.seg += 1  # the visitor paused and went on: the next segment
                self._seg_start_ms = self.audio_ms - FRAME_MS
            self._silence_ms = 0.0
            self.last_voiced_at_ms = self.audio_ms
            self.last_voiced_at = time.monotonic()
        else:
            self._silence_ms += FRAME_MS
        return self._u3_frame(voiced) if self.u3 else self._universal_frame(voiced)

    def _u3_frame(self, voiced: bool) -> list[tuple[str, Any]]:
        p = self.params
        self._continuous_ms += FRAME_MS
        if self._silence_ms >= p.max_silence_ms:
            return self._endpoint()
        if self._silence_ms == p.min_silence_ms:  # a pause long enough to decide on
            self._continuous_ms = 0.0
            if self.complete() and self.heard(end=False)[0].rstrip().endswith(TERMINAL):
                return self._endpoint()
            return [("partial", None)]
        early_at = p.interruption_delay_ms + U3_EARLY_PARTIAL_EXTRA_MS
        if voiced and not self._early_sent and self._continuous_ms >= early_at:
            self._early_sent = True
            return [("partial", None)]
        return []

    def _universal_frame(self, voiced: bool) -> list[tuple[str, Any]]:
        p = self.params
        limit = p.min_silence_ms if self.confident else p.max_silence_ms
        if self._silence_ms >= limit:
            return self._endpoint()
        self._since_partial_ms += FRAME_MS
        if voiced and self._since_partial_ms >= self.partial_interval_ms:
            self._since_partial_ms = 0.0
            return [("partial", None)]
        return []

    def _endpoint(self) -> list[tuple[str, Any]]:
        self.reset()
        return [("endpoint", None)]

    def _voiced(self, frame: bytes) -> bool:
        # C-speed energy: this runs in the daemon's process during benchmarks, and a
        # pure-Python loop here would show up as GIL contention in the daemon's figures.
        mean_sq = dsp.mean_square(frame)
        if 10 * math.log10(mean_sq / 32768.0**2 + 1e-12) < ENERGY_FLOOR_DB:
            return False
        return self._vad is None or bool(self._vad.is_speech(frame, self.rate_hz))

    @property
    def text(self) -> str:
        """The whole rest of the line (what an end of turn said in one breath shows)."""
        return " ".join(self.segments)

    @text.setter
    def text(self, value: str) -> None:
        self.segments = [value] if value else []

    def complete(self) -> bool:
        """The segment being said is long enough to hold all its words."""
        if not self.segments:
            return True
        words = len(self.segments[min(self.seg, len(self.segments) - 1)].split())
        return self.last_voiced_at_ms - self._seg_start_ms >= words * MIN_MS_PER_WORD

    def heard(self, *, end: bool) -> tuple[str, list[str]]:
        """(text said so far, segments still to say) for a partial or an end of turn.

        Segments before the current one are whole. The current one is whole once its
        speech is long enough (`complete`) or, for an end of turn, once the visitor has
        paused after it; before that a partial shows the words its speech time can hold
        (never all of them), and an end of turn mid-segment cuts it there (at least one
        word: speech is never transcribed as nothing).
        """
        if not self.segments:
            return "", []
        seg = min(self.seg, len(self.segments) - 1)
        done, current = self.segments[:seg], self.segments[seg].split()
        # At an end of turn after a pause between segments the segment was said whole,
        # however fast: a real STT transcribes all the audio it was sent.
        paused = self.audio_ms - self.last_voiced_at_ms >= BOUNDARY_MS
        if self.complete() or (end and (not self.segmented or paused)):
            count = len(current)
        else:
            count = int((self.audio_ms - self._seg_start_ms) / MS_PER_WORD) + 1
            count = max(1, min(len(current), count)) if end else min(len(current) - 1, count)
        rest = [" ".join(current[count:])] if count < len(current) else []
        shown = " ".join([*done, " ".join(current[:count])]).strip()
        return shown, rest + self.segments[seg + 1 :]

    def reset(self) -> None:
        self.speaking = False
        self._voiced_run_ms = self._silence_ms = self._continuous_ms = 0.0
        self.audio_since_turn_ms = 0.0


def plain(text: str) -> str:
    """The unformatted transcript Universal-Streaming sends before formatting."""
    return "".join(c for c in text.lower() if c.isalnum() or c in " '")


def turn_message(
    order: int,
    ep: Endpointer,
    text: str,
    *,
    end: bool,
    formatted: bool,
    confidence: float,
) -> dict[str, Any]:
    """One `Turn` (assemblyai/streaming/v3/models.py TurnEvent) showing `text` (so far)."""
    shown = (text if formatted else plain(text)).split()
    u3 = ep.u3
    word_list = [
        {
            "start": int(ep.speech_start_ms + i * MS_PER_WORD),
            "end": int(ep.speech_start_ms + (i + 1) * MS_PER_WORD),
            "confidence": 0.95,
            "text": w,
            # U3: partial words are never final, end-of-turn words all are (docs);
            # Universal: every word but the last of a partial is final.
            "word_is_final": end or (not u3 and i < len(shown) - 1),
        }
        for i, w in enumerate(shown)
    ]
    message: dict[str, Any] = {
        "type": "Turn",
        "turn_order": order,
        "turn_is_formatted": formatted and end,
        "end_of_turn": end,
        "transcript": " ".join(shown),
        "end_of_turn_confidence": confidence if end else 0.05,
        "words": word_list,
    }
    if ep.params.model == "universal-streaming-multilingual" and end:
        message["language_code"] = "en"
        message["language_confidence"] = 0.98
    return message


MAX_KEYTERMS = 100  # docs: more than 100 terms is an error for the whole session
MAX_KEYTERM_CHARS = 50  # docs: longer terms are ignored
