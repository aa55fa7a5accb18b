"""Small PCM helpers (S16_LE): channel reduction, gain, energy, mixing.

Built on `audioop` because it is C-fast and ships with Python 3.11 (the Pi target);
it is deprecated (removed in 3.13), so every use is confined to this module and a
pure-`array` replacement only needs to touch this file.
"""

from __future__ import annotations

import math
import warnings
from array import array

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

WIDTH = 2  # S16_LE
FULL_SCALE = 32768.0
SILENCE_DB = -120.0  # floor for log energies of digital silence


def to_mono(pcm: bytes, channels: int, channel: int = -1) -> bytes:
    """Interleaved `channels`-channel PCM to mono: pick `channel`, or mix all when -1."""
    if channels == 1:
        return pcm
    usable = len(pcm) - len(pcm) % (WIDTH * channels)
    samples = array("h", pcm[:usable])
    if channel >= 0:
        return samples[channel % channels :: channels].tobytes()
    out = b""
    for ch in range(channels):
        part = audioop.mul(samples[ch::channels].tobytes(), WIDTH, 1.0 / channels)
        out = part if not out else audioop.add(out, part, WIDTH)
    return out


def pick_channels(pcm: bytes, channels: int, picked: tuple[int, ...]) -> bytes:
    """Interleaved PCM reduced to the `picked` channels (still interleaved, in that order)."""
    if picked == tuple(range(channels)):
        return pcm
    import numpy as np  # a core dependency; 3x faster than array slicing here (~7 us/period)

    usable = len(pcm) - len(pcm) % (WIDTH * channels)
    frames = np.frombuffer(pcm[:usable], dtype="<i2").reshape(-1, channels)
    first, last = picked[0], picked[-1]
    if picked == tuple(range(first, last + 1)):
        return frames[:, first : last + 1].tobytes()
    return frames[:, list(picked)].tobytes()


def apply_gain(pcm: bytes, gain: float) -> bytes:
    """Software volume; clips at full scale instead of wrapping."""
    if gain == 1.0 or not pcm:
        return pcm
    return audioop.mul(pcm, WIDTH, gain)


def mean_square(pcm: bytes) -> float:
    """Mean square amplitude (energy per sample), 0.0 for empty input."""
    if len(pcm) < WIDTH:
        return 0.0
    rms = audioop.rms(pcm, WIDTH)
    return float(rms * rms)


def high_band_mean_square(pcm: bytes) -> float:
    """Mean square of the first difference x[n] - x[n-1] (a +6 dB/octave high-pass):
    near zero for a 200 Hz vowel, large for the 3-8 kHz hiss of an "s" or "h"."""
    if len(pcm) < 2 * WIDTH:
        return 0.0
    diff = audioop.add(
        audioop.mul(pcm[WIDTH:], WIDTH, 0.5), audioop.mul(pcm[:-WIDTH], WIDTH, -0.5), WIDTH
    )
    rms = audioop.rms(diff, WIDTH)
    return float(rms * rms)


BANDS = 2  # entries of band_energies()


def band_energies(pcm: bytes) -> tuple[float, ...]:
    """Mean squares per analysis band: (full band, high band).

    More bands (8-tap boxcar < 1 kHz, (1 - z^-4)(1 + z^-1) mid, second difference) were
    tried: faster reactions, but the low band paused replies on reverberant echo alone
    (see .readme-parts/audio-bench.md).
    """
    return mean_square(pcm), high_band_mean_square(pcm)


def energy_db(ms: float) -> float:
    """Mean square to dBFS (full-scale square wave = 0 dB)."""
    if ms <= 0.0:
        return SILENCE_DB
    return max(SILENCE_DB, 10.0 * math.log10(ms / (FULL_SCALE * FULL_SCALE)))


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def mix(a: bytes, b: bytes) -> bytes:
    """Sum two mono buffers sample by sample (shorter one zero-padded), clipped."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return a
    b = b + bytes(len(a) - len(b))
    return audioop.add(a, b, WIDTH)


def interleave(left: bytes, right: bytes) -> bytes:
    """Two mono buffers to one stereo buffer (shorter zero-padded)."""
    n = max(len(left), len(right))
    left, right = left + bytes(n - len(left)), right + bytes(n - len(right))
    return audioop.add(
        audioop.tostereo(left, WIDTH, 1, 0), audioop.tostereo(right, WIDTH, 0, 1), WIDTH
    )
