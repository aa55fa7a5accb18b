"""Config sections for the audio front end: capture, playback, VAD gate, barge-in, sim."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from agentd.config._fields import section, setting
from agentd.errors import ConfigError

# Mic positions (x, y, z) in mm, in the order of the array's channels. The 4-mic boards
# (ReSpeaker 4-Mic Array for Pi, ReSpeaker USB Mic Array v2.0): four mics on a square of
# side 45.7 mm, counter-clockwise from +x+y, as in public DOA configs for these boards
# (agentd.sim.room.SQUARE_4). The 2-mic HAT: two mics about 60 mm apart along x (an
# estimate: measure your board; agentd.sim.room.PAIR_6CM). The front (array_front_deg)
# is an azimuth in this x-y plane, 0 = +x.
ARRAY_PRESETS_MM: dict[str, tuple[tuple[float, float, float], ...]] = {
    "respeaker-4mic": (
        (22.85, 22.85, 0.0), (-22.85, 22.85, 0.0), (-22.85, -22.85, 0.0), (22.85, -22.85, 0.0)
    ),
    "respeaker-2mic": ((-30.0, 0.0, 0.0), (30.0, 0.0, 0.0)),
}  # fmt: skip
ARRAY_COORD_MAX_MM = 250.0  # a small array on a kiosk; beyond this a typo (m for mm?)
ARRAY_MIN_SPACING_MM = 5.0  # two mics closer than this are the same mic (a duplicate row)


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    backend: Literal["alsa", "sim"] = setting("alsa", doc="alsa = real device; sim = scenario mic.")
    device: str = setting("default", doc="ALSA PCM name, e.g. 'plughw:CARD=ArrayUAC10,DEV=0'.")
    rate_hz: int = setting(16000, choices=(8000, 16000, 32000, 48000))
    channels: int = setting(1, min=1, max=16)
    channel: int = setting(-1, min=-1, max=15, doc="-1 = mix all channels, else pick one.")
    array_channels: tuple[int, ...] = setting(
        (),
        doc="The channels that are an array's raw mics, passed on beside the mono mix "
        "for engagement.near_field.min_coherence; empty = all channels when channels "
        ">= 2 (a processed or playback-reference channel must not be among them).",
    )
    array_geometry: str = setting(
        "",
        choices=("", "respeaker-4mic", "respeaker-2mic", "custom"),
        doc="Where the array's mics are (in array_channels order), for the wake word's front "
        "beam (engagement.wake_word.input); custom = array_positions_mm; empty = unknown "
        "(no beam).",
    )
    array_positions_mm: tuple[tuple[float, ...], ...] = setting(
        (),
        doc="With array_geometry = custom: [x, y] or [x, y, z] in mm per mic, in "
        "array_channels order.",
    )
    array_front_deg: float = setting(
        0.0,
        min=-180.0,
        max=180.0,
        doc="Where visitors stand, as an azimuth in the array's x-y plane (0 = +x): the "
        "wake word's beam looks there.",
    )
    period_ms: int = setting(20, choices=(10, 20, 30), doc="One VAD frame per period.")
    reopen_max_backoff_s: float = setting(10.0, min=0.5, max=300.0)

    def validate(self, path: str) -> None:
        for i, ch in enumerate(self.array_channels):
            if not 0 <= ch < self.channels:
                raise ConfigError(
                    f"{path}.array_channels[{i}]",
                    "not a capture channel",
                    ch,
                    f"0 to {self.channels - 1}",
                )
        if len(self.array_channels) == 1:
            raise ConfigError(
                f"{path}.array_channels",
                "an array needs two mics or more",
                list(self.array_channels),
            )
        self._validate_geometry(path)

    def _validate_geometry(self, path: str) -> None:
        key = f"{path}.array_geometry"
        if self.array_positions_mm and self.array_geometry != "custom":
            raise ConfigError(
                f"{path}.array_positions_mm",
                "only used with array_geometry = 'custom'",
                self.array_geometry,
            )
        if not self.array_geometry:
            return
        mics = len(self.mic_channels())
        if mics < 2:
            raise ConfigError(key, "needs a mic array (channels >= 2)", self.array_geometry)
        if self.array_geometry == "custom":
            _check_positions(self.array_positions_mm, f"{path}.array_positions_mm")
        positions = self.mic_positions_mm()
        if len(positions) != mics:
            raise ConfigError(
                key,
                f"{len(positions)} mic positions for {mics} array channels",
                self.array_geometry,
                "one position per array_channels entry",
            )

    def mic_channels(self) -> tuple[int, ...]:
        """The array's mics, () when the capture is not an array."""
        if self.array_channels:
            return self.array_channels
        return tuple(range(self.channels)) if self.channels >= 2 else ()

    def mic_positions_mm(self) -> tuple[tuple[float, float, float], ...]:
        """The array's mic positions (x, y, z) in mm, () when the geometry is unknown."""
        if self.array_geometry == "custom":
            return _as_xyz(self.array_positions_mm)
        return ARRAY_PRESETS_MM.get(self.array_geometry, ())


def _as_xyz(positions: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, float, float], ...]:
    return tuple((p[0], p[1], p[2] if len(p) == 3 else 0.0) for p in positions)


def _check_positions(positions: tuple[tuple[float, ...], ...], key: str) -> None:
    """Custom mic positions: 2 or 3 coordinates each, within bounds, no two the same."""
    if len(positions) < 2:
        raise ConfigError(key, "an array needs two mic positions or more", len(positions))
    for i, p in enumerate(positions):
        if len(p) not in (2, 3):
            raise ConfigError(f"{key}[{i}]", "expected [x, y] or [x, y, z] in mm", list(p))
        if any(abs(c) > ARRAY_COORD_MAX_MM for c in p):
            raise ConfigError(
                f"{key}[{i}]",
                "out of range",
                list(p),
                f"-{ARRAY_COORD_MAX_MM:g} to {ARRAY_COORD_MAX_MM:g} mm",
            )
    full = _as_xyz(positions)
    for i, a in enumerate(full):
        for j in range(i):
            if math.dist(a, full[j]) < ARRAY_MIN_SPACING_MM:
                raise ConfigError(
                    f"{key}[{i}]",
                    f"closer than {ARRAY_MIN_SPACING_MM:g} mm to mic {j}",
                    list(positions[i]),
                )


@dataclass(frozen=True, slots=True)
class PlaybackConfig:
    backend: Literal["alsa", "sim"] = "alsa"
    device: str = "default"
    rate_hz: int = setting(
        16000,
        choices=(8000, 16000, 22050, 24000, 32000, 44100, 48000),
        doc="ElevenLabs streams pcm_<rate>; 44100 needs its Pro plan.",
    )
    period_ms: int = setting(20, min=5, max=100)
    buffer_periods: int = setting(4, min=2, max=32, doc="Device buffer = periods x period_ms.")
    volume: float = setting(1.0, min=0.0, max=2.0, doc="Software gain, 1.0 = unchanged.")


@dataclass(frozen=True, slots=True)
class VadConfig:
    aggressiveness: int = setting(2, min=0, max=3, doc="webrtcvad mode, 3 = most aggressive.")
    start_voiced_frames: int = setting(6, min=1, max=50, doc="N voiced of the last M opens.")
    start_window_frames: int = setting(10, min=1, max=50)
    stop_unvoiced_frames: int = setting(
        15,
        min=1,
        max=200,
        doc="Unvoiced run that closes the gate. Closing sends STT ForceEndpoint, so "
        "frames x period + hangover is the local endpointing delay (300 ms by default).",
    )
    energy_margin_db: float = setting(
        9.0,
        min=0.0,
        max=40.0,
        doc="A voiced frame must also be this far above the tracked noise floor; "
        "0 = webrtcvad alone.",
    )
    peak_drop_db: float = setting(
        30.0,
        min=10.0,
        max=80.0,
        doc="Within an utterance a frame this far below its loudest frame is a "
        "word's decaying tail, not speech (ends the turn on time).",
    )
    preroll_ms: int = setting(400, min=300, max=2000, doc="Replayed when the gate opens.")
    hangover_ms: int = setting(0, min=0, max=3000, doc="Extra open time after the stop run.")
    min_speech_ms: int = setting(250, min=0, max=5000)
    max_utterance_s: float = setting(30.0, min=1.0, max=300.0)


@dataclass(frozen=True, slots=True)
class BargeInConfig:
    enabled: bool = True
    mode: Literal["reference", "aec"] = setting(
        "reference",
        doc="reference = echo-aware gate on the played signal; aec = trust a hardware AEC mic.",
    )
    min_speech_ms: int = setting(300, min=60, max=2000, doc="Shorter = backchannel, ignored.")
    echo_margin_db: float = setting(
        4.0, min=0.0, max=40.0, doc="Mic must exceed predicted echo + noise by this."
    )
    resume_after_false_s: float = setting(1.5, min=0.3, max=10.0)
    react_ms: int = setting(
        40, min=20, max=500, doc="Visitor-dominant speech that pauses playback (suspected)."
    )
    fast_margin_db: float = setting(
        10.0,
        min=0.0,
        max=40.0,
        doc="A frame this far above the predicted echo pauses playback at once, voiced or "
        "not (fricative onsets); confirmation still needs min_speech_ms of VAD speech.",
    )
    echo_prior_db: float = setting(
        -6.0,
        min=-40.0,
        max=20.0,
        doc="Assumed speaker->mic coupling until learned (first ~0.5 s after start-up; "
        "kept between replies). -6 dB = the loudest coupling the bench guarantees.",
    )
    echo_filter: bool = setting(
        True,
        doc="Adaptive echo filter (numpy FDAF) on the played reference; once converged, "
        "barge-in is judged on the echo-cancelled residual (hears weak onsets under the "
        "echo). Off = energy echo model only (no numpy).",
    )
    reverb_rt60_ms: float = setting(
        450.0,
        min=100.0,
        max=2000.0,
        doc="Room reverberation time: how long played audio keeps counting as possible "
        "echo once the delay is locked. Longer = safer in a live room, slower barge-in.",
    )


@dataclass(frozen=True, slots=True)
class SimAudioConfig:
    scenario: str = setting("", doc="Scenario TOML for the simulated mic.")
    speaker_wav: str = setting("", doc="Write what the simulated speaker played here.")
    realtime: bool = setting(True, doc="Pace the simulated mic in real time.")
    echo_db: float = setting(
        -200.0, min=-200.0, max=0.0, doc="Speaker-to-mic echo coupling; -200 = none."
    )
    echo_delay_ms: float = setting(40.0, min=0.0, max=500.0)


@dataclass(frozen=True, slots=True)
class AudioConfig:
    capture: CaptureConfig = section(CaptureConfig)
    playback: PlaybackConfig = section(PlaybackConfig)
    vad: VadConfig = section(VadConfig)
    barge_in: BargeInConfig = section(BargeInConfig)
    sim: SimAudioConfig = section(SimAudioConfig)
