"""Whisper log-mel features for the smart-turn model, in numpy (no transformers, no torch).

smart-turn v3 (pipecat, BSD-2, Copyright (c) 2024-2026 Daily) is a Whisper-encoder
classifier: its input is `transformers.WhisperFeatureExtractor(chunk_length=8)` applied
to exactly 8 s of 16 kHz mono audio, with `do_normalize=True`. pipecat feeds it the last
8 s of the turn, zero-padded at the *start* (`local_smart_turn_v3.py`), so the end of the
speech always sits at the end of the window. The steps below follow
`transformers/models/whisper/feature_extraction_whisper.py::_np_extract_fbank_features`
and `transformers/audio_utils.py` (`mel_filter_bank`, `window_function`, `spectrogram`),
as pipecat's own numpy copy does (`pipecat/audio/turn/smart_turn/_whisper_features.py`):

1. zero-mean, unit-variance normalisation of the whole 8 s window (float32, eps 1e-7);
2. a centred STFT: reflect padding of n_fft/2, periodic Hann window of 400, hop 160,
   power spectrum |X|^2 (float64), 801 frames, the last one dropped -> 800;
3. an 80-band Slaney mel filter bank (0-8000 Hz, Slaney area normalisation);
4. log10 with a floor of 1e-10, clamped to (max - 8), then (x + 4) / 4.

tests/audio/test_turn_features.py compares it with figures computed by transformers
5.24's WhisperFeatureExtractor on a fixed signal (largest difference 1.2e-7).
Attribution and pipecat's BSD 2-Clause licence: docs/third-party-notices.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

RATE_HZ = 16_000  # the model's (and Whisper's) sample rate
WINDOW_S = 8  # smart-turn v3 looks at the last 8 s of the turn
WINDOW_SAMPLES = RATE_HZ * WINDOW_S
N_FFT = 400  # 25 ms Whisper analysis window
HOP = 160  # 10 ms hop: 100 frames a second -> 800 frames for 8 s
N_MELS = 80  # smart-turn v3 uses Whisper's 80-band front end (not large-v3's 128)
MEL_FLOOR = 1e-10  # transformers' spectrogram(mel_floor=...)
NORM_EPS = 1e-7  # transformers' zero_mean_unit_var_norm
DYNAMIC_RANGE = 8.0  # log10 units kept below the loudest bin (Whisper: 80 dB)

Floats = NDArray[np.float64]


def _hz_to_mel(hz: Floats) -> Floats:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's htk=False)."""
    mel = 3.0 * hz / 200.0
    log_part = hz >= 1000.0
    mel[log_part] = 15.0 + np.log(hz[log_part] / 1000.0) * (27.0 / np.log(6.4))
    return mel


def _mel_to_hz(mel: Floats) -> Floats:
    hz = 200.0 * mel / 3.0
    log_part = mel >= 15.0
    hz[log_part] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_part] - 15.0))
    return hz


def _mel_filters() -> Floats:
    """(n_fft/2 + 1, N_MELS) triangular filters, Slaney-normalised to equal area."""
    fft_hz = np.linspace(0.0, RATE_HZ // 2, N_FFT // 2 + 1)
    edges = np.array([0.0, RATE_HZ / 2.0])
    mel_lo, mel_hi = _hz_to_mel(edges.copy())
    band_hz = _mel_to_hz(np.linspace(mel_lo, mel_hi, N_MELS + 2))
    widths = np.diff(band_hz)
    slopes = band_hz[np.newaxis, :] - fft_hz[:, np.newaxis]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (band_hz[2 : N_MELS + 2] - band_hz[:N_MELS]))[np.newaxis, :]


_WINDOW = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as torch.hann_window / transformers
_FILTERS_T = np.ascontiguousarray(_mel_filters().T)


def last_window(audio: NDArray[Any]) -> NDArray[np.float32]:
    """The last 8 s of `audio` (float, -1..1), zero-padded at the start as pipecat does."""
    x = np.asarray(audio, dtype=np.float32)
    if x.size >= WINDOW_SAMPLES:
        return x[-WINDOW_SAMPLES:]
    return np.concatenate([np.zeros(WINDOW_SAMPLES - x.size, np.float32), x])


def log_mel(window: NDArray[Any]) -> NDArray[np.float32]:
    """(80, 800) normalised log-mel features of exactly 8 s of 16 kHz audio."""
    x = np.asarray(window, dtype=np.float32)
    if x.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected {WINDOW_SAMPLES} samples, got shape {x.shape}")
    x = (x - x.mean()) / np.sqrt(x.var() + NORM_EPS)
    pad = N_FFT // 2
    padded = np.pad(x.astype(np.float64), (pad, pad), mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP]  # (801, 400), no copy
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2  # (801, 201)
    mel: Floats = np.log10(np.maximum(MEL_FLOOR, _FILTERS_T @ power.T))[:, :-1]  # (80, 800)
    mel = np.maximum(mel, mel.max() - DYNAMIC_RANGE)
    features: NDArray[np.float32] = ((mel + 4.0) / 4.0).astype(np.float32)
    return features


def pcm16_to_float(pcm: bytes) -> NDArray[np.float32]:
    """Signed 16-bit little-endian mono PCM -> float32 in [-1, 1) (x / 32768, as pipecat)."""
    samples: NDArray[np.float32] = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    samples /= np.float32(32768.0)
    return samples
