"""A multi-channel room for a mic array: each source reaches each mic by a direct path and
a diffuse reverberant tail, so the channels' agreement follows the talker's distance.

The acoustics (statistical room acoustics; H. Kuttruff, *Room Acoustics*, 5th ed., 2009,
sections 5.1-5.3; the diffuse-field coherence from R. K. Cook et al., "Measurement of
correlation coefficients in reverberant sound fields", JASA 27(6), 1955):

- The sound at a distance r from a talker is the direct sound, whose energy falls as
  1/r^2 (-6 dB per doubling), plus the reverberant field, whose energy is about the same
  everywhere in the room. They are equal at the critical distance
  r_c = 0.057 * sqrt(Q * V / RT60) (V in m^3, RT60 in s, Q the source's directivity,
  about 2 for a talker facing the listener): 1-3 m in a lobby (280 m^3, RT60 0.8 s,
  Q = 2 gives 1.5 m). So the direct-to-reverberant ratio is DRR = 20 log10(r_c / r):
  +6.6 dB for a visitor at 0.7 m, -8.5 dB for a bystander at 4 m (r_c = 1.5 m).
- The direct sound reaches every mic of a small array as the same waveform, delayed by
  the path difference (under 0.2 ms across 6.5 cm): the channels are coherent.
- The reverberant field is diffuse (waves from all directions); for two omni mics d
  apart its complex coherence is sin(kd)/(kd), k = 2 pi f / c. For d = 4.6-6.5 cm the
  magnitude-squared coherence is below 0.1 from about 2.5-3.5 kHz up.

The model: per mic a direct path (1/r gain and the exact geometric delay, applied as a
phase shift, so sub-sample delays are right) and a reverberant tail that starts a few ms
after the direct sound and decays exponentially at the room's RT60. The tails are white
Gaussian noise made spatially coherent as a diffuse field would be by mixing independent
channels per frequency bin with a square root of the sin(kd)/(kd) coherence matrix
(E. A. P. Habets and S. Gannot, "Generating sensor signals in isotropic noise fields",
JASA 122(6), 2007); their energy is set so the tail equals the direct sound at r_c.
What it leaves out, said plainly: early reflections as discrete echoes (the floor under
a kiosk, the kiosk's own body), frequency-dependent RT60 (longer below 500 Hz), talker
directivity and head shadow, and mic mismatch (gain and phase differences between real
MEMS capsules, which lower the coherence of a near talker too). It is a statistical
room, not an image-source one: a test of the cue, not of a particular lobby.

Cheap: one RIR per source placement (cached), FFT convolution; deterministic by seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from agentd.audio import dsp
from agentd.audio.format import AudioChunk, AudioFormat

SPEED_OF_SOUND_M_S = 343.0  # air at 20 degC
TAIL_START_MS = 3.0  # first reflections (floor, nearby walls) a few ms after the direct sound
TAIL_RISE_MS = 10.0  # the echo density builds up over the first ~10 ms (a short ramp)


@dataclass(frozen=True, slots=True)
class MicArray:
    """Mic positions in metres, in the array's plane (x, y) plus height (z)."""

    name: str
    positions_m: tuple[tuple[float, float, float], ...]

    @property
    def channels(self) -> int:
        return len(self.positions_m)

    def spacings_m(self) -> np.ndarray:
        """Distance between every pair of mics, shape (channels, channels)."""
        p = np.asarray(self.positions_m)
        return np.asarray(np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1))


# ReSpeaker USB Mic Array v2.0 (and the 4-Mic Pi HAT is of the same size): four mics on a
# square of side 45.7 mm (diagonal 64.6 mm), as in public DOA configs for the array.
SQUARE_4 = MicArray(
    "square-45.7mm",
    ((0.02285, 0.02285, 0.0), (-0.02285, 0.02285, 0.0), (-0.02285, -0.02285, 0.0),
     (0.02285, -0.02285, 0.0)),
)  # fmt: skip
# Two mics 6 cm apart (a 2-mic HAT class device; measure the real board's spacing).
PAIR_6CM = MicArray("pair-60mm", ((-0.03, 0.0, 0.0), (0.03, 0.0, 0.0)))


def critical_distance_m(volume_m3: float, rt60_s: float, directivity: float = 2.0) -> float:
    """Kuttruff's r_c = 0.057 sqrt(Q V / RT60) (from Sabine's absorption area)."""
    return 0.057 * math.sqrt(directivity * volume_m3 / rt60_s)


@dataclass(frozen=True, slots=True)
class Room:
    """A reverberant room seen from a kiosk's array; defaults: a 280 m^3 lobby."""

    rt60_s: float = 0.8
    critical_distance_m: float = 1.5
    rate_hz: int = 16000

    def drr_db(self, distance_m: float) -> float:
        """Direct-to-reverberant ratio at `distance_m` (diffuse-field theory)."""
        return 20.0 * math.log10(self.critical_distance_m / distance_m)


def diffuse_coherence(array: MicArray, freqs_hz: np.ndarray) -> np.ndarray:
    """sin(kd)/(kd) for every mic pair at every frequency, shape (freqs, ch, ch)."""
    k = 2.0 * np.pi * freqs_hz / SPEED_OF_SOUND_M_S
    return np.asarray(np.sinc(k[:, None, None] * array.spacings_m()[None] / np.pi))


def _coherence_mixer(array: MicArray, freqs_hz: np.ndarray) -> np.ndarray:
    """Per bin a matrix C with C C^T = the diffuse coherence (Habets & Gannot 2007)."""
    values, vectors = np.linalg.eigh(diffuse_coherence(array, freqs_hz))
    return np.asarray(vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :])


def diffuse_noise(array: MicArray, samples: int, rate_hz: int, seed: int) -> np.ndarray:
    """Unit-variance noise per mic with the diffuse field's coherence, (ch, samples)."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((array.channels, samples))
    spectra = np.fft.rfft(white, axis=1)
    mixer = _coherence_mixer(array, np.fft.rfftfreq(samples, 1.0 / rate_hz))
    mixed = np.einsum("fij,jf->if", mixer, spectra)
    return np.asarray(np.fft.irfft(mixed, n=samples, axis=1))


def diffuse_copies(signal: np.ndarray, array: MicArray, rate_hz: int) -> np.ndarray:
    """A steady noise (a loop) as a diffuse field at every mic: circularly shifted copies
    (far apart, so independent), mixed per bin to the diffuse coherence; same spectrum."""
    n = len(signal)
    shifted = np.stack([np.roll(signal, k * n // array.channels) for k in range(array.channels)])
    spectra = np.fft.rfft(shifted, axis=1)
    mixer = _coherence_mixer(array, np.fft.rfftfreq(n, 1.0 / rate_hz))
    return np.asarray(np.fft.irfft(np.einsum("fij,jf->if", mixer, spectra), n=n, axis=1))


def _shifted(spectrum_len: int, delay_s: float, rate_hz: int, n: int) -> np.ndarray:
    """The rfft of a unit impulse delayed by `delay_s` (fractional: a phase ramp)."""
    freqs = np.fft.rfftfreq(n, 1.0 / rate_hz)[:spectrum_len]
    return np.asarray(np.exp(-2j * np.pi * freqs * delay_s))


class RoomRenderer:
    """Renders mono sources at a distance into the array's channels (see module doc)."""

    def __init__(self, room: Room, array: MicArray, *, seed: int = 0) -> None:
        self.room = room
        self.array = array
        self.seed = seed
        self._rirs = cache(self._rir)

    def rir(self, distance_m: float, azimuth_deg: float = 0.0) -> np.ndarray:
        """Impulse responses (ch, taps), scaled so the direct sound at 1 m has gain 1."""
        return self._rirs(round(distance_m, 3), round(azimuth_deg, 1))

    def _rir(self, distance_m: float, azimuth_deg: float) -> np.ndarray:
        rate = self.room.rate_hz
        taps = int(self.room.rt60_s * rate)  # down 60 dB by the end
        n = 1 << (taps - 1).bit_length()
        az = math.radians(azimuth_deg)
        source = np.array([distance_m * math.cos(az), distance_m * math.sin(az), 0.0])
        paths = np.linalg.norm(source[None, :] - np.asarray(self.array.positions_m), axis=1)
        bins = n // 2 + 1
        direct = np.stack([_shifted(bins, d / SPEED_OF_SOUND_M_S, rate, n) / d for d in paths])
        h = np.fft.irfft(direct, n=n, axis=1)[:, :taps]
        # The tail: its own seed per placement, so two sources never share a reverb.
        salt = int(distance_m * 1000) * 3601 + int(azimuth_deg * 10) % 3600
        noise = diffuse_noise(self.array, n, rate, self.seed * 1_000_003 + salt)[:, :taps]
        t = np.arange(taps) / rate
        start = float(paths.min()) / SPEED_OF_SOUND_M_S + TAIL_START_MS / 1000
        rise = np.clip((t - start) / (TAIL_RISE_MS / 1000), 0.0, 1.0)
        envelope = rise * np.exp(-3.0 * math.log(10) * (t - start) / self.room.rt60_s)
        tail = noise * envelope[None, :]
        # Reverberant energy = direct energy at r_c: (1 / r_c)^2, per channel on average.
        energy = float(np.mean(np.sum(tail * tail, axis=1)))
        tail *= (1.0 / self.room.critical_distance_m) / math.sqrt(energy)
        return np.asarray(h + tail)

    def render(self, mono: np.ndarray, distance_m: float, azimuth_deg: float = 0.0) -> np.ndarray:
        """The source as the array hears it: (ch, len(mono) + taps - 1), FFT convolution."""
        h = self.rir(distance_m, azimuth_deg)
        size = len(mono) + h.shape[1] - 1
        n = 1 << (size - 1).bit_length()
        spectrum = np.fft.rfft(np.asarray(mono, dtype=np.float64), n) * np.fft.rfft(h, n, axis=1)
        return np.asarray(np.fft.irfft(spectrum, n, axis=1)[:, :size])

    def render_steady(
        self, mono: np.ndarray, distance_m: float, azimuth_deg: float = 0.0
    ) -> np.ndarray:
        """As render(), with the room's energy gain divided out: a steady sound keeps its
        level at the array, a short one peaks lower far away (its reverb has not built
        up) - how a level given "at the array" is meant for a long sound."""
        gain = math.sqrt(energy_gain(self.rir(distance_m, azimuth_deg)))
        return np.asarray(self.render(mono, distance_m, azimuth_deg) / gain)


def energy_gain(h: np.ndarray) -> float:
    """The RIR's energy gain, averaged over the mics: 1/r^2 + 1/r_c^2 by construction."""
    return float(np.mean(np.sum(h * h, axis=1)))


def frame_level_p90_db(signal: np.ndarray, rate_hz: int) -> float:
    """90th percentile of 20 ms frame levels in dBFS, as near_field.calibrate measures."""
    size = rate_hz // 50
    usable = len(signal) - len(signal) % size
    if usable == 0:
        return -120.0
    frames = np.asarray(signal[:usable], dtype=np.float64).reshape(-1, size)
    levels = np.sort(10 * np.log10(np.maximum(np.mean(frames * frames, axis=1), 1e-12)))
    return float(levels[int(0.9 * (len(levels) - 1))] - 20 * math.log10(32768.0))


def at_array_level(channels: np.ndarray, level_dbfs: float, rate_hz: int) -> np.ndarray:
    """Scale a rendered source so its loud syllables reach `level_dbfs` at the array
    (measured on the channels' mix, which is what the level gate sees)."""
    mix = channels.mean(axis=0)
    gain = 10 ** ((level_dbfs - frame_level_p90_db(mix, rate_hz)) / 20)
    return np.asarray(channels * gain)


def to_interleaved_pcm(channels: np.ndarray) -> bytes:
    """(ch, samples) float to interleaved S16_LE, clipped."""
    return bytes(np.clip(np.round(channels.T), -32768, 32767).astype("<i2").tobytes())


@dataclass(frozen=True, slots=True)
class Placed:
    """A dry mono source (float samples) placed in the room, at a level at the array."""

    signal: np.ndarray
    distance_m: float
    level_dbfs: float
    start_ms: float = 0.0
    azimuth_deg: float = 0.0


def mix_scene(
    renderer: RoomRenderer, sources: list[Placed], duration_ms: float, noise_dbfs: float
) -> np.ndarray:
    """Sources through the room plus diffuse room tone, (ch, samples) float."""
    rate = renderer.room.rate_hz
    n = int(duration_ms * rate / 1000)
    tone = diffuse_noise(renderer.array, n, rate, renderer.seed + 7)
    out = tone * (32768.0 * 10 ** (noise_dbfs / 20))
    for placed in sources:
        wet = renderer.render(placed.signal, placed.distance_m, placed.azimuth_deg)
        wet = at_array_level(wet, placed.level_dbfs, rate)
        start = int(placed.start_ms * rate / 1000)
        piece = wet[:, : max(0, n - start)]
        out[:, start : start + piece.shape[1]] += piece
    return np.asarray(out)


def capture_chunks(
    channels: np.ndarray, rate_hz: int, period_ms: int = 20, channel: int = -1
) -> list[AudioChunk]:
    """What AlsaCapture delivers for this multi-channel signal: the mono mix (or the
    picked `channel`) with the mics beside it in `AudioChunk.array`."""
    count = channels.shape[0]
    pcm = to_interleaved_pcm(channels)
    mono_fmt, array_fmt = AudioFormat(rate_hz), AudioFormat(rate_hz, count)
    size = array_fmt.bytes_for_ms(period_ms)
    chunks = []
    for offset in range(0, len(pcm) - size + 1, size):
        at = array_fmt.duration_ms(offset)
        data = pcm[offset : offset + size]
        mono = dsp.to_mono(data, count, channel)
        chunks.append(AudioChunk(mono, mono_fmt, at, AudioChunk(data, array_fmt, at)))
    return chunks


def room_noise(renderer: RoomRenderer, duration_ms: int, level_dbfs: float) -> bytes:
    """Diffuse room tone at about `level_dbfs` RMS per mic, interleaved S16_LE."""
    rate = renderer.room.rate_hz
    n = int(duration_ms * rate / 1000)
    if level_dbfs <= -200:
        return bytes(2 * n * renderer.array.channels)
    tone = diffuse_noise(renderer.array, n, rate, renderer.seed + 11)
    tone *= 32768.0 * 10 ** (level_dbfs / 20) / max(float(np.std(tone)), 1e-9)
    return to_interleaved_pcm(tone)


def room_turn(renderer: RoomRenderer, mono: bytes, distance_m: float, azimuth_deg: float) -> bytes:
    """A dry S16_LE utterance as the array hears it from `distance_m`, at the level the
    dry one has (so the level gate sees the same), its reverberant tail included."""
    dry = np.frombuffer(mono, dtype="<i2").astype(np.float64)
    wet = renderer.render(dry, distance_m, azimuth_deg)
    return to_interleaved_pcm(
        at_array_level(wet, frame_level_p90_db(dry, renderer.room.rate_hz), renderer.room.rate_hz)
    )


def array_for(channels: int) -> MicArray:
    """The geometry a simulated array of `channels` mics gets: the 2- and 4-mic boards'
    sizes, else a circle of radius 32 mm (the ReSpeaker boards' size class)."""
    if channels == 2:
        return PAIR_6CM
    if channels == 4:
        return SQUARE_4
    angles = [2 * math.pi * k / channels for k in range(channels)]
    return MicArray(
        f"circle-{channels}x32mm",
        tuple((0.032 * math.cos(a), 0.032 * math.sin(a), 0.0) for a in angles),
    )
