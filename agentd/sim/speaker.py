"""Simulated speaker: same interface as AlsaPlayback, consumes audio on a clock.

While a SimMic runs, the mic advances it one period per frame (so echo, barge-in and
the conversation share one timeline, real-time or faster). Whenever no mic drives it -
used alone, or once the mic's script has ended or the mic was closed - it plays on its
own clock (`start_clock()`), as an ALSA device plays on the sound card's clock whatever
the capture side does: a reply still playing when the visitor stopped talking finishes.
The own clock continues the same timeline (its first period starts where the last one
ended) and pace (real time, or on a virtual clock as fast as audio comes). Exactly one
of the two advances it at a time: the mic stops the own clock before it starts.
It records everything played and writes a stereo WAV (left = what the mic heard, right
= what the agent said) for listening back.
"""

from __future__ import annotations

import os
import threading
import wave
from collections import deque

from agentd.audio import dsp
from agentd.audio.alsa_playback import OnFirstAudio
from agentd.audio.device_thread import DeviceStats, log
from agentd.audio.format import AudioFormat
from agentd.audio.reference import ReferenceTap
from agentd.events import LinkState, now_ms


class SimSpeaker:
    """Fake playback device: queue, gain, cancel/pause, reference tap, recording."""

    name = "playback"

    def __init__(
        self,
        fmt: AudioFormat | None = None,
        period_ms: int = 20,
        on_first_audio: OnFirstAudio | None = None,
        wav_path: str = "",
    ) -> None:
        self.format = fmt or AudioFormat(16000)
        self.period_ms = period_ms
        self.reference = ReferenceTap(self.format)
        self.stats = DeviceStats()
        self.state = LinkState.CONNECTED
        self.on_first_audio = on_first_audio
        self.wav_path = wav_path
        self.played: list[tuple[float, bytes]] = []  # (at_ms, audible chunk)
        self.first_audio_ms: list[float] = []
        self.silent_since_ms: float | None = None  # set by cancel()/pause()
        self._mic_track: list[tuple[float, bytes]] = []
        self._period = self.format.bytes_for_ms(period_ms)
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._lock = threading.Lock()
        self._gain = 1.0
        self._paused = False
        self._new_reply = True
        self._heard_until_ms = 0.0  # end of the last period actually played
        self._next_at_ms: float | None = None  # where the next period starts (timeline)
        # Wakes the own clock (audio written, resumed, clock stopped) and wait_drained().
        self._changed = threading.Condition(self._lock)
        self._clock: threading.Thread | None = None
        self._clock_stop = threading.Event()
        self._closed = False

    @property
    def progress(self) -> int:
        return self.stats.frames

    @property
    def is_playing(self) -> bool:
        with self._lock:
            return self._queued > 0 and not self._paused

    def set_volume(self, gain: float) -> None:
        self._gain = min(2.0, max(0.0, gain))

    def write(self, pcm: bytes) -> None:
        """Queue audio; audio written to an idle speaker starts sounding now.

        Like an ALSA device whose buffer ran empty: the first sample is written to the
        device at once (AlsaPlayback reports on_first_audio when it hands it to the
        PCM), not at the next tick of the simulated clock, so voice-to-voice measured
        on the simulation means the same as on the Pi.
        """
        if not pcm:
            return
        with self._lock:
            starts = self._queued == 0 and not self._paused and self._new_reply
            self._new_reply = False if starts else self._new_reply
            self._queue.append(pcm)
            self._queued += len(pcm)
            self._changed.notify_all()
        if starts:
            at_ms = now_ms()
            self.first_audio_ms.append(at_ms)
            if self.on_first_audio is not None:
                self.on_first_audio(at_ms)

    def cancel(self) -> None:
        with self._lock:
            self._queue.clear()
            self._queued = 0
            self._paused = False
            self._new_reply = True
            self.silent_since_ms = self._heard_until_ms
            self._changed.notify_all()
        self.reference.push_silence_after(self._heard_until_ms)

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            self.silent_since_ms = self._heard_until_ms
        self.reference.push_silence_after(self._heard_until_ms)

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._changed.notify_all()

    def wait_drained(self, timeout_s: float | None = None) -> bool:
        """Block until everything written has been played (or cancelled); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._queued == 0, timeout_s)

    def advance(self, at_ms: float) -> bytes:
        """Play the period starting at `at_ms`; returns what left the speaker (or b"")."""
        with self._lock:
            # Nothing (more) leaves the speaker from here: the period that did play
            # stays in the reference, its echo is still on its way to the mic.
            self._heard_until_ms = max(self._heard_until_ms, at_ms)
            self._next_at_ms = at_ms + self.period_ms
            if self._paused or not self._queue:
                return b""
            out = bytearray()
            while self._queue and len(out) < self._period:
                head = self._queue.popleft()
                need = self._period - len(out)
                if len(head) > need:
                    self._queue.appendleft(head[need:])
                    head = head[:need]
                out += head
            self._queued -= len(out)
            if not self._queue:
                self._new_reply = True  # ran empty: the next write starts a new reply
                self._changed.notify_all()
            # A period the device started is played whole: what the queue lacked is
            # silence. Keeps the reference (labelled per period) sample-aligned with the
            # audio that left the speaker, as ALSA's own timeline is (heard_at per write).
            out += bytes(self._period - len(out))
            self._heard_until_ms = at_ms + self.format.duration_ms(len(out))
        chunk = dsp.apply_gain(bytes(out[: len(out) - len(out) % 2]), self._gain)
        self.stats.frames += len(chunk) // self.format.bytes_per_frame
        self.played.append((at_ms, chunk))
        self.reference.push(chunk, at_ms)
        return chunk

    def record_mic(self, frame: bytes, at_ms: float) -> None:
        """The SimMic reports what it captured, for the conversation WAV."""
        self._mic_track.append((at_ms, frame))

    def start_clock(self, realtime: bool = True) -> None:
        """Consume audio on an own thread from where the timeline stands; idempotent.

        `realtime`: one period per period of wall time. Otherwise a virtual clock: queued
        audio plays back to back, and while there is none time passes in real time (so a
        reply written later does not start in the past). A closed speaker stays stopped.
        """
        with self._lock:
            if self._closed or self._clock is not None:
                return
            at_ms = self._first_own_period(now_ms())
            self._clock_stop = threading.Event()
            self._clock = threading.Thread(
                target=self._tick,
                args=(at_ms, realtime, self._clock_stop),
                name="sim-speaker",
                daemon=True,
            )
            self._clock.start()

    def stop_clock(self) -> float | None:
        """Stop the own clock (a SimMic takes over) once it no longer advances; returns
        where the next period starts on the timeline (None before the first period)."""
        with self._lock:
            clock, self._clock = self._clock, None
            self._clock_stop.set()
            self._changed.notify_all()
        if clock is not None and clock is not threading.current_thread():
            clock.join()
        with self._lock:
            return self._next_at_ms

    def _first_own_period(self, now: float) -> float:
        """Continue the timeline where the last period ended; after an idle gap (a device
        left alone), skip the time that passed but stay on the same period grid."""
        at_ms = self._next_at_ms
        if at_ms is None:
            return now
        if now - at_ms >= self.period_ms:
            at_ms += (now - at_ms) // self.period_ms * self.period_ms
        return at_ms

    def _tick(self, at_ms: float, realtime: bool, stop: threading.Event) -> None:
        while not stop.is_set():
            if realtime:
                delay = (at_ms - now_ms()) / 1000
                if delay > 0 and stop.wait(delay):
                    return
            else:
                with self._changed:
                    self._changed.wait_for(
                        lambda: stop.is_set() or (self._queued > 0 and not self._paused),
                        self.period_ms / 1000,
                    )
                if stop.is_set():
                    return
            self.advance(at_ms)
            at_ms += self.period_ms

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the clock (if any) and write the WAV; idempotent."""
        with self._lock:
            self._closed = True
        self.stop_clock()
        if self.wav_path:
            try:
                self.write_wav(self.wav_path)
            except OSError as exc:
                log.warning("cannot write speaker_wav %s: %s", self.wav_path, exc)
            self.wav_path = ""

    def write_wav(self, path: str) -> None:
        tracks = [self._mic_track, self.played]
        starts = [t for track in tracks for t, _ in track[:1]]
        if not starts:
            return
        t0 = min(starts)
        left, right = (_place(track, t0, self.format) for track in tracks)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with wave.open(path, "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(self.format.rate_hz)
            wav.writeframes(dsp.interleave(left, right))


def _place(track: list[tuple[float, bytes]], t0: float, fmt: AudioFormat) -> bytes:
    out = bytearray()
    for at_ms, chunk in track:
        offset = fmt.bytes_for_ms(at_ms - t0)
        if offset > len(out):
            out += bytes(offset - len(out))
        out[offset : offset + len(chunk)] = chunk
    return bytes(out)
