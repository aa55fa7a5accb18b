"""The self-test's signal and its analysis: a chirp out, a recording in, numbers back.

Pure functions of PCM (numpy), so the same analysis runs on the ALSA devices, the
simulated ones and synthetic test signals. The recording is the mic over a window, the
reference is what the playback device says it played over the same window on the same
monotonic clock (the `ReferenceTap`), so the measured delay is exactly the delay the
barge-in detector sees: speaker buffer, air and capture buffer together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.vad_gate import VadGate
from agentd.config.sections_audio import VadConfig
from agentd.events import SpeechStarted

LEAD_MS = 600  # mic only, before the probe plays: the noise floor and the VAD's verdict
CHIRP_MS = 500  # long enough for ~27 dB of correlation gain at 16 kHz
TAIL_MS = 700  # after the chirp: room for MAX_DELAY_MS of echo plus device buffers
FADE_MS = 10  # raised-cosine ends: no click (a click is broadband and smears the peak)
CHIRP_DBFS = -12.0  # the test-hardware tone's level: clearly audible, far from clipping
CHIRP_LOW_HZ = 300.0  # small kiosk speakers roll off below ~200-300 Hz
CHIRP_HIGH_HZ = 6000.0  # speech band; capped at 0.4 x the lower sample rate (no aliasing)
MAX_DELAY_MS = 500.0  # SimAudioConfig.echo_delay_ms allows 0..500; USB chains stay well under
MIN_DELAY_MS = -50.0  # a little negative lag is allowed: a device clock reporting late
ECHO_MARGIN_MS = 60.0  # around the delayed sweep: device timestamp jitter, early reverb
DETECT_PEAK_RATIO = 8.0  # correlation peak vs the RMS of all lags: ~18 dB, no false echo
CLIP_LEVEL = 32767  # |sample| at full scale counts as clipped
FLOOR_DBFS = -120.0  # what digital silence is reported as (JSON has no -inf)


@dataclass(frozen=True, slots=True)
class Recording:
    """The mic and the played reference over one window, both at the capture rate."""

    mic: bytes
    reference: bytes
    rate_hz: int
    probe_start_ms: float  # offset of the probe's first heard sample in the window
    played_energy: float = 0.0  # sum of squares of the probe as played (gain applied), at
    # rate_hz; 0 = take it from the reference (a device whose timestamps come in bursts,
    # like alsa's file plugin, overlaps chunks there and loses energy)
    voice: bytes = b""  # the mic after the echo, while the operator spoke (near-field
    # calibration, agentd.diagnostics.near_field_check); empty when nobody was asked
    # A mic array's raw mics over the same spans (interleaved, `array_channels` of them;
    # AudioChunk.array), for the agreement's calibration; empty for a mono capture.
    array: bytes = b""  # beside `mic`
    array_voice: bytes = b""  # beside `voice`
    array_channels: int = 0

    @property
    def room(self) -> bytes:
        """The mic before the probe played: the quiet room."""
        return self.mic[: int(self.probe_start_ms * self.rate_hz / 1000) * 2]

    @property
    def array_room(self) -> bytes:
        """The array's mics before the probe played (b"" without an array)."""
        frames = int(self.probe_start_ms * self.rate_hz / 1000)
        return self.array[: frames * 2 * self.array_channels]

    @property
    def duration_ms(self) -> float:
        return len(self.mic) / 2 / self.rate_hz * 1000.0


@dataclass(frozen=True, slots=True)
class Measurement:
    """What the analysis found; None where the signal did not allow a number."""

    echo_delay_ms: float | None
    echo_coupling_db: float | None
    echo_detected: bool
    correlation_peak_ratio: float
    noise_floor_dbfs: float
    mic_rms_dbfs: float
    mic_peak_dbfs: float
    clipped_samples: int
    clipped_percent: float
    vad_voiced_percent: float
    vad_gate_opened: bool
    probe_dbfs: float


def with_array(recording: Recording, chunks: list[AudioChunk], mark: int) -> Recording:
    """The array's mics beside the mono recording (the agreement's calibration), when
    every chunk carries them in one format; a mono capture's recording is unchanged."""
    first = chunks[0].array if chunks else None
    if first is None or first.fmt.channels < 2 or first.fmt.rate_hz != recording.rate_hz:
        return recording
    mics = [c.array for c in chunks if c.array is not None and c.array.fmt == first.fmt]
    if len(mics) != len(chunks):
        return recording  # a capture that changed format mid-test: no aligned array audio
    return replace(
        recording,
        array=b"".join(m.pcm for m in mics[:mark]),
        array_voice=b"".join(m.pcm for m in mics[mark:]),
        array_channels=first.fmt.channels,
    )


def record_ms() -> float:
    """How long the mic is recorded in total (lead + probe + tail)."""
    return LEAD_MS + CHIRP_MS + TAIL_MS


def chirp(rate_hz: int, high_hz: float = CHIRP_HIGH_HZ) -> bytes:
    """A logarithmic sweep at CHIRP_DBFS peak, S16_LE mono, with faded ends."""
    n = int(rate_hz * CHIRP_MS / 1000)
    t = np.arange(n) / rate_hz
    f0, f1, dur = CHIRP_LOW_HZ, min(high_hz, 0.4 * rate_hz), CHIRP_MS / 1000
    k = math.log(f1 / f0)
    phase = 2 * math.pi * f0 * dur / k * (np.exp(t / dur * k) - 1.0)
    wave = np.sin(phase)
    fade = int(rate_hz * FADE_MS / 1000)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, fade))
    wave[:fade] *= ramp
    wave[-fade:] *= ramp[::-1]
    amplitude = 32767 * 10 ** (CHIRP_DBFS / 20)
    return (wave * amplitude).round().astype("<i2").tobytes()


def resample(pcm: bytes, from_hz: int, to_hz: int) -> bytes:
    """Linear-interpolation resampling; enough for a sweep kept under 0.4 x both rates."""
    if from_hz == to_hz or not pcm:
        return pcm
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    n_out = int(len(x) * to_hz / from_hz)
    grid = np.arange(n_out) * (from_hz / to_hz)
    out: bytes = np.interp(grid, np.arange(len(x)), x).round().astype("<i2").tobytes()
    return out


def energy(pcm: bytes) -> float:
    """Sum of squares of S16_LE samples."""
    x = _samples(pcm)
    return float(np.sum(x * x))


def _samples(pcm: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)


def _dbfs(mean_square: float) -> float:
    if mean_square <= 0:
        return FLOOR_DBFS
    return max(FLOOR_DBFS, 10 * math.log10(mean_square / 32768.0**2))


def analyse(recording: Recording, vad: VadConfig, frame_ms: int) -> Measurement:
    """Delay, coupling, noise floor, levels, clipping and the VAD's verdict on the noise."""
    rate = recording.rate_hz
    mic, ref = _samples(recording.mic), _samples(recording.reference)
    n = min(len(mic), len(ref))
    mic, ref = mic[:n], ref[:n]
    start = max(0, min(n, int(recording.probe_start_ms * rate / 1000)))
    noise = mic[:start]
    noise_ms = float(np.mean(noise * noise)) if len(noise) else 0.0
    voiced_percent, opened = vad_verdict(noise.astype("<i2").tobytes(), rate, vad, frame_ms)
    lag, ratio = _best_lag(mic, ref, rate)
    detected = ratio >= DETECT_PEAK_RATIO
    coupling = (
        _coupling_db(
            mic, ref, lag, noise_ms=noise_ms, rate_hz=rate, played_energy=recording.played_energy
        )
        if detected
        else None
    )
    played = ref[np.abs(ref) > 0]
    clipped = int(np.count_nonzero(np.abs(mic) >= CLIP_LEVEL))
    return Measurement(
        echo_delay_ms=round(lag / rate * 1000.0, 1) if detected else None,
        echo_coupling_db=round(coupling, 1) if coupling is not None else None,
        echo_detected=detected and coupling is not None,
        correlation_peak_ratio=round(ratio, 1),
        noise_floor_dbfs=round(_dbfs(noise_ms), 1),
        mic_rms_dbfs=round(_dbfs(float(np.mean(mic * mic))) if n else FLOOR_DBFS, 1),
        mic_peak_dbfs=round(_dbfs(float(np.max(mic * mic))) if n else FLOOR_DBFS, 1),
        clipped_samples=clipped,
        clipped_percent=round(100.0 * clipped / n, 3) if n else 0.0,
        vad_voiced_percent=round(voiced_percent, 1),
        vad_gate_opened=opened,
        probe_dbfs=round(_dbfs(float(np.mean(played * played))) if len(played) else FLOOR_DBFS, 1),
    )


def _best_lag(
    mic: npt.NDArray[np.float64], ref: npt.NDArray[np.float64], rate: int
) -> tuple[int, float]:
    """The lag (samples, mic behind reference) of the largest cross-correlation, and how
    far that peak stands above the correlation's RMS over all searched lags."""
    n = len(mic)
    if n == 0 or not np.any(ref):
        return 0, 0.0
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(mic, size) * np.conj(np.fft.rfft(ref, size))
    corr = np.fft.irfft(spectrum, size)  # corr[k] = sum mic[i + k] * ref[i]
    low = int(MIN_DELAY_MS * rate / 1000)
    high = int(MAX_DELAY_MS * rate / 1000)
    lags = np.arange(low, high + 1)
    values = np.abs(corr[lags % size])
    best = int(np.argmax(values))
    rms = float(np.sqrt(np.mean(values * values)))
    return int(lags[best]), float(values[best] / rms) if rms > 0 else 0.0


def _coupling_db(
    mic: npt.NDArray[np.float64],
    ref: npt.NDArray[np.float64],
    lag: int,
    *,
    noise_ms: float,
    rate_hz: int,
    played_energy: float,
) -> float | None:
    """Echo energy over played energy (energy, not one tap: room reverb is echo too).

    Totals, not means over equal windows: a device whose timestamps jitter leaves gaps or
    overlaps in the reference timeline, which move energy in time but keep its sum. The
    mic window is the played span shifted by the delay, widened by ECHO_MARGIN_MS each
    side; the noise floor's energy over that window is taken out.
    """
    nz = np.flatnonzero(ref)
    margin = int(ECHO_MARGIN_MS * rate_hz / 1000)
    first, last = int(nz[0]), int(nz[-1]) + 1
    lo, hi = max(0, first + lag - margin), min(len(mic), last + lag + margin)
    if hi <= lo:
        return None
    played = played_energy or float(np.sum(ref[first:last] ** 2))
    heard = float(np.sum(mic[lo:hi] ** 2)) - noise_ms * (hi - lo)
    if played <= 0 or heard <= 0:
        return None
    return 10 * math.log10(heard / played)


def vad_verdict(pcm: bytes, rate_hz: int, vad: VadConfig, frame_ms: int) -> tuple[float, bool]:
    """(percent of frames webrtcvad calls speech, whether the kiosk's gate would open)."""
    import webrtcvad

    fmt = AudioFormat(rate_hz)
    size = fmt.bytes_for_ms(frame_ms)
    frames = [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]
    if not frames:
        return 0.0, False
    detector = webrtcvad.Vad(vad.aggressiveness)
    voiced = sum(1 for f in frames if detector.is_speech(f, rate_hz))
    gate = VadGate(vad, rate_hz=rate_hz, frame_ms=frame_ms)
    opened = False
    for i, frame in enumerate(frames):
        events = gate.process(AudioChunk(frame, fmt, i * frame_ms))
        opened = opened or any(isinstance(e, SpeechStarted) for e in events)
    return 100.0 * voiced / len(frames), opened
