"""AudioFormat: every PCM buffer in agentd is signed 16-bit little-endian at a known rate."""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_WIDTH_BYTES = 2  # S16_LE everywhere: what webrtcvad, AssemblyAI and pcm_* TTS use


@dataclass(frozen=True, slots=True)
class AudioFormat:
    rate_hz: int
    channels: int = 1

    @property
    def bytes_per_frame(self) -> int:
        return SAMPLE_WIDTH_BYTES * self.channels

    def bytes_for_ms(self, ms: float) -> int:
        return int(self.rate_hz * ms / 1000) * self.bytes_per_frame

    def frames_for_ms(self, ms: float) -> int:
        return int(self.rate_hz * ms / 1000)

    def duration_ms(self, nbytes: int) -> float:
        return nbytes / self.bytes_per_frame / self.rate_hz * 1000.0

    @property
    def bytes_per_s(self) -> int:
        return self.rate_hz * self.bytes_per_frame


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """One buffer of PCM with its format and the capture time of its first sample.

    `pcm` is what the whole daemon hears (mono). `array`, from a capture device with a
    mic array, is the same span of time as the array's raw mics (interleaved, its own
    format's channels), for the near-field gate's channel agreement; None otherwise.
    """

    pcm: bytes
    fmt: AudioFormat
    at_ms: float
    array: AudioChunk | None = None

    @property
    def duration_ms(self) -> float:
        return self.fmt.duration_ms(len(self.pcm))
