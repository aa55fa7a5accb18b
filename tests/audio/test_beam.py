"""The wake word's front beam (agentd.audio.beam): passes the front, suppresses the diffuse
field by the theory's amount, streams exactly as the batch filter, and is configured
from `audio.capture.array_geometry` with clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agentd.audio import beam
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.config._loader import build
from agentd.config.sections_audio import CaptureConfig
from agentd.config.sections_engagement import EngagementConfig, WakeWordConfig
from agentd.conversation.engagement import wake_beam_for
from agentd.errors import ConfigError
from agentd.sim.room import SQUARE_4, diffuse_noise

RATE = 16000
SQUARE = SQUARE_4.positions_m
LAG = beam.FRAME - beam.HOP  # the beam's latency in samples


def plane_wave(
    azimuth_deg: float, seconds: float = 4.0, seed: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """White noise arriving from `azimuth_deg` at the square's mics: (centre, (samples, mics)).

    Built independently of beam.steering: mic p hears the wave (p . u) / c before the
    centre (u toward the source), applied as an exact fractional delay in the spectrum."""
    n = int(seconds * RATE)
    source = np.random.default_rng(seed).standard_normal(n) * 3000.0
    spectrum = np.fft.rfft(source)
    freqs = np.fft.rfftfreq(n, 1.0 / RATE)
    az = math.radians(azimuth_deg)
    mics = []
    for x, y, _ in SQUARE:
        lead_s = (x * math.cos(az) + y * math.sin(az)) / 343.0
        mics.append(np.fft.irfft(spectrum * np.exp(2j * np.pi * freqs * lead_s), n))
    return source, np.stack(mics, axis=1)


def band_power(x: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / RATE)
    return float(spectrum[(freqs >= lo_hz) & (freqs < hi_hz)].sum())


@pytest.mark.parametrize("kind", ["superdirective", "delay_and_sum"])
def test_a_plane_wave_from_the_front_passes_at_unit_gain(kind: str) -> None:
    weights = (
        beam.superdirective_weights(SQUARE, RATE)
        if kind == "superdirective"
        else beam.delay_and_sum_weights(SQUARE, RATE)
    )
    assert np.allclose(beam.response(weights, SQUARE, RATE, 0.0), 1.0, atol=1e-9)
    source, mics = plane_wave(0.0)
    out = beam.beam_batch(mics, weights)
    expected = source[: len(out) - LAG]
    error = out[LAG:] - expected
    assert np.sqrt(np.mean(error**2)) < 0.03 * np.sqrt(np.mean(expected**2))
    for lo, hi in ((200, 1000), (1000, 3000), (3000, 7000)):  # every band, not just overall
        ratio_db = 10 * math.log10(band_power(out[LAG:], lo, hi) / band_power(expected, lo, hi))
        assert abs(ratio_db) < 0.5, (lo, hi, ratio_db)


def test_a_wave_from_the_side_is_attenuated_and_the_front_is_where_the_config_says() -> None:
    weights = beam.superdirective_weights(SQUARE, RATE)
    source, side = plane_wave(90.0)
    out = beam.beam_batch(side, weights)[LAG:]
    reference = source[: len(out)]
    assert 10 * math.log10(band_power(out, 1000, 3000) / band_power(reference, 1000, 3000)) < -9
    turned = beam.beam_batch(side, beam.superdirective_weights(SQUARE, RATE, azimuth_deg=90.0))
    passed = turned[LAG:]
    assert (
        abs(10 * math.log10(band_power(passed, 500, 3000) / band_power(reference, 500, 3000))) < 0.5
    )


def test_diffuse_noise_is_attenuated_by_the_theoretical_directivity() -> None:
    """The diffuse field (generated as in Habets & Gannot 2007 by the room model, not by
    the beam's own coherence code) loses what w^H G w predicts, band by band; the
    square's superdirective beam gains 5-6 dB over 500-3000 Hz where delay-and-sum
    gains little below 1 kHz."""
    noise = diffuse_noise(SQUARE_4, 8 * RATE, RATE, seed=5).T * 3000.0
    freqs = beam.bin_freqs(RATE)
    for weights, band, least_db in (
        (beam.superdirective_weights(SQUARE, RATE), (500, 3000), 4.5),
        (beam.delay_and_sum_weights(SQUARE, RATE), (300, 800), 0.0),
    ):
        out = beam.beam_batch(noise, weights)[LAG:]
        inside = (freqs >= band[0]) & (freqs < band[1])
        theory_db = -10 * math.log10(
            float(np.mean(beam.diffuse_gain(weights, SQUARE, RATE)[inside]))
        )
        mic_power = float(np.mean([band_power(noise[:, m], *band) for m in range(4)]))
        measured_db = -10 * math.log10(band_power(out, *band) / mic_power)
        assert abs(measured_db - theory_db) < 1.0, (band, measured_db, theory_db)
        assert theory_db >= least_db
    sd = beam.superdirective_weights(SQUARE, RATE)
    ds = beam.delay_and_sum_weights(SQUARE, RATE)
    low = (freqs >= 300) & (freqs < 800)
    assert np.mean(beam.diffuse_gain(sd, SQUARE, RATE)[low]) < 0.5 * np.mean(
        beam.diffuse_gain(ds, SQUARE, RATE)[low]
    )


def test_regularisation_bounds_the_white_noise_gain() -> None:
    """mu keeps the beam from amplifying uncorrelated mic noise (and mismatch) at low
    frequencies, where an unregularised superdirective beam explodes."""
    freqs = beam.bin_freqs(RATE)
    low = (freqs >= 150) & (freqs < 400)
    wng = 10 * np.log10(beam.white_noise_gain(beam.superdirective_weights(SQUARE, RATE)))
    raw = 10 * np.log10(beam.white_noise_gain(beam.superdirective_weights(SQUARE, RATE, mu=1e-6)))
    assert wng[low].min() > -6.0
    assert raw[low].min() < -15.0


@pytest.mark.parametrize("chunk", [320, 250, 160, 1000])
def test_streaming_equals_the_batch_filter(chunk: int) -> None:
    weights = beam.superdirective_weights(SQUARE, RATE)
    rng = np.random.default_rng(1)
    pcm = np.round(rng.standard_normal((RATE, 4)) * 3000).astype("<i2")
    streaming = beam.FixedBeam(weights, RATE)
    out = b"".join(streaming.process(pcm[i : i + chunk].tobytes()) for i in range(0, RATE, chunk))
    got = np.frombuffer(out, dtype="<i2")
    batch = np.clip(np.round(beam.beam_batch(pcm.astype(np.float64), weights)), -32768, 32767)
    assert len(got) == RATE - RATE % beam.HOP
    assert np.array_equal(got, batch[: len(got)].astype("<i2"))
    assert streaming.latency_ms == 10.0


def test_weights_for_another_bin_count_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        beam.FixedBeam(np.ones((100, 4), dtype=complex), RATE)


def capture(**keys: object) -> CaptureConfig:
    return build(CaptureConfig, dict(keys), "audio.capture")


def test_presets_and_custom_positions_validate() -> None:
    four = capture(channels=4, array_geometry="respeaker-4mic", array_front_deg=90.0)
    assert len(four.mic_positions_mm()) == 4 and four.array_front_deg == 90.0
    usb = capture(
        channels=6, channel=0, array_channels=[1, 2, 3, 4], array_geometry="respeaker-4mic"
    )
    assert usb.mic_positions_mm() == four.mic_positions_mm()
    custom = capture(
        channels=2, array_geometry="custom", array_positions_mm=[[-29, 0], [29, 0, 1.5]]
    )
    assert custom.mic_positions_mm() == ((-29.0, 0.0, 0.0), (29.0, 0.0, 1.5))
    assert capture(channels=4).mic_positions_mm() == ()


GEO, POS, FRONT = (
    "audio.capture.array_geometry",
    "audio.capture.array_positions_mm",
    "audio.capture.array_front_deg",
)
SQ = "respeaker-4mic"


@pytest.mark.parametrize(
    ("keys", "key", "words"),
    [
        ({"array_geometry": SQ}, GEO, "needs a mic array"),
        ({"channels": 2, "array_geometry": SQ}, GEO, "4 mic positions for 2"),
        ({"channels": 4, "array_geometry": "square"}, GEO, "not an allowed value"),
        ({"channels": 2, "array_positions_mm": [[0, 0], [10, 0]]}, POS, "only used with"),
        ({"channels": 2, "array_geometry": "custom"}, POS, "two mic positions"),
        ({"channels": 2, "array_geometry": "custom", "array_positions_mm": [[0, 0], [0.06, 0]]}, f"{POS}[1]", "closer than"),  # noqa: E501
        ({"channels": 2, "array_geometry": "custom", "array_positions_mm": [[0, 0], [600, 0]]}, f"{POS}[1]", "out of range"),  # noqa: E501
        ({"channels": 2, "array_geometry": "custom", "array_positions_mm": [[0, 0], [60]]}, f"{POS}[1]", "[x, y]"),  # noqa: E501
        ({"channels": 3, "array_geometry": "custom", "array_positions_mm": [[0, 0], [60, 0]]}, GEO, "2 mic positions for 3"),  # noqa: E501
        ({"channels": 4, "array_geometry": SQ, "array_front_deg": 200.0}, FRONT, "out of range"),
    ],
)  # fmt: skip
def test_bad_geometry_is_a_config_error_naming_the_key(
    keys: dict[str, object], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        capture(**keys)
    assert caught.value.key_path == key
    assert words in str(caught.value)


def test_the_detector_hears_the_beam_only_with_a_known_geometry_and_input_beam() -> None:
    config = EngagementConfig(modes=("wake_word",))
    geometry = capture(channels=4, array_geometry="respeaker-4mic")
    made = wake_beam_for(config, geometry, RATE)
    assert made is not None and made.channels == 4
    assert wake_beam_for(config, capture(channels=4), RATE) is None  # geometry unknown
    assert wake_beam_for(config, capture(), RATE) is None  # a mono mic
    mix = EngagementConfig(modes=("wake_word",), wake_word=WakeWordConfig(input="mix"))
    assert wake_beam_for(mix, geometry, RATE) is None
    # and the beam it makes looks where array_front_deg says: a wave from 90 deg passes
    turned = wake_beam_for(
        config, capture(channels=4, array_geometry="respeaker-4mic", array_front_deg=90.0), RATE
    )
    assert turned is not None
    _, side = plane_wave(90.0, seconds=1.0)
    pcm = np.round(side).astype("<i2")
    heard = b"".join(turned.process(pcm[i : i + 320].tobytes()) for i in range(0, len(pcm), 320))
    front = beam.FixedBeam(beam.superdirective_weights(SQUARE, RATE), RATE)
    missed = b"".join(front.process(pcm[i : i + 320].tobytes()) for i in range(0, len(pcm), 320))
    level = [
        10 * math.log10(band_power(np.frombuffer(x, "<i2").astype(float), 500, 3000))
        for x in (heard, missed)
    ]
    assert level[0] - level[1] > 6.0


class RecordingDetector:
    """Stands in for WakeWordDetector: records what it hears and when."""

    def __init__(self) -> None:
        self.heard: list[tuple[bytes, float]] = []

    def process(self, pcm: bytes, at_ms: float) -> None:
        self.heard.append((pcm, at_ms))


def test_front_end_feeds_the_detector_the_beam_and_the_gates_the_mix() -> None:
    from agentd.conversation.engagement import Engagement
    from tests.conversation.fakes import FakeEngagementReporter

    detector = RecordingDetector()
    front = beam.FixedBeam(beam.superdirective_weights(SQUARE, RATE), RATE)
    reference = beam.FixedBeam(beam.superdirective_weights(SQUARE, RATE), RATE)
    engagement = Engagement(
        EngagementConfig(modes=("wake_word",)),
        FakeEngagementReporter(),
        wake_word=detector,  # type: ignore[arg-type]
        wake_beam=front,
    )
    _, mics = plane_wave(60.0, seconds=0.2)
    pcm = np.round(mics).astype("<i2")
    mono, array = AudioFormat(RATE), AudioFormat(RATE, 4)
    for i in range(0, len(pcm), 320):
        part = pcm[i : i + 320]
        mix = np.round(part.mean(axis=1)).astype("<i2").tobytes()
        at = i / 16
        engagement.front_end(
            AudioChunk(mix, mono, at, AudioChunk(part.tobytes(), array, at)), [], True
        )
        expected = reference.process(part.tobytes())
        assert detector.heard[-1] == (expected, at - 10.0)  # the beam, on its own clock
        assert expected != mix
    engagement.front_end(AudioChunk(b"\0\0" * 320, mono, 500.0), [], True)  # no array: the mix
    assert detector.heard[-1] == (b"\0\0" * 320, 500.0)
