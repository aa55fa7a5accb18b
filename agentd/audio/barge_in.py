"""Echo-safe barge-in: visitor speech stops the reply, the agent's own echo does not.

Reference mode (no hardware AEC): the detector knows what was played (ReferenceTap),
estimates the speaker->mic delay by correlating energy envelopes, learns the echo path
gain from frames that look like pure echo, and predicts the echo energy of each mic
frame. A frame counts as *visitor* when the VAD says voiced AND its energy exceeds
predicted echo + noise by `echo_margin_db`. AEC mode trusts the VAD on an
echo-cancelled source. Decisions, in order:

  BargeInSuspected  `react_ms` of visitor frames: pause playback now (fast, < 100 ms)
  BargeIn           speech lasted `min_speech_ms`: cancel the reply, a new turn starts
  BargeInDismissed  it ended sooner (backchannel, cough): resume the paused reply
  FalseBargeIn      BargeIn, but no words (`note_words()`) within resume_after_false_s:
                    the orchestrator restarts/resumes the reply instead of silence
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from agentd.audio import dsp
from agentd.audio.reference import ReferenceTap
from agentd.config.sections_audio import BargeInConfig
from agentd.events import CONTROL, BargeIn

MAX_DELAY_MS = 300  # search window: 20-80 ms acoustic + device buffers on a Pi
DELAY_STEP_MS = 10  # ReferenceTap block length
CORR_FRAMES = 75  # 1.5 s of 20 ms frames per delay estimate
CORR_EVERY_FRAMES = 10  # re-estimate every 200 ms while the agent speaks
CORR_MIN = 0.4  # below this the envelope correlation is not trusted
CORR_MIN_FRAMES = 25  # first estimate after 0.5 s of reply, refined as history grows
GAIN_MIN_SAMPLES = 10  # 200 ms of echo-only frames before the prior is dropped
RATIO_HISTORY = 100  # frames of echo-only ratios kept for the gain estimate (2 s)
RATIO_PERCENTILE = 0.9  # echo gain = this percentile of mic/reference energy ratios
ARMED_AFTER_PLAY_MS = 500  # keep listening for barge-in this long after playback
GAP_FRAMES = 3  # non-visitor frames tolerated inside one visitor burst (syllable gaps)
PAUSED_GAP_FRAMES = 12  # once paused, word/comma gaps up to 240 ms keep the burst alive
NOISE_RISE = 1.002  # noise-floor tracker: slow rise per frame, instant fall


@dataclass(frozen=True, slots=True)
class BargeInSuspected:
    """Probable visitor speech over the reply: pause playback (do not cancel yet)."""

    at_ms: float
    onset_ms: float
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class BargeInDismissed:
    """The suspected barge-in was a backchannel/noise: resume the paused reply."""

    at_ms: float
    onset_ms: float
    priority: int = CONTROL


@dataclass(frozen=True, slots=True)
class FalseBargeIn:
    """A confirmed barge-in produced no words: restart or resume the reply."""

    at_ms: float
    onset_ms: float
    priority: int = CONTROL


BargeInEvent = BargeInSuspected | BargeIn | BargeInDismissed | FalseBargeIn


class BargeInDetector:
    """Per-frame barge-in decisions; pure apart from reading the ReferenceTap."""

    def __init__(
        self,
        config: BargeInConfig,
        tap: ReferenceTap,
        frame_ms: int = 20,
    ) -> None:
        self.config = config
        self.tap = tap
        self.frame_ms = frame_ms
        self._margin = 10.0 ** (config.echo_margin_db / 10.0)
        self._prior_gain = 10.0 ** (config.echo_prior_db / 10.0)
        self._react_frames = max(1, -(-config.react_ms // frame_ms))
        self._min_frames = max(1, -(-config.min_speech_ms // frame_ms))
        self._mic_hist: deque[tuple[float, float]] = deque(maxlen=CORR_FRAMES)
        self._ratios: deque[float] = deque(maxlen=RATIO_HISTORY)
        self._gain = self._prior_gain
        self._delay_ms: float | None = None  # None = not locked: use the whole window
        self._noise = 0.0
        self._since_corr = 0
        self._onset_ms: float | None = None
        self._hits = 0
        self._gap = 0
        self._suspected = False
        self._latched = False
        self._confirmed_at: float | None = None
        self._confirmed_onset = 0.0
        self.delay_ms_estimate: float | None = None
        self.stats = {"suspected": 0, "confirmed": 0, "dismissed": 0, "false": 0}

    @property
    def echo_gain_db(self) -> float:
        return 10.0 * math.log10(max(self._gain, 1e-12))

    def note_words(self) -> None:
        """STT heard words after the barge-in: it was real, no FalseBargeIn follows."""
        self._confirmed_at = None

    def reset(self) -> None:
        """Forget the current burst (e.g. reply finished or cancelled elsewhere)."""
        self._onset_ms = None
        self._hits = self._gap = 0
        self._suspected = False
        self._latched = False

    def process(self, frame: bytes, at_ms: float, voiced: bool) -> list[BargeInEvent]:
        """One mono mic frame captured at `at_ms` with the VAD's verdict."""
        if not self.config.enabled:
            return []
        energy = dsp.mean_square(frame)
        self._track_noise(energy)
        events: list[BargeInEvent] = []
        confirmed = self._confirmed_at
        if confirmed is not None and at_ms - confirmed >= self.config.resume_after_false_s * 1e3:
            self._confirmed_at = None
            self.stats["false"] += 1
            events.append(FalseBargeIn(at_ms, self._confirmed_onset))
        armed = at_ms - self.tap.last_played_ms() < ARMED_AFTER_PLAY_MS
        if not armed and self._onset_ms is None:
            self._mic_hist.clear()
            return events
        visitor = voiced and self._exceeds_echo(energy, at_ms)
        self._advance(visitor, at_ms, events)
        return events

    # --- echo model -------------------------------------------------------------------

    def _track_noise(self, energy: float) -> None:
        if self._noise == 0.0 or energy < self._noise:
            self._noise = energy
        else:
            self._noise *= NOISE_RISE

    def _exceeds_echo(self, energy: float, at_ms: float) -> bool:
        if self.config.mode == "aec":
            return bool(energy > self._noise * self._margin)
        self._mic_hist.append((at_ms, energy))
        self._since_corr += 1
        if self._since_corr >= CORR_EVERY_FRAMES and len(self._mic_hist) >= CORR_MIN_FRAMES:
            self._since_corr = 0
            self._estimate_delay()
        ref = self._reference_at(at_ms)
        predicted = self._gain * ref + self._noise
        visitor = bool(energy > predicted * self._margin)
        if ref > self._noise and not visitor and self._onset_ms is None:
            self._learn_gain(energy, ref)
        return visitor

    def _reference_at(self, at_ms: float) -> float:
        """Played energy that can be arriving in this frame (max over the delay range)."""
        if self._delay_ms is None:
            return self.tap.max_energy(at_ms - MAX_DELAY_MS, at_ms + self.frame_ms)
        # +-1 block for delay jitter, plus 30 ms of room reverberation tail.
        start = at_ms - self._delay_ms - DELAY_STEP_MS - 30
        return self.tap.max_energy(start, at_ms - self._delay_ms + self.frame_ms + DELAY_STEP_MS)

    def _learn_gain(self, energy: float, ref: float) -> None:
        self._ratios.append(max(energy - self._noise, 0.0) / ref)
        ordered = sorted(self._ratios)
        learned = ordered[int(RATIO_PERCENTILE * (len(ordered) - 1))]
        if len(ordered) < GAIN_MIN_SAMPLES:  # too little evidence: stay conservative
            learned = max(learned, self._prior_gain)
        self._gain = max(learned, 1e-6)

    def _estimate_delay(self) -> None:
        hist = list(self._mic_hist)
        t0 = hist[0][0]
        n10 = int((hist[-1][0] - t0 + self.frame_ms + MAX_DELAY_MS) // DELAY_STEP_MS) + 1
        ref10 = [_db(e) for e in self.tap.envelope(t0 - MAX_DELAY_MS, n10, DELAY_STEP_MS)]
        mic = [_db(e) for _, e in hist]
        best, best_delay = CORR_MIN, None
        per_frame = max(1, self.frame_ms // DELAY_STEP_MS)
        for delay in range(0, MAX_DELAY_MS + 1, DELAY_STEP_MS):
            ref = []
            for t, _ in hist:
                k = int((t - delay - (t0 - MAX_DELAY_MS)) // DELAY_STEP_MS)
                ref.append(max(ref10[k : k + per_frame] or [-120.0]))
            corr = _pearson(mic, ref)
            if corr > best:
                best, best_delay = corr, delay
        if best_delay is not None:
            self._delay_ms = float(best_delay)
            self.delay_ms_estimate = self._delay_ms

    # --- decision ---------------------------------------------------------------------

    def _advance(self, visitor: bool, at_ms: float, events: list[BargeInEvent]) -> None:
        if visitor:
            if self._onset_ms is None:
                self._onset_ms, self._hits = at_ms, 0
            self._hits += 1
            self._gap = 0
        elif self._onset_ms is not None:
            self._gap += 1
            if self._gap > (PAUSED_GAP_FRAMES if self._suspected else GAP_FRAMES):
                if self._suspected and not self._latched:
                    self.stats["dismissed"] += 1
                    events.append(BargeInDismissed(at_ms, self._onset_ms))
                self.reset()
                return
        if self._onset_ms is None or self._latched:
            return
        if not self._suspected and self._hits >= self._react_frames:
            self._suspected = True
            self.stats["suspected"] += 1
            events.append(BargeInSuspected(at_ms + self.frame_ms, self._onset_ms))
        if self._suspected and self._hits >= self._min_frames:
            onset = self._onset_ms
            self.stats["confirmed"] += 1
            events.append(BargeIn(at_ms + self.frame_ms, onset))
            self._confirmed_at, self._confirmed_onset = at_ms + self.frame_ms, onset
            self._latched = True  # same burst: no second BargeIn until it ends


def _db(energy: float) -> float:
    return dsp.energy_db(energy)


def _pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    if va <= 1e-9 or vb <= 1e-9:
        return 0.0
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    return cov / math.sqrt(va * vb)
