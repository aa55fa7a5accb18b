"""Echo-safe barge-in: visitor speech stops the reply, the agent's own echo does not.

Reference mode (no hardware AEC): the detector knows what was played (ReferenceTap),
estimates the speaker->mic delay by correlating energy envelopes, learns the echo path
gain from frames that look like pure echo, and predicts the echo energy of each mic
frame. A frame counts as *visitor* when the VAD says voiced AND its energy exceeds
predicted echo + noise by `echo_margin_db`. Once the delay is locked, an adaptive echo
filter (echo_filter.py, `echo_filter` on) learns the echo path from the played samples;
when it has converged (ERLE >= 6 dB, ~1-2 s of reply) the same margins are applied to
the echo-cancelled residual instead, which hears weak fricative onsets that sit under
the echo's energy. AEC mode trusts the VAD on an echo-cancelled source. Decisions:

  BargeInSuspected  `react_ms` of visitor frames: pause playback now (fast, < 100 ms)
  BargeIn           speech lasted `min_speech_ms`: cancel the reply, a new turn starts
  BargeInDismissed  it ended sooner (backchannel, cough): resume the paused reply
  FalseBargeIn      BargeIn, but no words (`note_words()`) within resume_after_false_s:
                    the orchestrator restarts/resumes the reply instead of silence
"""

from __future__ import annotations

import math
from collections import deque

from agentd.audio import dsp
from agentd.audio.echo_filter import EchoCanceller, EchoFrame, EchoJudge
from agentd.audio.format import AudioChunk
from agentd.audio.reference import ReferenceTap
from agentd.config.sections_audio import BargeInConfig
from agentd.events import (
    BargeIn,
    BargeInDismissed,
    BargeInEvent,
    BargeInSuspected,
    FalseBargeIn,
)

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
DELAY_SWITCH_CORR = 0.05  # a locked delay moves only for a clearly better correlation
ENVELOPE_FLOOR_DB = -75.0  # below any room's noise floor at a Pi mic's gain
REVERB_TAIL_MS = 150  # older reply audio is > 20 dB down even at RT60 0.45 s
NOISE_RISE = 1.002  # noise-floor tracker: slow rise per frame, instant fall
AEC_DELAY_SWITCH_CORR = 0.15  # ...and by much more once the echo filter has converged
AEC_PRE_MS = 40  # the echo filter starts this long before the estimated delay (jitter)
AEC_PARTITIONS_MS = 160  # filter length: delay error +-40 ms + the room's first 120 ms
# Echo mistaken for the visitor this often within the window, with a converged filter:
# the echo path moved under it (see _false_alarm).
FALSE_ALARMS_TO_RELEARN = 3
FALSE_ALARM_WINDOW_MS = 15_000.0


class _Band:
    """Echo model of one band: noise floor and the echo gain learned from echo-only frames."""

    def __init__(self, prior_gain: float) -> None:
        self.prior = prior_gain
        self.gain = prior_gain
        self.noise = 0.0
        self.ratios: deque[float] = deque(maxlen=RATIO_HISTORY)
        self.pending: list[float] = []  # ratios of the current burst, not yet judged

    def track_noise(self, energy: float) -> None:
        if self.noise == 0.0 or energy < self.noise:
            self.noise = energy
        else:
            self.noise *= NOISE_RISE

    def learn(self, ratio: float, aligned: bool) -> None:
        self.ratios.append(ratio)
        ordered = sorted(self.ratios)
        learned = ordered[int(RATIO_PERCENTILE * (len(ordered) - 1))]
        if len(ordered) < GAIN_MIN_SAMPLES or not aligned:
            # Too little evidence, or the echo path is not aligned yet (the window-max
            # reference of an unaligned echo makes ratios too low): stay conservative.
            learned = max(learned, self.prior)
        self.gain = max(learned, 1e-6)


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
        self._fast_margin = 10.0 ** (config.fast_margin_db / 10.0)
        prior = 10.0 ** (config.echo_prior_db / 10.0)
        self._bands = tuple(_Band(prior) for _ in range(dsp.BANDS))
        self._decay_db_per_ms = 60.0 / config.reverb_rt60_ms  # RT60: 60 dB decay
        self._react_frames = max(1, -(-config.react_ms // frame_ms))
        self._min_frames = max(1, -(-config.min_speech_ms // frame_ms))
        self._mic_hist: deque[tuple[float, float]] = deque(maxlen=CORR_FRAMES)
        self._delay_ms: float | None = None  # None = not locked: use the whole window
        self._since_corr = 0
        self._samples: list[float | None] = [None] * dsp.BANDS  # this frame's echo ratios
        self._onset_ms: float | None = None
        self._hits = 0
        self._voiced_hits = 0
        self._gap = 0
        self._suspected = False
        self._latched = False
        self._confirmed_at: float | None = None
        self._confirmed_onset = 0.0
        self.delay_ms_estimate: float | None = None
        self._aec: EchoCanceller | None = None  # built once the delay is locked
        self._judge = EchoJudge()
        self._aec_pending: list[EchoFrame] = []
        self._false_alarms: deque[float] = deque()
        self.stats = {"suspected": 0, "confirmed": 0, "dismissed": 0, "false": 0, "relearned": 0}

    @property
    def echo_gain_db(self) -> float:
        return 10.0 * math.log10(max(self._bands[0].gain, 1e-12))

    def note_words(self) -> None:
        """STT heard words after the barge-in: it was real, no FalseBargeIn follows."""
        self._confirmed_at = None

    def attach(self, tap: ReferenceTap) -> None:
        """Listen against another speaker's reference; what was learned is kept."""
        self.tap = tap
        self._mic_hist.clear()
        if self._aec is not None:
            self._aec.forget_reference()
        self.reset()

    def reset(self) -> None:
        """Forget the current burst (e.g. reply finished or cancelled elsewhere)."""
        self._onset_ms = None
        for band in self._bands:
            band.pending.clear()
        self._hits = self._voiced_hits = self._gap = 0
        self._suspected = False
        self._latched = False
        self._aec_pending.clear()

    def process(self, chunk: AudioChunk, voiced: bool) -> list[BargeInEvent]:
        """One mono mic chunk with the VAD's verdict on it."""
        if not self.config.enabled:
            return []
        frame, at_ms = chunk.pcm, chunk.at_ms
        energies = dsp.band_energies(frame)
        for band, energy in zip(self._bands, energies, strict=True):
            band.track_noise(energy)
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
        excess = self._excess(energies, at_ms)
        echo = self._cancel(frame, at_ms)
        if echo is not None:
            self._judge.track(echo)
            if self._judge.ready:  # the residual replaces the energy-only prediction
                excess = self._judge.excess(echo)
        self._advance(voiced and excess > self._margin, excess > self._fast_margin, at_ms, events)
        if echo is not None and self._aec is not None:
            if self._onset_ms is None:  # echo only: the filter and the judge learn
                if not self._judge.double_talk(echo):
                    self._aec.adapt()
                self._judge.learn(echo)
            else:
                self._aec_pending.append(echo)
        if self._onset_ms is None:  # not part of a burst: echo evidence
            for band, ratio in zip(self._bands, self._samples, strict=True):
                if ratio is not None:
                    band.learn(ratio, self._delay_ms is not None)
            self._mic_hist.append((at_ms, energies[0]))
            self._since_corr += 1
        else:
            for band, ratio in zip(self._bands, self._samples, strict=True):
                if ratio is not None:
                    band.pending.append(ratio)
        if self._since_corr >= CORR_EVERY_FRAMES and len(self._mic_hist) >= CORR_MIN_FRAMES:
            self._since_corr = 0
            self._estimate_delay()
        return events

    # --- echo model -------------------------------------------------------------------

    def _excess(self, energies: tuple[float, ...], at_ms: float) -> float:
        """How far the mic exceeds the predicted echo + noise (power ratio, best band)."""
        self._samples = [None] * dsp.BANDS
        if self.config.mode == "aec":
            noise = self._bands[0].noise
            return energies[0] / noise if noise > 0 else 0.0
        refs = self._reference_at(at_ms)
        excess = 0.0
        for i, (band, energy, ref) in enumerate(zip(self._bands, energies, refs, strict=True)):
            predicted = band.gain * ref + band.noise
            if predicted > 0:
                excess = max(excess, energy / predicted)
            if ref > band.noise:
                self._samples[i] = max(energy - band.noise, 0.0) / ref
        return excess

    def _cancel(self, frame: bytes, at_ms: float) -> EchoFrame | None:
        """Run the adaptive echo filter on this frame (None until the delay is locked)."""
        if self.config.mode == "aec" or not self.config.echo_filter or self._delay_ms is None:
            return None
        samples = len(frame) // dsp.WIDTH
        if self.tap.format.rate_hz * self.frame_ms != samples * 1000:
            return None  # playback at another rate than capture: energy model only
        if self._aec is None:
            parts = max(1, -(-AEC_PARTITIONS_MS // self.frame_ms))
            self._aec = EchoCanceller(samples, parts, self.tap.format.rate_hz)
        start = at_ms - max(0.0, self._delay_ms - AEC_PRE_MS)
        resets = self._aec.resets
        echo = self._aec.process(frame, self.tap.samples(start, samples))
        if self._aec.resets != resets:  # diverged: what the judge learned is stale
            self._judge.reset()
        return echo

    def _reference_at(self, at_ms: float) -> tuple[float, ...]:
        """Played energies per band that can be arriving in this frame."""
        if self._delay_ms is None:  # not locked: anything in the search window
            return self.tap.max_energies(at_ms - MAX_DELAY_MS, at_ms + self.frame_ms)
        # Direct path +-1 block of delay jitter at full weight; older audio as the room's
        # reverberation tail, decaying at the configured RT60.
        start = at_ms - self._delay_ms - DELAY_STEP_MS
        end = at_ms - self._delay_ms + self.frame_ms + DELAY_STEP_MS
        return self.tap.max_energies(start, end, REVERB_TAIL_MS, self._decay_db_per_ms)

    def _estimate_delay(self) -> None:
        hist = list(self._mic_hist)
        t0 = hist[0][0]
        n10 = int((hist[-1][0] - t0 + self.frame_ms + MAX_DELAY_MS) // DELAY_STEP_MS) + 1
        ref10 = [_db(e) for e in self.tap.envelope(t0 - MAX_DELAY_MS, n10, DELAY_STEP_MS)]
        mic = [_db(e) for _, e in hist]
        best, best_delay, current = CORR_MIN, None, -1.0
        per_frame = max(1, self.frame_ms // DELAY_STEP_MS)
        for delay in range(0, MAX_DELAY_MS + 1, DELAY_STEP_MS):
            ref = []
            for t, _ in hist:
                k = int((t - delay - (t0 - MAX_DELAY_MS)) // DELAY_STEP_MS)
                ref.append(max(ref10[k : k + per_frame] or [-120.0]))
            corr = _pearson(mic, ref)
            if corr > best:
                best, best_delay = corr, delay
            if delay == self._delay_ms:
                current = corr
        switch = DELAY_SWITCH_CORR
        if self._judge.ready:  # a converged filter is worth more than a short estimate
            if len(hist) < CORR_FRAMES:
                return
            switch = AEC_DELAY_SWITCH_CORR
        if best_delay is not None and best > current + switch:
            if self._delay_ms is None:  # ratios so far were against the unaligned window
                for band in self._bands:
                    band.ratios.clear()
            self._delay_ms = float(best_delay)
            self.delay_ms_estimate = self._delay_ms
            if self._aec is not None:  # the filter's taps no longer line up
                self._aec.reset()
                self._judge.reset()

    def _false_alarm(self, at_ms: float) -> None:
        """A suspected barge-in was dismissed: most likely echo (or a short backchannel).

        Repeated with a converged filter and no real barge-in in between (a confirmed one
        clears the count), the echo path has moved under it (e.g. the
        speaker's buffering changed and the echo now arrives earlier than the filter's
        window): its tight leak keeps calling the misfit "visitor", the pauses starve the
        delay estimate of echo-only frames, and nothing would ever relearn. Start over:
        unlock the delay and reset the filter and the judge; the conservative energy
        model decides until the delay re-locks and the filter converges again.
        """
        alarms = self._false_alarms
        if alarms and at_ms < alarms[-1]:
            alarms.clear()  # another clock (a new simulated room): start counting again
        alarms.append(at_ms)
        while alarms and alarms[0] < at_ms - FALSE_ALARM_WINDOW_MS:
            alarms.popleft()
        if len(alarms) < FALSE_ALARMS_TO_RELEARN or not self._judge.ready:
            return
        alarms.clear()
        self.stats["relearned"] += 1
        self._delay_ms = self.delay_ms_estimate = None
        self._since_corr = 0
        for band in self._bands:
            band.ratios.clear()  # measured against the old alignment
        if self._aec is not None:
            self._aec.reset()
        self._judge.reset()

    # --- decision ---------------------------------------------------------------------

    def _advance(
        self, visitor: bool, strong: bool, at_ms: float, events: list[BargeInEvent]
    ) -> None:
        """`visitor`: voiced and above the echo; `strong`: far above it, voiced or not."""
        if visitor or strong:
            if self._onset_ms is None:
                self._onset_ms, self._hits, self._voiced_hits = at_ms, 0, 0
            self._hits += 1
            self._voiced_hits += visitor
            self._gap = 0
        elif self._onset_ms is not None:
            self._gap += 1
            if self._gap > (PAUSED_GAP_FRAMES if self._suspected else GAP_FRAMES):
                if self._suspected and not self._latched:
                    self.stats["dismissed"] += 1
                    events.append(BargeInDismissed(at_ms, self._onset_ms))
                    self._false_alarm(at_ms)
                if not self._suspected:  # not the visitor after all: echo evidence
                    # (once paused, the reference no longer matches what the mic hears)
                    for band in self._bands:
                        for ratio in band.pending:
                            band.learn(ratio, self._delay_ms is not None)
                    for echo in self._aec_pending:
                        self._judge.learn(echo)
                self.reset()
                return
        if self._onset_ms is None or self._latched:
            return
        if not self._suspected and (strong or self._hits >= self._react_frames):
            self._suspected = True
            self.stats["suspected"] += 1
            events.append(BargeInSuspected(at_ms + self.frame_ms, self._onset_ms))
        if self._suspected and self._voiced_hits >= self._min_frames:
            onset = self._onset_ms
            self.stats["confirmed"] += 1
            events.append(BargeIn(at_ms + self.frame_ms, onset))
            self._confirmed_at, self._confirmed_onset = at_ms + self.frame_ms, onset
            self._false_alarms.clear()  # it was right this time: no evidence of a moved path
            self._latched = True  # same burst: no second BargeIn until it ends


def _db(energy: float) -> float:
    # Floored: digital silence between replies (-120 dB) would dominate the correlation.
    return max(ENVELOPE_FLOOR_DB, dsp.energy_db(energy))


def _pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    if va <= 1e-9 or vb <= 1e-9:
        return 0.0
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    return cov / math.sqrt(va * vb)
