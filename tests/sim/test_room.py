"""The multi-channel room model follows the acoustics it claims (agentd/sim/room.py): the
direct-to-reverberant ratio is 20 log10(r_c / r), the tail decays at RT60, the tail's
inter-mic coherence is the diffuse field's sin(kd)/(kd), the direct path carries the
geometric delay, and a seed gives the same room."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agentd.sim.room import (
    PAIR_6CM,
    SPEED_OF_SOUND_M_S,
    SQUARE_4,
    Room,
    RoomRenderer,
    critical_distance_m,
    diffuse_noise,
    energy_gain,
)

ROOM = Room(rt60_s=0.8, critical_distance_m=1.5)
RATE = 16000


def direct_and_tail(h: np.ndarray, distance_m: float) -> tuple[float, float]:
    """Energies before / after the tail starts (the direct sound is ~1 ms long)."""
    split = int((distance_m / SPEED_OF_SOUND_M_S + 0.002) * RATE)
    return float(np.mean(np.sum(h[:, :split] ** 2, axis=1))), float(
        np.mean(np.sum(h[:, split:] ** 2, axis=1))
    )


@pytest.mark.parametrize("distance_m", [0.7, 1.5, 4.0])
def test_drr_follows_the_critical_distance(distance_m: float) -> None:
    h = RoomRenderer(ROOM, SQUARE_4, seed=1).rir(distance_m)
    direct, tail = direct_and_tail(h, distance_m)
    assert 10 * math.log10(direct / tail) == pytest.approx(ROOM.drr_db(distance_m), abs=0.5)
    assert energy_gain(h) == pytest.approx(1 / distance_m**2 + 1 / 1.5**2, rel=0.05)


def test_the_tail_decays_at_rt60() -> None:
    h = RoomRenderer(ROOM, SQUARE_4, seed=2).rir(3.0)
    energy = np.mean(h**2, axis=0)
    # Schroeder backward integration, slope between -5 and -25 dB (a T20 estimate)
    edc = 10 * np.log10(np.cumsum(energy[::-1])[::-1] / energy.sum())
    t5, t25 = np.argmax(edc < -5.0), np.argmax(edc < -25.0)
    rt60 = (t25 - t5) / RATE * 60 / 20
    assert rt60 == pytest.approx(ROOM.rt60_s, rel=0.1)


@pytest.mark.parametrize("freq_hz", [500.0, 2000.0, 3000.0])
def test_diffuse_noise_has_the_diffuse_coherence(freq_hz: float) -> None:
    """Real part of the coherence, averaged over 7 bins (±190 Hz) of 40 s of noise."""
    x = diffuse_noise(PAIR_6CM, RATE * 40, RATE, seed=3)
    seg = 512
    frames = x[:, : (x.shape[1] // seg) * seg].reshape(2, -1, seg) * np.hanning(seg)
    spectra = np.fft.rfft(frames, axis=-1)
    centre = round(freq_hz * seg / RATE)
    bins = np.arange(centre - 3, centre + 4)
    cross = np.mean(spectra[0][:, bins] * spectra[1][:, bins].conj(), axis=0)
    auto = np.mean(abs(spectra[0][:, bins]) ** 2, axis=0) * np.mean(
        abs(spectra[1][:, bins]) ** 2, axis=0
    )
    measured = float(np.mean(cross.real / np.sqrt(auto)))
    kd = 2 * np.pi * bins * RATE / seg * 0.06 / SPEED_OF_SOUND_M_S
    assert measured == pytest.approx(float(np.mean(np.sin(kd) / kd)), abs=0.04)


def test_the_direct_path_carries_the_geometric_delay() -> None:
    """A source on the pair's axis: the far mic hears it 6 cm / c later (2.8 samples)."""
    h = RoomRenderer(Room(rt60_s=0.3, critical_distance_m=100.0), PAIR_6CM).rir(1.0, 180.0)
    spectra = np.fft.rfft(h[:, :256], axis=1)
    freqs = np.fft.rfftfreq(256, 1 / RATE)
    band = (freqs > 200) & (freqs < 3000)
    phase = np.unwrap(np.angle(spectra[1, band] / spectra[0, band]))
    delay_s = -np.polyfit(2 * np.pi * freqs[band], phase, 1)[0]
    assert delay_s == pytest.approx(0.06 / SPEED_OF_SOUND_M_S, rel=0.05)


def test_a_seed_gives_the_same_room_and_another_seed_another() -> None:
    a = RoomRenderer(ROOM, SQUARE_4, seed=5).rir(4.0, 30.0)
    assert np.array_equal(a, RoomRenderer(ROOM, SQUARE_4, seed=5).rir(4.0, 30.0))
    assert not np.array_equal(a, RoomRenderer(ROOM, SQUARE_4, seed=6).rir(4.0, 30.0))


def test_kuttruffs_critical_distance() -> None:
    assert critical_distance_m(280.0, 0.8) == pytest.approx(1.5, abs=0.05)
