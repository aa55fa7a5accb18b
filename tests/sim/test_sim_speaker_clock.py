"""The simulated speaker plays on its own clock whenever no SimMic drives it.

A reply still playing (or written) after the mic's script ended must be played out, once,
on the same timeline the mic drove: what an ALSA device does on the sound card's clock.
"""

from __future__ import annotations

import itertools
import struct
import threading
import time

import pytest

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.events import now_ms
from agentd.sim.mic import SimMic
from agentd.sim.scenario import scenario_from_dict
from agentd.sim.speaker import SimSpeaker

FMT = AudioFormat(16000)
PERIOD_MS = 20
PERIOD = FMT.bytes_for_ms(PERIOD_MS)
SILENT_NOISE_DB = -300.0  # below the mic's -200 dB cut-off: no sox noise rendered


def _ramp(ms: int) -> bytes:
    """Distinct non-zero samples, so a period played twice or skipped shows."""
    n = FMT.bytes_for_ms(ms) // 2
    return struct.pack(f"<{n}h", *((i % 30000) + 1 for i in range(n)))


def _mic(speaker: SimSpeaker, *, realtime: bool, tail_ms: int = 100) -> SimMic:
    scenario = scenario_from_dict(
        {
            "noise_db": SILENT_NOISE_DB,
            "tail_ms": tail_ms,
            "turn": [{"visitor": "Hello.", "pause_before_ms": 100}],
        }
    )
    # Pre-rendered "speech" (silence will do): the test is about clocks, not espeak-ng.
    return SimMic(
        scenario, speaker=speaker, realtime=realtime, speech=[bytes(FMT.bytes_for_ms(200))]
    )


def _audible(speaker: SimSpeaker) -> list[tuple[float, bytes]]:
    return [(at, chunk) for at, chunk in speaker.played if any(chunk)]


def _assert_played_once_in_order(speaker: SimSpeaker, reply: bytes) -> None:
    """Every sample of `reply` left the speaker exactly once, in order, on a period grid
    with no gap and no overlap (a period played by both clocks would show here)."""
    played = _audible(speaker)
    audio = b"".join(chunk for _, chunk in played)
    assert audio.rstrip(b"\0") == reply.rstrip(b"\0")
    assert len(audio) == -(-len(reply) // PERIOD) * PERIOD  # last period padded, once
    starts = [at for at, _ in played]
    steps = {round(b - a, 6) for a, b in itertools.pairwise(starts)}
    assert steps == {float(PERIOD_MS)}, steps


@pytest.mark.timeout(30)
def test_reply_written_after_the_script_ended_is_played_and_waitable() -> None:
    first_audio: list[float] = []
    speaker = SimSpeaker(FMT, PERIOD_MS, on_first_audio=first_audio.append)
    mic = _mic(speaker, realtime=False)
    delivered: list[float] = []
    mic.start(lambda chunk: delivered.append(chunk.at_ms))
    try:
        assert mic.finished.wait(20)
        reply = _ramp(500)
        written_at = now_ms()
        speaker.write(reply)
        assert speaker.wait_drained(10)
        _assert_played_once_in_order(speaker, reply)
        # It continues the mic's timeline on its grid; it does not start in the past.
        first_at = _audible(speaker)[0][0]
        mic_end = delivered[-1] + PERIOD_MS
        assert first_at >= mic_end
        assert (first_at - mic_end) % PERIOD_MS == pytest.approx(0.0, abs=1e-6)
        # first_audio semantics unchanged: once per reply, when it is written to an idle device.
        assert len(first_audio) == 1 and speaker.first_audio_ms == first_audio
        assert first_audio[0] >= written_at
        assert not speaker.is_playing
    finally:
        mic.close()
        speaker.close()


@pytest.mark.timeout(30)
def test_reply_playing_when_the_mic_closes_finishes_in_real_time() -> None:
    speaker = SimSpeaker(FMT, PERIOD_MS)
    mic = _mic(speaker, realtime=True, tail_ms=5000)
    reply = _ramp(1000)
    some_played = threading.Event()

    def on_frame(chunk: AudioChunk) -> None:
        if not speaker.played and not speaker.is_playing:
            speaker.write(reply)
        elif len(speaker.played) >= 10:
            some_played.set()

    mic.start(on_frame)
    try:
        assert some_played.wait(10)
        mic.close()  # the mic stops mid-reply: the speaker's own clock takes over
        closed = time.monotonic()
        left_ms = FMT.duration_ms(len(reply)) - PERIOD_MS * len(_audible(speaker))
        assert left_ms > 5 * PERIOD_MS  # the hand-over happened mid-reply
        assert speaker.is_playing
        assert speaker.wait_drained(10)
        # Real-time pace: the rest cannot drain faster than it lasts (one period of slack:
        # the own clock plays its first period as soon as it takes over).
        assert (time.monotonic() - closed) * 1000 >= left_ms - 2 * PERIOD_MS
        _assert_played_once_in_order(speaker, reply)
    finally:
        mic.close()
        speaker.close()


@pytest.mark.timeout(30)
def test_a_mic_takes_over_from_the_own_clock_without_overlap() -> None:
    speaker = SimSpeaker(FMT, PERIOD_MS)
    reply = _ramp(600)
    speaker.write(reply)
    speaker.start_clock(realtime=True)
    deadline = time.monotonic() + 10
    while len(_audible(speaker)) < 5:  # a condition, polled: the clock thread appends
        assert time.monotonic() < deadline
        time.sleep(0.005)
    mic = _mic(speaker, realtime=False, tail_ms=0)
    mic.run(lambda _chunk: None)  # stepped by the caller: it stops the own clock first
    assert speaker.wait_drained(0)
    _assert_played_once_in_order(speaker, reply)


def test_stepped_run_leaves_the_speaker_to_its_caller() -> None:
    speaker = SimSpeaker(FMT, PERIOD_MS)
    mic = _mic(speaker, realtime=False, tail_ms=0)
    mic.run(lambda _chunk: None)
    assert mic.finished.is_set()
    assert not any(t.name == "sim-speaker" for t in threading.enumerate())
    speaker.write(_ramp(100))
    assert speaker.is_playing and not speaker.wait_drained(0)
    speaker.advance(now_ms())  # the caller steps it, as the audio benchmarks do
    assert len(_audible(speaker)) == 1


def test_a_closed_speaker_does_not_start_its_clock_again() -> None:
    speaker = SimSpeaker(FMT, PERIOD_MS)
    speaker.close()
    speaker.start_clock(realtime=False)  # a mic closed after the speaker hands over
    assert not any(t.name == "sim-speaker" for t in threading.enumerate())
    speaker.close()  # idempotent
