"""VAD gate: only speech (plus pre-roll) leaves the kiosk; webrtcvad with hysteresis.

`process(frame, at_ms)` is pure and fast (no I/O, no clock): it re-frames input to the
VAD frame length, opens when N of the last M frames are voiced, replays >= 300 ms of
pre-roll so the onset is never clipped, closes after K unvoiced frames plus a hangover,
marks too-short utterances, and cuts utterances at the maximum length.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from agentd.audio import dsp
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.config.sections_audio import VadConfig
from agentd.events import SpeechEnded, SpeechStarted, VoicedAudio

GateEvent = SpeechStarted | VoicedAudio | SpeechEnded
VAD_RATES = (8000, 16000, 32000, 48000)  # the only rates webrtcvad accepts
VAD_FRAME_MS = (10, 20, 30)  # the only frame lengths webrtcvad accepts
NOISE_RISE = 1.002  # noise-floor tracker: instant fall, ~0.4 dB/s rise at 50 frames/s
ABSOLUTE_FLOOR = (32768.0 * 10 ** (-70 / 20)) ** 2  # -70 dBFS: digital silence is no floor
TAIL_MS = 5  # a voiced frame whose last 5 ms are under the floor "ends quiet"


class VadGate:
    """Turns a stream of mono frames into SpeechStarted / VoicedAudio / SpeechEnded."""

    def __init__(self, config: VadConfig, rate_hz: int = 16000, frame_ms: int = 20) -> None:
        if rate_hz not in VAD_RATES or frame_ms not in VAD_FRAME_MS:
            raise ValueError(f"webrtcvad needs rate in {VAD_RATES}, frame in {VAD_FRAME_MS}")
        import webrtcvad

        self._vad: Any = webrtcvad.Vad(config.aggressiveness)
        self.config = config
        self.format = AudioFormat(rate_hz)
        self.frame_ms = frame_ms
        self._frame_bytes = self.format.bytes_for_ms(frame_ms)
        self._pending = b""
        self._pending_at_ms = 0.0
        self._window: deque[bool] = deque(maxlen=config.start_window_frames)
        preroll_frames = -(-config.preroll_ms // frame_ms)  # ceil
        self._preroll: deque[bytes] = deque(maxlen=preroll_frames)
        self._hangover_frames = -(-config.hangover_ms // frame_ms)
        self._open = False
        self._muted = False
        self._opened_at_ms = 0.0
        self._onset_ms = 0.0
        self._last_voiced_ms = 0.0
        self._unvoiced_run = 0
        self._hangover_left = -1  # >= 0 while sending the hangover tail
        self._noise = 0.0  # tracked noise floor (mean square)
        self._margin = 10.0 ** (config.energy_margin_db / 10.0)
        self._peak_drop = 10.0 ** (-config.peak_drop_db / 10.0)
        self._peak = 0.0  # loudest voiced frame of the current utterance
        self._tail_bytes = self.format.bytes_for_ms(min(TAIL_MS, frame_ms))
        self._floor = 0.0  # the energy a frame must beat to count as voiced
        self.last_voiced = False  # exposed for the barge-in detector

    @property
    def is_open(self) -> bool:
        return self._open

    def reset(self) -> None:
        """Forget everything heard so far, without events (e.g. the agent's own voice)."""
        self._open = False
        self._pending = b""
        self._preroll.clear()
        self._window.clear()
        self._hangover_left = -1
        self._unvoiced_run = 0
        self._peak = 0.0
        self.last_voiced = False

    def set_muted(self, muted: bool, at_ms: float = 0.0) -> list[GateEvent]:
        """Mute stops audio reaching the gate; an open utterance is closed now."""
        events: list[GateEvent] = []
        if muted and self._open:
            events.append(self._close(at_ms or self._last_voiced_ms))
        self._muted = muted
        self._pending = b""
        self._preroll.clear()
        self._window.clear()
        return events

    def is_speech(self, frame: bytes) -> bool:
        """Raw VAD decision for one frame of exactly frame_ms (used by barge-in too)."""
        return bool(self._vad.is_speech(frame, self.format.rate_hz))

    def process(self, chunk: AudioChunk) -> list[GateEvent]:
        """Feed one captured mono chunk; return the gate's events."""
        if self._muted:
            return []
        pcm, at_ms = chunk.pcm, chunk.at_ms
        if not self._pending:
            self._pending_at_ms = at_ms
        self._pending += pcm
        events: list[GateEvent] = []
        size = self._frame_bytes
        offset = 0
        while len(self._pending) - offset >= size:
            frame = self._pending[offset : offset + size]
            frame_at = self._pending_at_ms + self.format.duration_ms(offset)
            self._step(frame, frame_at, events)
            offset += size
        self._pending = self._pending[offset:]
        self._pending_at_ms += self.format.duration_ms(offset)
        return events

    def _voiced(self, frame: bytes) -> bool:
        """webrtcvad's verdict, confirmed by energy above the tracked noise floor.

        webrtcvad alone keeps calling the quiet tail after a word "speech" for 100 ms or
        more in room noise; that tail delays the local endpoint (and ForceEndpoint) by as
        much, which the visitor hears as latency. The floor falls instantly and rises
        slowly, so it follows the room, not the speech.
        """
        energy = dsp.mean_square(frame)
        if self._noise == 0.0 or energy < self._noise:
            self._noise = max(energy, ABSOLUTE_FLOOR)
        else:
            self._noise *= NOISE_RISE
        # A word's decaying tail far below the utterance's own peak is not speech any
        # more: scaling the floor with the talker's level ends the utterance on time for
        # loud and quiet visitors alike.
        floor = max(self._noise * self._margin, self._peak * self._peak_drop)
        self._floor = floor
        voiced = energy > floor and self.is_speech(frame)
        if voiced:
            self._peak = max(self._peak, energy)
        return voiced

    def _ends_quiet(self, frame: bytes) -> bool:
        """The frame's last TAIL_MS are under the floor: the voice stopped inside it.

        Lets the STT link send a word's end one period sooner; a dip inside a word
        (a stop consonant) costs only a few milliseconds of zero padding there.
        """
        return dsp.mean_square(frame[-self._tail_bytes :]) <= self._floor

    def _step(self, frame: bytes, at_ms: float, events: list[GateEvent]) -> None:
        voiced = self._voiced(frame)
        self.last_voiced = voiced
        self._window.append(voiced)
        if not self._open:
            self._preroll.append(frame)
            if sum(self._window) >= self.config.start_voiced_frames:
                self._start(at_ms, events)
            return
        chunk = AudioChunk(frame, self.format, at_ms)
        events.append(VoicedAudio(chunk, voiced, voiced and self._ends_quiet(frame)))
        if voiced:  # speech resumed, also during the hangover
            self._unvoiced_run = 0
            self._hangover_left = -1
            self._last_voiced_ms = at_ms + self.frame_ms
        else:
            self._unvoiced_run += 1
        end_ms = at_ms + self.frame_ms
        if end_ms - self._opened_at_ms >= self.config.max_utterance_s * 1000:
            events.append(self._close(end_ms))
            return
        if self._hangover_left < 0 and self._unvoiced_run >= self.config.stop_unvoiced_frames:
            self._hangover_left = self._hangover_frames
        if self._hangover_left >= 0:
            if self._hangover_left == 0:
                events.append(self._close(end_ms))
            else:
                self._hangover_left -= 1

    def _start(self, at_ms: float, events: list[GateEvent]) -> None:
        frames = list(self._preroll)
        preroll = b"".join(frames)
        start_ms = at_ms + self.frame_ms - self.format.duration_ms(len(preroll))
        # The onset is the first voiced frame in the deciding window.
        first = len(self._window) - list(self._window).index(True)
        self._onset_ms = at_ms + self.frame_ms - first * self.frame_ms
        self._open = True
        self._opened_at_ms = start_ms
        self._last_voiced_ms = at_ms + self.frame_ms
        self._unvoiced_run = 0
        self._hangover_left = -1
        self._preroll.clear()
        events.append(SpeechStarted(at_ms + self.frame_ms, preroll))

    def _close(self, at_ms: float) -> SpeechEnded:
        duration = max(0.0, self._last_voiced_ms - self._onset_ms)
        self._open = False
        self._peak = 0.0
        self._window.clear()
        self._hangover_left = -1
        self._unvoiced_run = 0
        return SpeechEnded(
            at_ms,
            duration,
            too_short=duration < self.config.min_speech_ms,
            voice_end_ms=self._last_voiced_ms,
        )

    @property
    def voice_end_ms(self) -> float:
        """End of the last voiced frame of the current/last utterance."""
        return self._last_voiced_ms

    @property
    def onset_ms(self) -> float:
        """Estimated true onset of the current/last utterance (first voiced frame)."""
        return self._onset_ms
