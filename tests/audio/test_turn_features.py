"""The numpy Whisper log-mel front end of the smart-turn model matches transformers'.

Reference figures: `transformers.WhisperFeatureExtractor(chunk_length=8)` (transformers
5.24.0, numpy 2.4.6, installed outside the venv for a one-off run) on `_signal()` padded by
`last_window`, called as pipecat's smart-turn v3 does: sampling_rate=16000,
padding="max_length", max_length=128000, truncation=True, do_normalize=True. Its largest
difference from `log_mel` over all 64,000 values was 1.2e-7 (float32 rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

from agentd.audio.turn_features import (
    N_MELS,
    WINDOW_SAMPLES,
    last_window,
    log_mel,
    pcm16_to_float,
)

FLOOR = -0.13335895538330078  # (max - 8 + 4) / 4: everything 80 dB below the peak
REFERENCE = {  # (mel band, frame) -> transformers' value
    (0, 0): FLOOR,  # the zero padding before the signal
    (10, 500): 0.977617621421814,
    (2, 520): 0.9572268128395081,
    (20, 560): 0.8574190735816956,
    (33, 640): 0.46920764446258545,
    (47, 710): 0.09984511137008667,
    (79, 799): 0.014867424964904785,
}
REFERENCE_MEAN = 0.0019656554097309707
REFERENCE_STD = 0.35145814538229975
REFERENCE_MAX = 1.8666410446166992


def _signal() -> np.ndarray:
    """3 s of a fixed test signal: an amplitude-modulated chirp, a 2.5 kHz tone, a hiss."""
    n = np.arange(3 * 16000, dtype=np.float64)
    t = n / 16000
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 300 * t**2)) * (0.5 + 0.5 * np.sin(6 * np.pi * t))
    tone = 0.05 * np.sin(2 * np.pi * 2500 * t)
    hiss = 0.01 * np.sin(n * n * 1e-3)
    return (chirp + tone + hiss).astype(np.float32)


def test_log_mel_matches_transformers_whisper_feature_extractor() -> None:
    features = log_mel(last_window(_signal()))
    assert features.shape == (N_MELS, 800) and features.dtype == np.float32
    for (band, frame), value in REFERENCE.items():
        assert features[band, frame] == pytest.approx(value, abs=1e-5), (band, frame)
    assert float(features.astype(np.float64).mean()) == pytest.approx(REFERENCE_MEAN, abs=1e-6)
    assert float(features.astype(np.float64).std()) == pytest.approx(REFERENCE_STD, abs=1e-6)
    assert float(features.max()) == pytest.approx(REFERENCE_MAX, abs=1e-5)


def test_last_window_keeps_the_end_and_pads_the_start() -> None:
    short = np.ones(16000, np.float32)
    window = last_window(short)
    assert window.shape == (WINDOW_SAMPLES,)
    assert not window[: WINDOW_SAMPLES - 16000].any() and window[-16000:].all()
    long = np.arange(WINDOW_SAMPLES + 5, dtype=np.float32)
    assert last_window(long)[0] == 5.0  # the oldest 5 samples are dropped


def test_log_mel_refuses_a_window_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="128000"):
        log_mel(np.zeros(16000, np.float32))


def test_pcm16_scales_like_pipecat() -> None:
    pcm = np.array([-32768, 0, 16384, 32767], "<i2").tobytes()
    assert pcm16_to_float(pcm).tolist() == [-1.0, 0.0, 0.5, 32767 / 32768]
