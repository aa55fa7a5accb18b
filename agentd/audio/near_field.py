"""Near-field gate: an utterance opens a turn only if it is loud enough to come from the kiosk.

Sound pressure falls ~6 dB per doubling of distance (less in a reverberant room), so a
visitor at 0.5-1 m is 15-20 dB louder at the mic than a bystander 3-5 m away. The gate
holds an utterance's onset (the VAD gate's SpeechStarted and the first VoicedAudio) for
at most `decide_ms` and passes it on - all of it, at once - as soon as one 20 ms frame
reaches `min_level_dbfs` and `min_snr_db` above the tracked noise floor; otherwise the
whole utterance is dropped (and counted: a phantom turn that did not happen).

With a mic array (the capture hands its raw mics on in `AudioChunk.array`) the onset
must also agree across the channels: an onset the level passes is still dropped when
the mean inter-mic coherence in 1.5-4 kHz over it (`array_agreement.band_coherence`,
from `ONSET_LOOKBACK_MS` before the gate opened to now) is under `min_coherence`. A
talker beyond the room's critical distance is heard mostly through the diffuse
reverberant field, which is incoherent between mics a few cm apart however loud the
talker is: a raised voice or a TV across the lobby. Computed once per onset the level
passes, never per chunk. See docs/engagement.md.

`calibrate()` turns a recording of a visitor at 1 m and one of the quiet room into the
two thresholds, for `agentd test-hardware`; `array_agreement.calibrate_agreement()` does
the same for `min_coherence` from the array's recordings.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from agentd.audio import dsp
from agentd.audio.array_agreement import band_coherence
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.recent import RecentAudio
from agentd.config.sections_engagement import NearFieldConfig
from agentd.events import SpeechEnded, SpeechStarted, VoicedAudio

GateEvent = SpeechStarted | VoicedAudio | SpeechEnded
FRAME_MS = 20  # level is the loudest 20 ms frame: one VAD frame, one syllable nucleus
NOISE_RISE = 1.002  # as the VAD gate: instant fall, ~0.4 dB/s rise at 50 frames/s
ONSET_LOOKBACK_MS = 200  # of the pre-roll: the frames that made the VAD gate open
# Calibration: a bystander at 3-5 m is 15-20 dB down on a visitor at 1 m; a threshold
# 8 dB under the visitor passes a visitor who speaks softly or stands at 1.5 m and still
# keeps 7 dB between it and the nearest bystander.
CALIBRATION_HEADROOM_DB = 8.0
# Voicing: a loud frame must also be periodic (a vowel) to open a turn, so a door slam or
# a dropped tray - as loud as a visitor, and webrtcvad calls them speech - does not. The
# normalised autocorrelation of the pre-emphasised frame peaks at the pitch period for
# voiced speech (typically 0.5-0.9) and stays near 0 for noise bursts. Pitch 80-400 Hz.
MIN_PERIODICITY = 0.45
# Near speech is a vowel, not one frame: three loud periodic frames (60 ms) are asked
# for, so a bystander's single loudest syllable peak crossing the threshold is not enough.
MIN_LOUD_FRAMES = 3
PITCH_HZ = (80.0, 400.0)
# Array audio kept for the agreement test: the onset window (lookback + decide_ms) and
# the wake word's window (engagement.WAKE_LEVEL_WINDOW_MS, 1.5 s), whichever is longer.
ARRAY_KEEP_MS = 1600
# An utterance the array already placed across the room is re-tested every
# ONSET_LOOKBACK_MS while it stays loud (a visitor may start talking over it), on a short
# window: each test is another chance for a noisy estimate to pass, so it must clear
# min_coherence by this much (the room model's far talkers: 200 ms windows up to ~0.45,
# a visitor at 0.7 m a median 0.66; tests/audio/test_near_field_array.py).
RECHECK_MARGIN = 0.1


class Verdict(Enum):
    IDLE = "idle"
    DECIDING = "deciding"
    NEAR = "near"
    FAR = "far"


@dataclass(frozen=True, slots=True)
class Rejection:
    """An utterance the gate dropped: its loudest onset frame, the noise floor, and
    why: "level" (too quiet) or "agreement" (loud enough, but the array's channels did
    not agree: `coherence` under min_coherence)."""

    at_ms: float
    level_dbfs: float
    floor_dbfs: float
    reason: str = "level"
    coherence: float | None = None


class NearFieldGate:
    """Filters the VAD gate's events; see the module docstring. Loop thread only."""

    def __init__(self, config: NearFieldConfig, fmt: AudioFormat | None = None) -> None:
        self.config = config
        self.format = fmt or AudioFormat(16000)
        self._frame_bytes = self.format.bytes_for_ms(FRAME_MS)
        self._noise = 0.0
        self._verdict = Verdict.IDLE
        self._held: list[GateEvent] = []
        self._started_ms = 0.0
        self._peak = 0.0
        self._loud = 0  # loud periodic frames in the onset (see MIN_LOUD_FRAMES)
        # Audio not yet judged: capture periods of 10 ms (or 30) are cut into FRAME_MS
        # frames across chunk boundaries, so the verdict does not depend on the period.
        self._pending = b""
        self._recent: deque[VoicedAudio] = deque()  # a far utterance's last frames
        self.rejections: list[Rejection] = []
        self.passed = 0
        # the mics' recent audio (references)
        self._array = RecentAudio(max(ARRAY_KEEP_MS, ONSET_LOOKBACK_MS + config.decide_ms + 100))
        self._recheck_ms = 0.0  # a far utterance's next agreement test, not before
        self.last_coherence: float | None = None
        self.agreement_checks = 0

    @property
    def floor_dbfs(self) -> float:
        return dsp.energy_db(self._noise)

    @property
    def admits_open_utterance(self) -> bool:
        """The utterance in progress (if any) reaches the conversation."""
        return not self.config.enabled or self._verdict is Verdict.NEAR

    def observe(self, pcm: bytes, array: AudioChunk | None = None) -> None:
        """Track the noise floor on every captured chunk (instant fall, slow rise), and
        keep the array's last ARRAY_KEEP_MS or more (references only: no work per chunk)."""
        energy = dsp.mean_square(pcm)
        if self._noise == 0.0 or energy < self._noise:
            self._noise = max(energy, 1.0)
        else:
            self._noise *= NOISE_RISE
        if array is not None and array.fmt.channels >= 2 and self.config.min_coherence > 0:
            self._array.add(array)

    def coherence_since(self, since_ms: float) -> float | None:
        """The array's band coherence from `since_ms` to now; None without an array (or
        with too little audio, or a dead mic: then the level alone decides)."""
        chunks = [c for c in self._array if c.at_ms + c.duration_ms > since_ms]
        if not chunks:
            return None
        self.agreement_checks += 1
        fmt = chunks[0].fmt
        pcm = b"".join(c.pcm for c in chunks if c.fmt == fmt)
        return band_coherence(pcm, fmt.channels, fmt.rate_hz)

    def agrees(self, since_ms: float) -> tuple[bool, float | None]:
        """Whether the array (if any) places the sound since `since_ms` at the kiosk."""
        coherence = self.coherence_since(since_ms)
        self.last_coherence = coherence
        return coherence is None or coherence >= self.config.min_coherence, coherence

    def filter(self, events: Sequence[GateEvent], at_ms: float) -> list[GateEvent]:
        """The events that may reach the conversation now (held ones included)."""
        if not self.config.enabled:
            return list(events)
        out: list[GateEvent] = []
        for event in events:
            self._step(event, out)
        if self._verdict is Verdict.DECIDING and at_ms - self._started_ms >= self.config.decide_ms:
            self._reject(at_ms)
        return out

    def reset(self) -> None:
        """Forget an utterance in progress (the VAD gate was reset)."""
        self._verdict, self._held, self._peak, self._pending = Verdict.IDLE, [], 0.0, b""
        # the array's history stays: the next onset's lookback is still in it

    def _step(self, event: GateEvent, out: list[GateEvent]) -> None:
        verdict = self._verdict
        if isinstance(event, SpeechStarted):
            self._verdict, self._held, self._started_ms = Verdict.DECIDING, [event], event.at_ms
            lookback = self.format.bytes_for_ms(ONSET_LOOKBACK_MS)
            self._peak, self._loud, self._pending = 0.0, 0, b""
            self._consider(event.preroll[-lookback:])
            self._decide(out, event.at_ms)
        elif isinstance(event, VoicedAudio):
            if verdict is Verdict.NEAR:
                out.append(event)
            elif verdict is Verdict.FAR:
                self._far_frame(event, out)
            elif verdict is Verdict.DECIDING:
                self._held.append(event)
                if event.voiced:
                    self._consider(event.chunk.pcm)
                self._decide(out, event.chunk.at_ms + event.chunk.duration_ms)
        else:  # SpeechEnded
            if verdict is Verdict.DECIDING:
                self._reject(event.at_ms)
            elif verdict is Verdict.NEAR:
                out.append(event)
            self._verdict = Verdict.IDLE

    def _far_frame(self, event: VoicedAudio, out: list[GateEvent]) -> None:
        """A visitor may start talking while a bystander's utterance holds the gate open:
        MIN_LOUD_FRAMES loud vowel frames in a row turn the rest of the utterance into a
        turn, with the last ONSET_LOOKBACK_MS as its pre-roll."""
        recent = self._recent
        recent.append(event)
        while len(recent) > ONSET_LOOKBACK_MS // max(1, round(event.chunk.duration_ms)):
            recent.popleft()
        threshold = self.threshold_dbfs()
        for frame in self._frames(event.chunk.pcm):
            loud = event.voiced and dsp.energy_db(dsp.mean_square(frame)) >= threshold
            if loud and periodicity(frame, self.format.rate_hz) >= MIN_PERIODICITY:
                self._loud += 1  # consecutive loud vowel frames
            else:
                self._loud = 0
        if self._loud < MIN_LOUD_FRAMES:
            return
        now = event.chunk.at_ms + event.chunk.duration_ms
        if self._array and now >= self._recheck_ms:
            self._recheck_ms = now + ONSET_LOOKBACK_MS  # at most one test per window
            coherence = self.agrees(now - ONSET_LOOKBACK_MS)[1]
            if coherence is not None and coherence < self.config.min_coherence + RECHECK_MARGIN:
                self._loud = 0  # loud, but across the room: still not a turn
                return
        elif self._array:
            self._loud = 0
            return
        self._verdict = Verdict.NEAR
        self.passed += 1
        preroll = b"".join(e.chunk.pcm for e in list(recent)[:-1])
        out.append(SpeechStarted(event.chunk.at_ms, preroll))
        out.append(event)
        recent.clear()

    def _consider(self, pcm: bytes) -> None:
        """Note the loudest frame, and the best periodicity among the loud frames."""
        threshold = self.threshold_dbfs()
        for frame in self._frames(pcm):
            energy = dsp.mean_square(frame)
            self._peak = max(self._peak, energy)
            if (
                dsp.energy_db(energy) >= threshold
                and self._loud < MIN_LOUD_FRAMES
                and periodicity(frame, self.format.rate_hz) >= MIN_PERIODICITY
            ):
                self._loud += 1

    def _frames(self, pcm: bytes) -> list[bytes]:
        """Whole FRAME_MS frames of the audio so far; the remainder waits for more."""
        data = self._pending + pcm
        size = self._frame_bytes
        whole = len(data) - len(data) % size
        self._pending = data[whole:]
        return [data[i : i + size] for i in range(0, whole, size)]

    def threshold_dbfs(self) -> float:
        return gate_threshold_dbfs(self.config, self.floor_dbfs)

    def _decide(self, out: list[GateEvent], at_ms: float) -> None:
        if self._loud < MIN_LOUD_FRAMES:
            return
        agree, coherence = self.agrees(self._started_ms - ONSET_LOOKBACK_MS)
        if not agree:
            self._reject(at_ms, "agreement", coherence)
            self._recheck_ms = at_ms + ONSET_LOOKBACK_MS
            return
        self._verdict = Verdict.NEAR
        self.passed += 1
        out.extend(self._held)
        self._held = []

    def _reject(self, at_ms: float, reason: str = "level", coherence: float | None = None) -> None:
        level, floor = round(dsp.energy_db(self._peak), 1), round(self.floor_dbfs, 1)
        rounded = None if coherence is None else round(coherence, 2)
        self.rejections.append(Rejection(at_ms, level, floor, reason, rounded))
        self._verdict, self._held, self._loud, self._pending = Verdict.FAR, [], 0, b""
        self._recent.clear()


@dataclass(frozen=True, slots=True)
class Calibration:
    visitor_level_dbfs: float
    noise_floor_dbfs: float
    min_level_dbfs: float
    min_snr_db: float


def calibrate(visitor_pcm: bytes, room_pcm: bytes, fmt: AudioFormat | None = None) -> Calibration:
    """Thresholds from a visitor speaking at 1 m and the room without speech (mono S16_LE).

    The visitor's level is the 90th percentile of their 20 ms frame levels (the loud
    syllables, not one plosive); the floor is the room's median frame level.
    """
    voice, room = frame_levels(visitor_pcm, fmt), frame_levels(room_pcm, fmt)
    if not voice or not room:
        raise ValueError("calibration needs at least 20 ms of each recording")
    return thresholds(loud_level(voice), room[len(room) // 2])


def gate_threshold_dbfs(config: NearFieldConfig, floor_dbfs: float) -> float:
    """The level a loud onset frame must reach over a room whose floor is `floor_dbfs`."""
    return max(config.min_level_dbfs, floor_dbfs + config.min_snr_db)


def loud_level(sorted_levels: list[float]) -> float:
    """A talker's level: the 90th percentile of their sorted frame levels (the loud
    syllables, not one plosive)."""
    return sorted_levels[int(0.9 * (len(sorted_levels) - 1))]


def frame_levels(pcm: bytes, fmt: AudioFormat | None = None) -> list[float]:
    """The dBFS of each whole FRAME_MS frame of mono S16_LE `pcm`, sorted."""
    size = (fmt or AudioFormat(16000)).bytes_for_ms(FRAME_MS)
    return sorted(
        dsp.energy_db(dsp.mean_square(pcm[i : i + size]))
        for i in range(0, len(pcm) - size + 1, size)
    )


def thresholds(visitor_dbfs: float, floor_dbfs: float) -> Calibration:
    """The two thresholds for a visitor at `visitor_dbfs` (loud syllables) over a room
    whose frames sit at `floor_dbfs` (median): `calibrate` from levels already known."""
    min_level = visitor_dbfs - CALIBRATION_HEADROOM_DB
    snr = max(0.0, min(NearFieldConfig().min_snr_db, min_level - floor_dbfs - 3.0))
    return Calibration(
        round(visitor_dbfs, 1), round(floor_dbfs, 1), round(min_level, 1), round(snr, 1)
    )


def periodicity(pcm: bytes, rate_hz: int) -> float:
    """Voicing of one frame, 0..1: the normalised autocorrelation's peak at a pitch lag.

    Pre-emphasis (a first difference) first, so the low-frequency weight of a thump
    cannot pass for periodicity.
    """
    import numpy as np

    x = np.diff(np.frombuffer(pcm, dtype="<i2").astype(np.float64))
    x -= x.mean()
    lo, hi = int(rate_hz / PITCH_HZ[1]), int(rate_hz / PITCH_HZ[0])
    hi = min(hi, len(x) // 2)
    if hi <= lo:
        return 0.0
    # All lags at once (this runs on the loop for every loud frame): one autocorrelation
    # in C, and each lag's two window energies from one cumulative sum.
    n = len(x)
    corr = np.correlate(x, x, mode="full")[n - 1 :]
    energy = np.cumsum(x * x)
    lags = np.arange(lo, hi + 1)
    denom = np.sqrt(energy[n - lags - 1] * (energy[-1] - energy[lags - 1]))
    valid = denom > 0.0
    if not valid.any():
        return 0.0
    return max(0.0, float(np.max(corr[lags][valid] / denom[valid])))
