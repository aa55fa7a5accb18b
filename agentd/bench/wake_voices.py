"""Which espeak-ng voices a wake-word model hears in isolation (`bench engagement --wake-voices`).

Each voice says the model's own phrase, alone, at the lobby's visitor level (-20 dBFS at
the loud syllables) with digital silence either side, at each speaking rate; the daemon's
`WakeWordDetector` (pymicro-wakeword, the model's own cutoff and sliding window) hears it
from a fresh start. The model runs once per 3 feature frames (its stride: 30 ms), so
where the word falls against that stride moves its probability by up to ~0.2 (measured
here): each render is heard at PHASES start offsets spanning one stride, and a cell is
the worst and the best of those peaks (sliding-window probability), `*` when the worst
crossed the cutoff - the word is heard wherever it falls in the stream. No noise, no
gate, no near-field check: a voice that fails here fails because of the voice, not the
lobby or the daemon's path. This is the evidence behind `agentd.sim.lobby.VISITOR_VOICES`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.wake_word import WakeWordDetector
from agentd.config.sections_engagement import EngagementConfig, WakeWordConfig
from agentd.sim.lobby import (
    RATE,
    VISITOR_DBFS,
    VISITOR_LINES,
    VISITOR_VOICES,
    VISITOR_WPM,
    WAKE_GAP_MS,
    Lobby,
    at_level,
    voiced_end_ms,
)
from agentd.sim.speech import render_speech

FORMAT = AudioFormat(RATE)
CHUNK_MS = 20  # the capture period the daemon feeds the detector with
STRIDE_MS = 30  # pymicro-wakeword: 3 feature frames of 10 ms per model invocation
PHASES = 10  # start offsets 0, 3, ..., 27 ms: one stride
RATES_WPM = (130, 150, 165, 180, 200)
# The English voices of espeak-ng 1.51 and the variants worth telling apart (British
# variants are "en+..."; "en-gb+..." silently renders plain en-gb).
VOICES = (
    "en-us", "en-us+f1", "en-us+f2", "en-us+f3", "en-us+f4", "en-us+f5",
    "en-us+m3", "en-us+m7", "en-us+anika", "en-us-nyc", "en-us-nyc+f3",
    "en", "en+f1", "en+f2", "en+f3", "en+f4", "en+f5", "en+m3", "en+m7", "en+anika",
    "en+Annie", "en-gb-x-rp", "en-gb-scotland", "en-029",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class VoiceRow:
    voice: str
    worst: tuple[float, ...]  # per rate in RATES_WPM: the lowest peak over the phases
    best: tuple[float, ...]  # ... and the highest
    cutoff: float

    @property
    def detected(self) -> int:
        """Rates at which every phase was detected."""
        return sum(p > self.cutoff for p in self.worst)


def phrase_of(model: str) -> str:
    """The phrase a model listens for, from its own .json ("Okay Nabu")."""
    detector = WakeWordDetector(WakeWordConfig(model=model))
    try:
        return detector.wake_word
    finally:
        detector.close()


def isolated(pcm: bytes, level_dbfs: float = VISITOR_DBFS, lead_ms: float = 1000.0) -> bytes:
    """`pcm` at `level_dbfs` after `lead_ms` of silence, a second after (16-bit, clipped)."""
    lead = np.zeros(int(lead_ms * RATE / 1000), dtype=np.float32)
    mixed = np.concatenate([lead, at_level(pcm, level_dbfs), np.zeros(RATE, np.float32)])
    return bytes(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())


def peak_probability(model: str, pcm: bytes) -> float:
    """The detector's highest sliding-window probability on `pcm`, from a fresh start."""
    detector = WakeWordDetector(WakeWordConfig(model=model))
    period = FORMAT.bytes_for_ms(CHUNK_MS)
    try:
        for offset in range(0, len(pcm), period):
            detector.process(pcm[offset : offset + period], offset / 32)
        return detector.peak_probability
    finally:
        detector.close()


def phase_peaks(model: str, pcm: bytes, phases: int = PHASES) -> list[float]:
    """Peak probability of `pcm` (said alone) at `phases` offsets spanning one stride."""
    return [
        peak_probability(model, isolated(pcm, lead_ms=1000.0 + k * STRIDE_MS / phases))
        for k in range(phases)
    ]


def voice_table(
    model: str, voices: Sequence[str] = VOICES, rates: Sequence[int] = RATES_WPM
) -> list[VoiceRow]:
    phrase = phrase_of(model)
    detector = WakeWordDetector(WakeWordConfig(model=model))
    cutoff = detector.cutoff
    detector.close()
    rows = []
    for voice in voices:
        peaks = [phase_peaks(model, render_speech(phrase, RATE, voice, wpm)) for wpm in rates]
        rows.append(
            VoiceRow(voice, tuple(min(p) for p in peaks), tuple(max(p) for p in peaks), cutoff)
        )
    return rows


def markdown(model: str, rows: list[VoiceRow], rates: Sequence[int] = RATES_WPM) -> str:
    head = f"| voice ({model}, cutoff {rows[0].cutoff:.2f}) | " if rows else "| voice | "
    lines = [
        head + " | ".join(f"{r} wpm" for r in rates) + " | detected |",
        "|---|" + "---|" * (len(rates) + 1),
    ]
    for row in rows:
        cells = [
            f"{lo:.2f}-{hi:.2f}{'*' if lo > row.cutoff else ''}"
            for lo, hi in zip(row.worst, row.best, strict=True)
        ]
        lines.append(f"| {row.voice} | " + " | ".join(cells) + f" | {row.detected}/{len(rates)} |")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class TrialResult:
    """Wake words mixed into the lobby's own sound, heard through the daemon's front end."""

    trials: int
    detected: int
    detected_clear: int  # of those said with no other sound overlapping the phrase
    clear: int
    far_ignored: int  # detections the near-field check dropped as too quiet
    false_accepts: int  # detections nowhere near a wake word (bystanders, TV, ...)

    def interval(self) -> tuple[float, float]:
        """95 % Wilson interval of the detection rate."""
        n, p, z = self.trials, self.detected / max(1, self.trials), 1.96
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
        return centre - half, centre + half


@dataclass(frozen=True, slots=True)
class WakeTrial:
    """One visitor's first line with the wake word, to be mixed into a lobby."""

    at_ms: float  # where it starts in the lobby
    signal: np.ndarray  # float samples at the visitor's level (dry, mono)
    wake_end_ms: float  # where the spoken wake word ends, in the lobby


def draw_trials(lobby: Lobby, trials: int, model: str, seed: int) -> list[WakeTrial]:
    """`trials` slots over the lobby, each a random visitor voice, rate, level and first
    line after "<phrase>, "; slots inside the lobby's own visits are skipped (not redrawn)."""
    rng = random.Random(seed)
    phrase = phrase_of(model)
    busy = [(v.arrive_ms - 8000, v.leave_ms + 2000) for v in lobby.visitors]
    slot = (lobby.duration_ms - 10_000) / trials
    out = []
    for k in range(trials):
        at = 3000 + k * slot + rng.uniform(0, max(0.0, slot - 7000))
        voice, wpm = rng.choice(VISITOR_VOICES), rng.choice(VISITOR_WPM)
        if any(a <= at <= b for a, b in busy):
            continue
        wake = render_speech(phrase, RATE, voice, wpm)
        end = voiced_end_ms(wake)
        line = rng.choice(VISITOR_LINES)[0]
        pcm = wake[: int(end * RATE / 1000) * 2] + bytes(WAKE_GAP_MS * 32)
        signal = at_level(
            pcm + render_speech(line, RATE, voice, wpm), VISITOR_DBFS + rng.uniform(-3, 3)
        )
        out.append(WakeTrial(at, signal, at + end))
    return out


def score_trials(
    lobby: Lobby, ends: list[float], hits: list[float], far: int
) -> tuple[TrialResult, list[bool]]:
    """Which wake words were heard (a detection 0.5 s before to 1 s after the word's end),
    which were said over the room tone alone, and detections nowhere near one (neither a
    trial nor one of the lobby's own visitors): the result, and heard per trial."""
    heard = [any(e - 500 <= h <= e + 1000 for h in hits) for e in ends]
    clear = [
        not any(
            s.source != "visitor" and s.start_ms <= e + 200 and s.end_ms >= e - 1500
            for s in lobby.spans
        )
        for e in ends
    ]
    stray = [
        h
        for h in hits
        if not any(e - 500 <= h <= e + 1000 for e in ends)
        and not any(v.arrive_ms <= h <= v.leave_ms for v in lobby.visitors)
    ]
    result = TrialResult(
        len(ends),
        sum(heard),
        sum(h and c for h, c in zip(heard, clear, strict=True)),
        sum(clear),
        far,
        len(stray),
    )
    return result, heard


def lobby_trials(
    lobby: Lobby, trials: int, model: str = "okay_nabu", seed: int = 1, *, emphasis: bool = False
) -> TrialResult:
    """`trials` visitors' first lines ("<phrase>, <line>", visitor voices, rates and levels)
    mixed into the lobby at random times away from its own visitors, then the whole lobby
    through VadGate + Engagement.front_end in wake_word mode (near-field gate, emphasis if asked,
    detector, far-field check). The visitors' recall is 10 people per 30 minutes; this is
    the detection rate with enough trials to bound it."""
    from agentd.bench.lobby_kiosk import calibrated_near_field

    mixed = np.frombuffer(lobby.pcm, dtype="<i2").astype(np.float32)
    drawn = draw_trials(lobby, trials, model, seed)
    for trial in drawn:
        i = int(trial.at_ms * RATE / 1000)
        mixed[i : i + len(trial.signal)] += trial.signal[: len(mixed) - i]
    pcm = bytes(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())
    config = EngagementConfig(
        modes=("wake_word",),
        near_field=calibrated_near_field(True),
        wake_word=WakeWordConfig(model=model, near_field_emphasis=emphasis),
    )
    hits, far = _front_end_wakes(pcm, config)
    return score_trials(lobby, [t.wake_end_ms for t in drawn], hits, far)[0]


def _front_end_wakes(pcm: bytes, config: EngagementConfig) -> tuple[list[float], int]:
    """Times of the wake words Engagement accepted, and how many it dropped as far-field."""
    from agentd.audio.vad_gate import VadGate
    from agentd.bench.lobby_kiosk import FRAME_MS, CountingReporter
    from agentd.config.sections_audio import VadConfig
    from agentd.conversation.engagement import engagement_from_config

    engagement = engagement_from_config(config, CountingReporter(), RATE)
    gate = VadGate(VadConfig(), RATE, FRAME_MS)
    period = FORMAT.bytes_for_ms(FRAME_MS)
    hits: list[float] = []
    for offset in range(0, len(pcm) - period + 1, period):
        chunk = AudioChunk(pcm[offset : offset + period], FORMAT, offset / 32)
        engagement.front_end(chunk, gate.process(chunk), True)
        if engagement.last_wake_ms is not None and (
            not hits or hits[-1] != engagement.last_wake_ms
        ):
            hits.append(engagement.last_wake_ms)
    return hits, engagement.stats.wake_words_far
