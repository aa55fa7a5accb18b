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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agentd.audio.format import AudioFormat
from agentd.audio.wake_word import WakeWordDetector
from agentd.config.sections_engagement import WakeWordConfig
from agentd.sim.lobby import RATE, VISITOR_DBFS, at_level
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
