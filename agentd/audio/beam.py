"""A fixed beam toward the kiosk's front, for the wake-word detector on a mic array.

Why: a visitor stands 0.5-1 m in front of the kiosk, inside the room's critical distance,
so their direct sound dominates; bystanders 3-5 m away reach the array mostly as the
room's diffuse reverberant field. A beam that passes a plane wave from the front
undistorted and suppresses the diffuse field raises the visitor over them before the
detector hears it (far-field devices run their wake word on beams for the same reason).

The beam is a regularised superdirective one (MVDR against the diffuse-field coherence;
S. Doclo and M. Moonen, "Superdirective beamforming robust against microphone
mismatch", IEEE TASLP 15(2), 2007; H. Cox, R. M. Zeskind and T. Kooij, "Practical
supergain", IEEE TASSP 34(3), 1986): per STFT bin f,

    w(f) = (G(f) + mu I)^-1 d(f) / (d(f)^H (G(f) + mu I)^-1 d(f)),

with d the steering vector toward the look direction (a plane wave in the array's
plane) and G_ij = sin(k d_ij)/(k d_ij) the diffuse field's coherence (Cook et al., JASA
1955). w^H d = 1: the look direction passes at unit gain. mu trades directivity for
robustness to mic gain and phase mismatch (the white-noise gain): mu -> infinity is
delay-and-sum. The weights are fixed at start-up; the filter runs as a weighted
overlap-add STFT (20 ms sqrt-Hann frames, 10 ms hop: 10 ms of latency), numpy only,
a few rffts of 320 samples per hop (`agentd bench engagement_array` prints its CPU).

Geometry: `audio.capture.array_geometry` (presets or explicit positions); the look
direction: `audio.capture.array_front_deg` (azimuth in the array's x-y plane, 0 = +x).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SPEED_OF_SOUND_M_S = 343.0  # air at 20 degC
FRAME = 320  # 20 ms at 16 kHz: 50 Hz bins, enough for a 4.6-6.5 cm array's beam
HOP = FRAME // 2  # 50 % overlap: the sqrt-Hann analysis x synthesis windows sum to 1
# Regularisation of the diffuse coherence (relative to its unit diagonal): 0.1 keeps the
# white-noise gain of the 45.7 mm square above -2.5 dB at every bin (0.01: -11 dB at
# 200 Hz) for the same wake-word recall, and a +-1 dB / +-3 deg mic mismatch cost it
# nothing measurable (docs/engagement.md "Front beam").
DEFAULT_MU = 0.1

Positions = Sequence[tuple[float, float, float]]


def metres(positions_mm: Sequence[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """Config positions (mm, `CaptureConfig.mic_positions_mm`) in the metres used here."""
    return [(x / 1000, y / 1000, z / 1000) for x, y, z in positions_mm]


def mix_weights(mics: int) -> np.ndarray:
    """The plain mean of the mics (`audio.capture.channel = -1`) as beam weights."""
    return np.full((FRAME // 2 + 1, mics), 1.0 / mics, dtype=np.complex128)


def _window() -> np.ndarray:
    """sqrt of the periodic Hann window: analysis x synthesis = Hann, which sums to 1 at HOP."""
    n = np.arange(FRAME)
    return np.asarray(np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * n / FRAME)))


def bin_freqs(rate_hz: int) -> np.ndarray:
    return np.asarray(np.fft.rfftfreq(FRAME, 1.0 / rate_hz))


def steering(positions_m: Positions, freqs_hz: np.ndarray, azimuth_deg: float) -> np.ndarray:
    """Per bin the mics' phases for a plane wave from `azimuth_deg`, shape (freqs, mics).

    A mic at p hears the wave p.u / c earlier than the array's centre (u toward the
    source), so its spectrum is the centre's times exp(+j w p.u / c)."""
    az = math.radians(azimuth_deg)
    toward = np.array([math.cos(az), math.sin(az), 0.0])
    lead_s = np.asarray(positions_m, dtype=np.float64) @ toward / SPEED_OF_SOUND_M_S
    return np.asarray(np.exp(2j * np.pi * freqs_hz[:, None] * lead_s[None, :]))


def diffuse_coherence(positions_m: Positions, freqs_hz: np.ndarray) -> np.ndarray:
    """sin(kd)/(kd) between every pair of mics at every bin, shape (freqs, mics, mics)."""
    p = np.asarray(positions_m, dtype=np.float64)
    spacing = np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1)
    return np.asarray(np.sinc(2.0 * freqs_hz[:, None, None] * spacing[None] / SPEED_OF_SOUND_M_S))


def superdirective_weights(
    positions_m: Positions, rate_hz: int, azimuth_deg: float = 0.0, mu: float = DEFAULT_MU
) -> np.ndarray:
    """The regularised superdirective (diffuse-field MVDR) weights, shape (bins, mics)."""
    freqs = bin_freqs(rate_hz)
    d = steering(positions_m, freqs, azimuth_deg)
    gamma = diffuse_coherence(positions_m, freqs) + mu * np.eye(d.shape[1])[None]
    solved = np.linalg.solve(gamma, d[..., None])[..., 0]
    norm = np.einsum("fm,fm->f", d.conj(), solved)
    return np.asarray(solved / norm.conj()[:, None])


def delay_and_sum_weights(
    positions_m: Positions, rate_hz: int, azimuth_deg: float = 0.0
) -> np.ndarray:
    """Delay-and-sum toward `azimuth_deg` (the superdirective beam's mu -> infinity)."""
    d = steering(positions_m, bin_freqs(rate_hz), azimuth_deg)
    return np.asarray(d / d.shape[1])


def response(
    weights: np.ndarray, positions_m: Positions, rate_hz: int, azimuth_deg: float
) -> np.ndarray:
    """w^H d: the beam's complex gain for a plane wave from `azimuth_deg`, per bin."""
    d = steering(positions_m, bin_freqs(rate_hz), azimuth_deg)
    return np.asarray(np.einsum("fm,fm->f", weights.conj(), d))


def diffuse_gain(weights: np.ndarray, positions_m: Positions, rate_hz: int) -> np.ndarray:
    """w^H G w: the beam's power gain for a diffuse field of unit power per mic, per bin
    (the directivity factor is |w^H d|^2 / this)."""
    gamma = diffuse_coherence(positions_m, bin_freqs(rate_hz))
    return np.asarray(np.einsum("fi,fij,fj->f", weights.conj(), gamma, weights).real)


def white_noise_gain(weights: np.ndarray) -> np.ndarray:
    """1 / w^H w for a distortionless beam: its gain against uncorrelated mic noise
    (and, to first order, against mic mismatch); < 1 means it amplifies them."""
    return np.asarray(1.0 / np.sum(np.abs(weights) ** 2, axis=1))


class FixedBeam:
    """Streaming beam: interleaved S16_LE mics in, S16_LE mono out, in HOP-sample steps.

    Output lags the input by FRAME - HOP samples (`latency_ms`); a chunk whose length
    is not a multiple of HOP leaves its remainder for the next call. All the hops a
    chunk completes (two per 20 ms chunk) go through one rfft call: the per-call numpy
    overhead, not the arithmetic, is most of the cost at this size."""

    def __init__(self, weights: np.ndarray, rate_hz: int) -> None:
        if weights.ndim != 2 or weights.shape[0] != FRAME // 2 + 1:
            raise ValueError(f"weights of shape {weights.shape}, need ({FRAME // 2 + 1}, mics)")
        self.channels = int(weights.shape[1])
        self.latency_ms = (FRAME - HOP) * 1000.0 / rate_hz
        self._wconj = np.ascontiguousarray(weights.conj())  # y = sum_m conj(w_m) x_m
        self._win = _window()
        self._tail = np.zeros((FRAME - HOP, self.channels))  # the last frame's overlap
        self._carry = np.zeros(FRAME - HOP)  # the last frame's second half, not yet out
        self._pending = np.zeros((0, self.channels))

    def process(self, interleaved: bytes) -> bytes:
        """The beam's output for the hops this chunk completes (S16_LE, clipped)."""
        mics = np.frombuffer(interleaved, dtype="<i2").reshape(-1, self.channels)
        pending = np.concatenate([self._pending, mics]) if len(self._pending) else mics
        hops = len(pending) // HOP
        self._pending = pending[hops * HOP :].astype(np.float64)
        if hops == 0:
            return b""
        signal = np.concatenate([self._tail, pending[: hops * HOP]])
        self._tail = signal[hops * HOP :]
        halves = signal.reshape(hops + 1, HOP, self.channels)
        frames = np.concatenate([halves[:-1], halves[1:]], axis=1)  # FRAME = 2 HOP
        spectra = np.fft.rfft(frames * self._win[None, :, None], axis=1)
        y = np.fft.irfft(np.einsum("kfm,fm->kf", spectra, self._wconj), FRAME, axis=1)
        y *= self._win
        out = y[:, :HOP].reshape(-1)
        out[:HOP] += self._carry
        out[HOP:] += y[:-1, HOP:].reshape(-1)
        self._carry = y[-1, HOP:]
        return bytes(np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes())


def beam_batch(mics: np.ndarray, weights: np.ndarray, block_frames: int = 4096) -> np.ndarray:
    """The same filter over a whole recording (samples, mics) -> float samples, in the
    streaming beam's timing (lag FRAME - HOP): for benches and tests."""
    channels = weights.shape[1]
    total = len(mics) - len(mics) % HOP
    padded = np.concatenate([np.zeros((FRAME - HOP, channels)), mics[:total].astype(np.float64)])
    hops = total // HOP
    win = _window()
    wconj = weights.conj()
    out = np.zeros(total)
    for first in range(0, hops, block_frames):
        count = min(block_frames, hops - first)
        starts = (first + np.arange(count)) * HOP
        frames = padded[starts[:, None] + np.arange(FRAME)[None, :]]  # (count, FRAME, mics)
        spectra = np.fft.rfft(frames * win[None, :, None], axis=1)
        y = np.fft.irfft(np.einsum("kfm,fm->kf", spectra, wconj), FRAME, axis=1) * win
        # FRAME = 2 HOP: hop k of the output is frame k's first half + frame k-1's second
        out[first * HOP : (first + count) * HOP] += y[:, :HOP].reshape(-1)
        tail = y[:, HOP:].reshape(-1)
        end = min(total, (first + count + 1) * HOP)
        out[(first + 1) * HOP : end] += tail[: end - (first + 1) * HOP]
    return np.asarray(out[:total])


# Below this the mix's dip matters to speech (formants F2/F3, fricative onsets); 4 kHz is
# also where a 16 kHz capture's useful band ends for STT's telephone-grade features.
MIX_CHECK_UP_TO_HZ = 4000.0
MIX_DIP_WARN_DB = -6.0  # a dip this deep is audible and measurable in wake-word recall


def front_mix_dip(positions_m: Positions, rate_hz: int, azimuth_deg: float) -> tuple[float, float]:
    """(worst gain in dB, at Hz) below MIX_CHECK_UP_TO_HZ of the plain average of the mics
    for a voice from `azimuth_deg`: the average of unaligned mics is a comb filter. On the
    45.7 mm square with the visitor between two mics it is -10 dB at 3 kHz and a null
    near 3.75 kHz (a 45.7 mm path difference is half a wavelength there)."""
    gain = np.abs(response(mix_weights(len(positions_m)), positions_m, rate_hz, azimuth_deg))
    freqs = bin_freqs(rate_hz)
    band = (freqs > 0) & (freqs <= MIX_CHECK_UP_TO_HZ)
    worst = int(np.argmin(np.where(band, gain, np.inf)))
    return 20.0 * math.log10(max(float(gain[worst]), 1e-6)), float(freqs[worst])
