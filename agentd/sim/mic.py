"""Simulated microphone: plays a Scenario (espeak-ng speech over sox noise).

Same interface as AlsaCapture (`start(on_frame)`, `close()`, `stats`, `progress`,
`state`). It owns the conversation clock while it runs: each frame it advances the
linked SimSpeaker one period and mixes the speaker's output back in at `echo_db` /
`echo_delay_ms` (acoustic echo). Run as a device (`start()`), it hands the speaker to
the speaker's own clock when the script ends or the mic is closed, so a reply still
playing then is played out; a caller stepping `run()` itself keeps the timeline.
Between turns it waits for the agent's reply to finish (or starts the next turn
`barge_in_after_ms` into the reply). Real-time paced or as fast as consumed.
Each turn is said with its pauses (`agentd.sim.visitor`: commas, sentence ends,
hesitations `|` / `<pause 700>`, or a recorded `wav`); `spans` holds the ground truth of
every turn on the frame clock: onset, every pause inside it, its true end.
Faults for tests: `inject_stall`, `inject_xrun`, `inject_device_lost`.
With a `room` (a RoomRenderer: the profile has a mic array) it is the array: every turn
is heard through the room from its `distance_m` and the room tone is diffuse, the loop
gets the channels' mix as `pcm` and the mics as `AudioChunk.array`, as from AlsaCapture.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from agentd.audio import dsp
from agentd.audio.device_thread import DeviceStats, OnLink, report
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.events import LinkState, now_ms
from agentd.sim.room import RoomRenderer, room_noise, room_turn
from agentd.sim.scenario import Scenario
from agentd.sim.speaker import SimSpeaker
from agentd.sim.visitor import RenderedTurn, render_turn, spoken, voice_bounds

__all__ = ["ONSET_DB", "SimMic", "SpeechSpan", "spoken"]

OnFrame = Callable[[AudioChunk], None]
NOISE_LOOP_MS = 7000  # rendered once and looped: sox costs ~30 ms per call
REPLY_TIMEOUT_MS = 8000  # no reply started by then: go on with the next turn
ONSET_DB = -45.0  # first 10 ms block above this is the true speech onset


@dataclass(frozen=True, slots=True)
class SpeechSpan:
    """Ground truth of one visitor turn on the mic's clock (monotonic ms)."""

    text: str
    start_ms: float  # the voice's onset
    end_ms: float  # the end of the rendered audio (espeak-ng's trailing silence included)
    voice_end_ms: float = 0.0  # the turn's true end: its last voiced 5 ms block
    pauses: tuple[tuple[float, float], ...] = ()  # (start, end) of each silence inside
    mid_sentence: tuple[bool, ...] = ()  # per pause: it falls inside a sentence


class SimMic:
    """Fake capture device driven by a scenario and linked to a SimSpeaker."""

    name = "capture"

    def __init__(
        self,
        scenario: Scenario,
        *,
        fmt: AudioFormat | None = None,
        period_ms: int = 20,
        speaker: SimSpeaker | None = None,
        realtime: bool = True,
        echo_db: float | None = None,
        echo_delay_ms: float = 40.0,
        on_link: OnLink | None = None,
        speech: list[bytes] | None = None,
        room: RoomRenderer | None = None,
    ) -> None:
        from agentd.sim.speech import render_noise

        self.scenario = scenario
        self.format = fmt or AudioFormat(16000)
        self.period_ms = period_ms
        self.speaker = speaker
        self.realtime = realtime
        self.stats = DeviceStats()
        self.state = LinkState.CONNECTED
        self.spans: list[SpeechSpan] = []
        self.finished = threading.Event()
        self._on_link = on_link
        self._echo_gain = dsp.db_to_gain(echo_db) if echo_db is not None else 0.0
        self._echo_delay = self.format.bytes_for_ms(echo_delay_ms)
        self._echo_line = bytearray()
        self._period = self.format.bytes_for_ms(period_ms)
        rate = self.format.rate_hz
        self._noise = (
            render_noise(NOISE_LOOP_MS, rate, scenario.noise_db)
            if scenario.noise_db > -200
            else bytes(self.format.bytes_for_ms(NOISE_LOOP_MS))
        )
        self._speech = (
            [_recorded_as_is(pcm, self.format) for pcm in speech]
            if speech
            else [render_turn(t, self.format) for t in scenario.turns]
        )
        self.room = room
        self._frame_fmt = self.format  # what frames() yields: mono, or the array's mics
        if room is not None:
            self._frame_fmt = AudioFormat(self.format.rate_hz, room.array.channels)
            self._noise = room_noise(room, NOISE_LOOP_MS, scenario.noise_db)
            self._speech = [
                replace(r, pcm=room_turn(room, r.pcm, t.distance_m, t.azimuth_deg))
                for r, t in zip(self._speech, scenario.turns, strict=False)
            ]
        self._frame_period = self._frame_fmt.bytes_for_ms(period_ms)
        self._faults: deque[tuple[str, float]] = deque()
        self._fault_started = False
        self.t0_ms = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def progress(self) -> int:
        return self.stats.frames

    # --- faults -----------------------------------------------------------------------

    def inject_stall(self, duration_ms: float) -> None:
        """Stop delivering frames (time still passes) for `duration_ms`."""
        self._faults.append(("stall", duration_ms))

    def inject_xrun(self, lost_ms: float = 60.0) -> None:
        """Lose `lost_ms` of audio as an overrun would; counted in stats.xruns."""
        self._faults.append(("xrun", lost_ms))

    def inject_device_lost(self, seconds: float) -> None:
        """The device vanishes for `seconds`, then is reopened (stats.reopens)."""
        self._faults.append(("lost", seconds * 1000))

    # --- running ----------------------------------------------------------------------

    def start(self, on_frame: OnFrame) -> None:
        if self._thread is not None:
            raise RuntimeError("sim mic already started")
        self._thread = threading.Thread(
            target=self.run,
            args=(on_frame,),
            kwargs={"hand_over": True},
            name="sim-mic",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def run(
        self, on_frame: OnFrame, max_ms: float | None = None, *, hand_over: bool = False
    ) -> None:
        """Deliver frames until the scenario ends (+ tail), `max_ms`, or close().

        `hand_over`: then let the speaker play on its own clock (same timeline and pace),
        as a device does; without it the caller owns what happens to the speaker after.
        """
        # One clock at a time: the mic drives the speaker from here, continuing its
        # timeline if it was already playing on its own.
        resume_at = self.speaker.stop_clock() if self.speaker is not None else None
        try:
            self._deliver(on_frame, max_ms, resume_at)
        finally:
            if hand_over and self.speaker is not None:
                self.speaker.start_clock(realtime=self.realtime)
            self.finished.set()

    def _deliver(self, on_frame: OnFrame, max_ms: float | None, resume_at: float | None) -> None:
        t0 = self.t0_ms = max(now_ms(), resume_at or 0.0)
        wall0 = time.monotonic()
        scheduled = deque(self.scenario.faults)
        for index, clean in enumerate(self.frames()):
            at = t0 + index * self.period_ms
            if self._stop.is_set() or (max_ms is not None and at - t0 >= max_ms):
                break
            while scheduled and scheduled[0].at_ms <= at - t0:
                fault = scheduled.popleft()
                self._faults.append((fault.kind, float(fault.duration_ms)))
            if self.realtime:
                delay = wall0 + (index + 1) * self.period_ms / 1000 - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
            frame, mics = clean, None
            if self.room is not None:
                mics, frame = clean, dsp.to_mono(clean, self._frame_fmt.channels)
            echo = self._echo(at, len(frame))
            if echo:  # the kiosk's own speaker: a near source, the same at every mic
                frame = dsp.mix(frame, echo)
                mics = mics and dsp.mix(mics, _upmixed(echo, self._frame_fmt.channels))
            if self.speaker is not None:
                self.speaker.record_mic(frame, at)
            if self._fault_blocks():
                continue
            self.stats.frames += len(frame) // self.format.bytes_per_frame
            array = AudioChunk(mics, self._frame_fmt, at) if mics else None
            on_frame(AudioChunk(frame, self.format, at, array))

    def _fault_blocks(self) -> bool:
        """Apply the current injected fault; True = this frame is not delivered."""
        if not self._faults:
            return False
        kind, left = self._faults[0]
        if not self._fault_started:
            self._fault_started = True
            if kind == "xrun":
                self.stats.xruns += 1
            elif kind == "lost":
                self.state = LinkState.DISCONNECTED
                report(self._on_link, self.name, self.state, "sim device lost")
        left -= self.period_ms
        if left > 0:
            self._faults[0] = (kind, left)
            return True
        self._faults.popleft()
        self._fault_started = False
        if kind == "lost":
            self.stats.reopens += 1
            self.state = LinkState.CONNECTED
            report(self._on_link, self.name, self.state, "sim device back")
        return True

    def _echo(self, at: float, size: int) -> bytes:
        """The speaker's output reaching the mic now (mono, `size` bytes), b"" if none;
        advances the linked speaker one period either way."""
        if self.speaker is None:
            return b""
        played = self.speaker.advance(at)
        if not self._echo_gain:
            return b""
        played = played or bytes(self._period)
        if not self._echo_line:
            self._echo_line = bytearray(self._echo_delay)
        self._echo_line += played
        echo = bytes(self._echo_line[:size])
        del self._echo_line[:size]
        if not any(echo):
            return b""
        return dsp.apply_gain(echo, self._echo_gain)

    def frames(self) -> Iterator[bytes]:
        """The mic signal, one period at a time (noise, speech turns, waits, tail)."""
        clock = 0.0  # ms since the first frame, same offsets as run()'s `at - t0`
        noise_pos = 0

        def noise() -> bytes:
            nonlocal noise_pos
            size = self._frame_period
            if noise_pos + size > len(self._noise):
                noise_pos = 0
            chunk = self._noise[noise_pos : noise_pos + size]
            noise_pos += size
            return chunk

        reply_started: float | None = None
        for i, turn in enumerate(self.scenario.turns):
            if turn.barge_in_after_ms > 0 and reply_started is not None:
                while clock < reply_started + turn.barge_in_after_ms:
                    yield noise()
                    clock += self.period_ms
            else:
                for _ in range(int(turn.pause_before_ms // self.period_ms)):
                    yield noise()
                    clock += self.period_ms
            rendered = self._speech[i]
            speech = rendered.pcm
            at = self.t0_ms + clock
            self.spans.append(
                SpeechSpan(
                    turn.visitor,
                    at + _onset_offset_ms(speech, self._frame_fmt),
                    at + self._frame_fmt.duration_ms(len(speech)),
                    at + rendered.voice_end_ms,
                    tuple((at + a, at + b) for a, b in rendered.pauses),
                    rendered.mid_sentence,
                )
            )
            for k in range(0, len(speech), self._frame_period):
                part = speech[k : k + self._frame_period]
                part += bytes(self._frame_period - len(part))
                yield dsp.mix(noise(), part)
                clock += self.period_ms
            reply_started = None
            waited = 0.0
            next_barges = i + 1 < len(self.scenario.turns) and (
                self.scenario.turns[i + 1].barge_in_after_ms > 0
            )
            if self.speaker is None:
                continue
            while waited < REPLY_TIMEOUT_MS:
                if self.speaker.is_playing and reply_started is None:
                    reply_started = clock
                    if next_barges:
                        break
                if reply_started is not None and not self.speaker.is_playing:
                    break
                yield noise()
                clock += self.period_ms
                waited += self.period_ms
        for _ in range(int(self.scenario.tail_ms // self.period_ms)):
            yield noise()


def _upmixed(mono: bytes, channels: int) -> bytes:
    """The same signal on every channel, interleaved."""
    import numpy as np

    return np.repeat(np.frombuffer(mono, dtype="<i2"), channels).tobytes()


def _onset_offset_ms(speech: bytes, fmt: AudioFormat) -> float:
    block = fmt.bytes_for_ms(10)
    for k in range(0, len(speech) - block, block):
        if dsp.energy_db(dsp.mean_square(speech[k : k + block])) > ONSET_DB:
            return fmt.duration_ms(k)
    return 0.0


def _recorded_as_is(pcm: bytes, fmt: AudioFormat) -> RenderedTurn:
    """Speech handed in by the caller: one breath, its bounds measured."""
    start, end = voice_bounds(pcm, fmt)
    return RenderedTurn(pcm, start, end, (), ())
