"""The engagement policy: whom the kiosk is talking to, and when that conversation ends.

States: WAITING (nobody engaged: speech opens a turn only in `open` mode) and ENGAGED
(a conversation is on: near-field speech opens turns). What engages depends on the
modes (`[engagement] modes`, combinable): `open` - near-field speech itself; `wake_word`
- the wake word (mid-utterance: the rest of that utterance is the turn); `presence` -
someone arriving in front of the sensor (with an optional greeting); `button` - the
talk button (which always works).

A conversation ends when its window closes (`follow_up_s` after the last reply once a
wake word or the button engaged; `idle_end_s` for speech or presence), after a
goodbye-style turn has been answered, when the visitor has left for `leave_after_s`,
or when `max_turns` / `max_conversation_s` is reached (answered with `limit_line`).
Ending wipes the history, closes the STT session and resets per-conversation tool
cooldowns (the conversation does that in `_end_conversation`).

Every chunk passes `front_end`: the near-field gate filters the VAD gate's events, the
wake word listens, and the timers run on the audio's own clock (so a bench drives it on
a virtual clock). Loop thread only.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from agentd.audio import dsp
from agentd.audio.beam import FixedBeam, metres, superdirective_weights
from agentd.audio.format import AudioChunk
from agentd.audio.near_field import NearFieldGate
from agentd.audio.wake_emphasis import WakeEmphasis
from agentd.audio.wake_word import WakeWordDetector
from agentd.config.sections_audio import CaptureConfig
from agentd.config.sections_engagement import EngagementConfig
from agentd.events import SpeechEnded, SpeechStarted, VoicedAudio
from agentd.logs import fields

log = logging.getLogger("agentd.engagement")

GateEvent = SpeechStarted | VoicedAudio | SpeechEnded
WAKE_LEVEL_WINDOW_MS = 1500  # "okay nabu" lasts ~0.8-1.2 s: its loudest frame is in here


class EngagementState(Enum):
    WAITING = "waiting"
    ENGAGED = "engaged"


class EngagementReporter(Protocol):
    """Where engagement facts go (implemented by `agentd.service.reporting.Reporting`)."""

    def engagement_changed(self, state: EngagementState, reason: str) -> None: ...

    def event(self, name: str, payload: dict[str, object]) -> None: ...


@dataclass(slots=True)
class EngagementStats:
    engagements: int = 0
    wake_words: int = 0
    wake_words_far: int = 0  # detections too quiet to be at the kiosk (ignored)
    near_field_rejected: int = 0
    phantom_suspected: int = 0
    limits_reached: int = 0


class Engagement:
    """See the module docstring."""

    def __init__(
        self,
        config: EngagementConfig,
        reporter: EngagementReporter,
        *,
        near_field: NearFieldGate | None = None,
        wake_word: WakeWordDetector | None = None,
        wake_beam: FixedBeam | None = None,
    ) -> None:
        self.config = config
        self._reporter = reporter
        self.near_field = near_field
        self.wake_word = wake_word
        # With a mic array: the detector hears the front beam of the mics
        # (agentd.audio.beam); the gates keep hearing the capture's mono signal.
        self.wake_beam = wake_beam
        # The detector hears the kiosk's distance (agentd.audio.wake_emphasis).
        self._emphasis: WakeEmphasis | None = None
        if (
            wake_word is not None
            and near_field is not None
            and near_field.config.enabled
            and config.wake_word.near_field_emphasis
        ):
            self._emphasis = WakeEmphasis(near_field.format.rate_hz)
        self.modes = frozenset(config.modes)
        self.state = EngagementState.WAITING
        self.reason = ""
        self.stats = EngagementStats()
        self._goodbyes = tuple(_normalise(g) for g in config.goodbyes)
        self._passing = False  # the current utterance reaches the conversation
        self._start_on_voice_after: float | None = None  # the wake word's end, mid-utterance
        self.last_wake_ms: float | None = None
        self._gate_open = False
        self._levels: deque[tuple[float, float]] = deque()
        self._since_ms = 0.0
        self._turns = 0
        self._deadline_ms: float | None = None
        self._leave_at_ms: float | None = None
        self._end_after_reply = ""  # "goodbye" / "limit": end once the reply has played
        self.present = False
        self.on_end: Callable[[str], None] = lambda _reason: None
        self.on_greet: Callable[[str], None] = lambda _text: None

    @property
    def engaged(self) -> bool:
        return self.state is EngagementState.ENGAGED

    # --- the audio path (every chunk) -----------------------------------------------

    def front_end(
        self, chunk: AudioChunk, events: Sequence[GateEvent], idle: bool
    ) -> list[GateEvent]:
        """The gate events that may reach the conversation; runs the wake word and timers."""
        at = chunk.at_ms
        near = self.near_field
        for raw in events:
            if isinstance(raw, SpeechStarted):
                self._gate_open = True
            elif isinstance(raw, SpeechEnded):
                self._gate_open = False
        if near is not None:
            near.observe(chunk.pcm, chunk.array)
            rejected = len(near.rejections)
            events = near.filter(events, at)
            if len(near.rejections) > rejected:
                self._rejected(near)
        self._track_level(chunk)
        out: list[GateEvent] = []
        if self.wake_word is not None:
            pcm, heard_at = chunk.pcm, at
            beam = self.wake_beam
            # A chunk without its mics (none from this capture) is heard as captured.
            if beam is not None and chunk.array is not None:
                pcm = beam.process(chunk.array.pcm)
                heard_at = at - beam.latency_ms  # the beam's output lags its input
            if self._emphasis is not None and near is not None:
                pcm = self._emphasis.process(pcm, near.threshold_dbfs())
            detection = self.wake_word.process(pcm, heard_at)
            if detection is not None:
                self._on_wake_word(detection.at_ms, detection.probability, out)
        for event in events:
            self._admit(event, at, out)
        if idle:
            self._tick(at)
        return out

    def gate_reset(self) -> None:
        """The VAD gate forgot its utterance without a SpeechEnded (the agent's own
        voice): so do the near-field gate and the wake word's "utterance open" flag."""
        self._gate_open = False
        if self.near_field is not None:
            self.near_field.reset()

    def _admit(self, event: GateEvent, at: float, out: list[GateEvent]) -> None:
        if isinstance(event, SpeechStarted):
            if not self.engaged and "open" in self.modes:
                self._engage("speech", at)
            self._passing = self.engaged
            if self._passing:
                self._deadline_ms = None  # someone is talking: no window closes now
                out.append(event)
        elif self._passing:
            out.append(event)
            if isinstance(event, SpeechEnded):
                self._passing = False
        elif isinstance(event, SpeechEnded):
            self._start_on_voice_after = None
        else:
            after = self._start_on_voice_after
            if after is not None and event.voiced and event.chunk.at_ms >= after:
                self._start_on_voice_after = None
                self._passing = True
                out.append(SpeechStarted(event.chunk.at_ms, b""))
                out.append(event)

    def _track_level(self, chunk: AudioChunk) -> None:
        levels = self._levels
        levels.append((chunk.at_ms, dsp.mean_square(chunk.pcm)))
        while levels and levels[0][0] < chunk.at_ms - WAKE_LEVEL_WINDOW_MS:
            levels.popleft()

    def _on_wake_word(self, at: float, probability: float, out: list[GateEvent]) -> None:
        near = self.near_field
        if near is not None and near.config.enabled:
            level = dsp.energy_db(max(e for _, e in self._levels))
            agree, coherence = near.agrees(at - WAKE_LEVEL_WINDOW_MS)
            if level < near.threshold_dbfs() or not agree:
                self.stats.wake_words_far += 1
                log.info(
                    "wake word too far away (%.1f dBFS, coherence %s), ignored",
                    level,
                    "-" if coherence is None else f"{coherence:.2f}",
                    extra=fields(stage="engagement"),
                )
                return
        self.stats.wake_words += 1
        log.info("wake word", extra=fields(stage="engagement"))
        self._reporter.event("wake_word", {"probability": probability, "at_ms": round(at)})
        if not self.engaged:
            self._engage("wake_word", at)
        self._deadline_ms = None
        self.last_wake_ms = at
        if self._gate_open and not self._passing and (near is None or near.admits_open_utterance):
            # The visitor may go straight on ("okay nabu, when are you open?"): the turn
            # starts at the next voiced frame of this utterance (none: the gate closes,
            # and the next utterance is the turn).
            self._start_on_voice_after = at

    def _rejected(self, near: NearFieldGate) -> None:
        rejection = near.rejections[-1]
        self.stats.near_field_rejected += 1
        log.debug(
            "far-field speech ignored (%s: %.1f dBFS, floor %.1f, coherence %s)",
            rejection.reason,
            rejection.level_dbfs,
            rejection.floor_dbfs,
            "-" if rejection.coherence is None else f"{rejection.coherence:.2f}",
            extra=fields(stage="engagement"),
        )
        payload: dict[str, object] = {
            "reason": rejection.reason,
            "level_dbfs": rejection.level_dbfs,
            "floor_dbfs": rejection.floor_dbfs,
        }
        if rejection.coherence is not None:
            payload["coherence"] = rejection.coherence
        self._reporter.event("near_field_rejected", payload)

    def _tick(self, at: float) -> None:
        if not self.engaged:
            return
        if self._leave_at_ms is not None and at >= self._leave_at_ms:
            self.end("left", at)
        elif self._deadline_ms is None:  # idle again (a cancelled reply, an empty turn)
            self._deadline_ms = at + self._window_s() * 1000
        elif self._deadline_ms is not None and at >= self._deadline_ms:
            self.end("window_closed" if self.reason in ("wake_word", "button") else "idle", at)

    # --- conversation facts -----------------------------------------------------------

    def on_button(self, at: float) -> None:
        """The talk button: always engages."""
        if not self.engaged:
            self._engage("button", at)
        self._deadline_ms = None

    def on_presence(self, present: bool, at: float) -> None:
        self.present = present
        if present:
            self._leave_at_ms = None
            if not self.engaged and "presence" in self.modes:
                self._engage("presence", at)
                if self.config.presence.greeting:
                    self.on_greet(self.config.presence.greeting)
        elif self.engaged and "presence" in self.modes:
            self._leave_at_ms = at + self.config.presence.leave_after_s * 1000

    def on_turn(self, text: str, at: float) -> str:
        """A visitor turn with words: "" to answer it, "limit" if the limits refuse it."""
        if not self.engaged:
            self._engage("turn", at)  # e.g. a barge-in turn on an MQTT announcement
        self._turns += 1
        too_long = at - self._since_ms > self.config.max_conversation_s * 1000
        if self._turns > self.config.max_turns or too_long:
            self.stats.limits_reached += 1
            which = "max_turns" if self._turns > self.config.max_turns else "max_conversation_s"
            log.warning("conversation limit reached: %s", which, extra=fields(stage="engagement"))
            self._reporter.event("limit_reached", {"limit": which})
            self._end_after_reply = "limit"
            return "limit"
        normalised = _normalise(text)
        if any(normalised.endswith(g) for g in self._goodbyes):
            self._end_after_reply = "goodbye"
        return ""

    def on_empty_turn(self) -> None:
        """An admitted turn in which STT heard no words: likely not a visitor."""
        self.stats.phantom_suspected += 1
        self._reporter.event("phantom_suspected", {"reason": "no_words"})

    def reply_finished(self, at: float) -> None:
        """The agent is done talking: end now if asked to, else the window starts."""
        if self._end_after_reply:
            self.end(self._end_after_reply, at)
            return
        if self.engaged:
            self._deadline_ms = at + self._window_s() * 1000

    def _window_s(self) -> float:
        """How long an idle conversation stays open: a follow-up window after a wake
        word or a press, the idle time after open speech or presence."""
        if self.reason in ("wake_word", "button"):
            return self.config.follow_up_s
        return self.config.idle_end_s

    def end(self, reason: str, at: float) -> None:
        """End the conversation (no-op when none is on)."""
        self._end_after_reply = ""
        if not self.engaged:
            return
        self.state = EngagementState.WAITING
        self._deadline_ms = self._leave_at_ms = None
        self._passing = False
        log.info(
            "conversation ended: %s after %.0f s",
            reason,
            (at - self._since_ms) / 1000,
            extra=fields(stage="engagement"),
        )
        self._reporter.engagement_changed(self.state, reason)
        self.on_end(reason)

    def _engage(self, reason: str, at: float) -> None:
        self.state, self.reason = EngagementState.ENGAGED, reason
        self._since_ms, self._turns = at, 0
        self._deadline_ms = at + self._window_s() * 1000
        self.stats.engagements += 1
        log.info("engaged by %s", reason, extra=fields(stage="engagement"))
        self._reporter.engagement_changed(self.state, reason)

    def snapshot(self) -> dict[str, object]:
        """For `health`: state and counters."""
        stats = self.stats
        return {
            "state": self.state.value,
            "reason": self.reason,
            "present": self.present,
            "engagements": stats.engagements,
            "wake_words": stats.wake_words,
            "near_field_rejected": stats.near_field_rejected,
            "phantom_suspected": stats.phantom_suspected,
            "limits_reached": stats.limits_reached,
        }


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def engagement_from_config(
    config: EngagementConfig,
    reporter: EngagementReporter,
    rate_hz: int,
    capture: CaptureConfig | None = None,
) -> Engagement:
    """The policy with its detectors; ConfigError (exit 78) for a bad wake-word model.
    With `capture` an array of known geometry and `wake_word.input = "beam"`, the
    detector hears the front beam (agentd.audio.beam)."""
    from agentd.audio.format import AudioFormat

    wake_word = None
    wake_beam = None
    if "wake_word" in config.modes:
        wake_word = WakeWordDetector(config.wake_word, rate_hz)
        wake_beam = wake_beam_for(config, capture, rate_hz)
    near_field = NearFieldGate(config.near_field, AudioFormat(rate_hz))
    return Engagement(
        config, reporter, near_field=near_field, wake_word=wake_word, wake_beam=wake_beam
    )


def wake_beam_for(
    config: EngagementConfig, capture: CaptureConfig | None, rate_hz: int
) -> FixedBeam | None:
    """The wake word's front beam, or None when the detector hears the mono capture."""
    positions = capture.mic_positions_mm() if capture is not None else ()
    if config.wake_word.input != "beam" or capture is None or not positions:
        log.info(
            "wake word hears the capture's mono signal",
            extra=fields(stage="engagement"),
        )
        return None
    weights = superdirective_weights(metres(positions), rate_hz, capture.array_front_deg)
    log.info(
        "wake word hears a front beam of %d mics toward %g deg (%s)",
        len(positions),
        capture.array_front_deg,
        capture.array_geometry,
        extra=fields(stage="engagement"),
    )
    return FixedBeam(weights, rate_hz)
