"""Channel agreement of a mic array: how coherent the mics are in 1.5-4 kHz over an onset.

Why it tells near from far independent of loudness (standard room acoustics; see
`agentd/sim/room.py` and docs/engagement.md): a visitor at 0.5-1 m is inside the room's
critical distance (1-3 m in a lobby), so the direct sound dominates and every mic
hears the same waveform, shifted by a fraction of a millisecond: the magnitude-squared
coherence (MSC) between two mics is near 1. A talker 3-5 m away is beyond it: the
diffuse reverberant field dominates, whose coherence between mics d apart is
sin(kd)/(kd) - for d = 4.6-6.5 cm small above ~2.5 kHz. A raised voice or a TV across
the room can be as loud at the array as a visitor, but not as coherent.

The estimate: Welch's method (Hann windows of 8 ms, half overlap) gives each pair's
cross- and auto-spectra summed over the onset window, MSC = |S_ij|^2 / (S_ii S_jj) per
frequency bin; the figure is the mean over the bins in `BAND_HZ` and over all mic pairs.
Summing spectra weights the loud segments (the speech) over the quiet ones (room tone
in the pre-roll). With K independent segments an incoherent pair still shows MSC ~1/K
(estimator bias): a 300 ms onset has ~74 half-overlapping segments, fewer independent
ones, and the room model's far talkers read 0.1-0.3.

It runs only when the level gate has found an onset loud enough (an onset candidate),
on at most ~0.5 s of audio: about a millisecond of numpy, never per chunk.
"""

from __future__ import annotations

import numpy as np

# Below ~1.5 kHz the diffuse field is itself coherent for a few-cm array (sin(kd)/(kd) is
# still > 0.5 at 1 kHz for 6.5 cm); above ~4 kHz speech has little energy at the array's
# distance and 16 kHz capture ends at 8 kHz.
BAND_HZ = (1500.0, 4000.0)
# 128 samples at 16 kHz: 125 Hz bins, 20 in the band. Shorter segments mean more of them
# in an onset, so less estimator bias (an incoherent pair reads ~1/K): in the room model
# 8 ms instead of 16 ms lowered a far talker's 200 ms windows by ~0.03 and left a near
# talker's unchanged.
SEGMENT_MS = 8
MIN_SEGMENTS = 4  # fewer and the estimate is mostly bias


def deinterleave(pcm: bytes, channels: int) -> np.ndarray:
    """Interleaved S16_LE to float (channels, samples)."""
    usable = len(pcm) - len(pcm) % (2 * channels)
    data = np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float64)
    return np.asarray(data.reshape(-1, channels).T)


def band_coherence(pcm: bytes, channels: int, rate_hz: int) -> float | None:
    """Mean inter-mic MSC in BAND_HZ of interleaved PCM; None if too short or silent."""
    if channels < 2:
        return None
    x = deinterleave(pcm, channels)
    seg = 1 << (rate_hz * SEGMENT_MS // 1000 - 1).bit_length()
    hop = seg // 2
    count = 1 + (x.shape[1] - seg) // hop if x.shape[1] >= seg else 0
    if count < MIN_SEGMENTS:
        return None
    starts = np.arange(count) * hop
    segments = x[:, starts[:, None] + np.arange(seg)[None, :]]  # (ch, count, seg)
    spectra = np.fft.rfft(segments * np.hanning(seg), axis=-1)
    freqs = np.fft.rfftfreq(seg, 1.0 / rate_hz)
    spectra = spectra[:, :, (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])]
    cross = np.einsum("isf,jsf->ijf", spectra, spectra.conj())  # summed over segments
    auto = cross[np.arange(channels), np.arange(channels)].real  # (ch, f)
    i, j = np.triu_indices(channels, k=1)
    denom = auto[i] * auto[j]
    if not np.all(denom > 0.0):
        return None
    msc = np.abs(cross[i, j]) ** 2 / denom
    return float(np.mean(msc))


# Calibration: the threshold sits this far from the diffuse floor towards the visitor.
CALIBRATION_FRACTION = 0.5
CALIBRATION_BOUNDS = (0.2, 0.8)  # below: estimator bias alone; above: a near talker fails


def calibrate_agreement(visitor_pcm: bytes, room_pcm: bytes, channels: int, rate_hz: int) -> float:
    """`min_coherence` from the array's recordings of a visitor at 1 m and the quiet room.

    The quiet room stands for the diffuse field (its tone comes from everywhere, as a far
    talker's reverberation does), the visitor for the near field; the threshold is half
    way between them, within CALIBRATION_BOUNDS. Mic self-noise in a very quiet room is
    incoherent and pulls the floor (and so the threshold) down: permissive, never deaf.
    """
    visitor = band_coherence(visitor_pcm, channels, rate_hz)
    room = band_coherence(room_pcm, channels, rate_hz)
    if visitor is None or room is None:
        raise ValueError("calibration needs a multi-channel recording of each, with sound")
    return agreement_threshold(visitor, room)


def agreement_threshold(visitor: float, room: float) -> float:
    """`min_coherence` from a visitor's and the quiet room's coherence already measured."""
    threshold = room + CALIBRATION_FRACTION * (visitor - room)
    low, high = CALIBRATION_BOUNDS
    return round(min(high, max(low, threshold)), 2)
