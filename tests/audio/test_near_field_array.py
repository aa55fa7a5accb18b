"""Near-field gate with a mic array (issue 14, item 2): the channels' agreement rejects a
talker across the room that is as loud at the array as a visitor, which the level gate
alone passes; a visitor at 0.7 m is still a turn. Audio from the multi-channel room model
(`agentd.sim.room`: direct path per mic + diffuse reverberant tail, RT60 0.8 s,
critical distance 1.5 m)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from agentd.audio.array_agreement import band_coherence
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.near_field import NearFieldGate, calibrate
from agentd.audio.vad_gate import VadGate
from agentd.config.sections_audio import VadConfig
from agentd.config.sections_engagement import NearFieldConfig
from agentd.events import SpeechStarted
from agentd.sim.lobby import ROOM_TONE_DBFS, VISITOR_DBFS, at_level
from agentd.sim.room import (
    PAIR_6CM,
    SQUARE_4,
    MicArray,
    Placed,
    Room,
    RoomRenderer,
    capture_chunks,
    mix_scene,
)
from agentd.sim.speech import render_noise, render_speech

FMT = AudioFormat(16000)
VISITOR_LINE = "Excuse me, where can I find the meeting rooms?"
LOUD_LINE = "Hey Tom, over here, we are leaving now!"  # a raised voice across the lobby
TV_LINE = "In other news tonight, the city council approved the new budget."
ROOM = Room(rt60_s=0.8, critical_distance_m=1.5)


def dry(text: str, voice: str = "en-us") -> np.ndarray:
    return at_level(render_speech(text, 16000, voice), VISITOR_DBFS)


def level_config(min_coherence: float) -> NearFieldConfig:
    """The level thresholds as calibrated for a visitor at 1 m (as in test_near_field)."""
    visitor = dry(VISITOR_LINE).astype("<i2").tobytes()
    result = calibrate(visitor, render_noise(3000, 16000, ROOM_TONE_DBFS), FMT)
    return NearFieldConfig(
        min_level_dbfs=result.min_level_dbfs,
        min_snr_db=result.min_snr_db,
        min_coherence=min_coherence,
    )


def scene(array: MicArray, *placed: Placed, seed: int = 3) -> list[AudioChunk]:
    renderer = RoomRenderer(ROOM, array, seed=seed)
    return capture_chunks(mix_scene(renderer, list(placed), 6000, ROOM_TONE_DBFS), 16000)


def gate_through(chunks: list[AudioChunk], near: NearFieldGate) -> list[object]:
    """As Engagement.front_end feeds it: observe every chunk, filter the VAD's events."""
    gate, out = VadGate(VadConfig(), 16000, 20), []
    for chunk in chunks:
        near.observe(chunk.pcm, chunk.array)
        out += near.filter(gate.process(chunk), chunk.at_ms)
    return out


def starts(out: list[object]) -> list[SpeechStarted]:
    return [e for e in out if isinstance(e, SpeechStarted)]


@pytest.mark.parametrize("array", [SQUARE_4, PAIR_6CM], ids=lambda a: a.name)
@pytest.mark.parametrize(
    ("line", "voice", "distance_m"),
    [(LOUD_LINE, "en-gb", 4.0), (TV_LINE, "en-gb", 5.0), (LOUD_LINE, "en-us+f3", 3.5)],
    ids=["raised-voice-4m", "tv-5m", "raised-voice-3.5m"],
)
def test_a_loud_talker_across_the_room_passes_the_level_but_not_the_agreement(
    array: MicArray, line: str, voice: str, distance_m: float
) -> None:
    chunks = scene(array, Placed(dry(line, voice), distance_m, VISITOR_DBFS, 1000, 40.0))
    level_only = NearFieldGate(level_config(0.0), FMT)
    assert len(starts(gate_through(chunks, level_only))) >= 1  # the level gate is fooled
    near = NearFieldGate(level_config(0.4), FMT)
    assert starts(gate_through(chunks, near)) == []
    first = near.rejections[0]
    assert first.reason == "agreement"
    assert first.coherence is not None and first.coherence < 0.4
    assert first.level_dbfs >= level_only.threshold_dbfs()  # as loud as a visitor


@pytest.mark.parametrize("array", [SQUARE_4, PAIR_6CM], ids=lambda a: a.name)
@pytest.mark.parametrize("voice", ["en-us", "en-gb+f2", "en-us+m7"])
@pytest.mark.parametrize("azimuth", [0.0, 55.0])
def test_a_visitor_at_70_cm_is_a_turn(array: MicArray, voice: str, azimuth: float) -> None:
    chunks = scene(array, Placed(dry(VISITOR_LINE, voice), 0.7, VISITOR_DBFS, 1000, azimuth))
    near = NearFieldGate(level_config(0.4), FMT)
    out = gate_through(chunks, near)
    assert len(starts(out)) == 1 and near.rejections == []
    assert near.last_coherence is not None and near.last_coherence > 0.55


def test_a_visitor_starting_while_a_loud_bystander_talks_still_gets_the_turn() -> None:
    bystander = Placed(dry(LOUD_LINE + " " + LOUD_LINE, "en-gb"), 4.0, VISITOR_DBFS - 4, 500)
    visitor = Placed(dry(VISITOR_LINE), 0.7, VISITOR_DBFS + 2, 2200)
    near = NearFieldGate(level_config(0.4), FMT)
    found = starts(gate_through(scene(SQUARE_4, bystander, visitor), near))
    assert near.rejections and near.rejections[0].reason == "agreement"
    assert len(found) == 1 and found[0].at_ms >= 2200  # the visitor's, not the bystander's


def test_one_channel_capture_is_the_level_gate_alone() -> None:
    """No `array` on the chunks (a mono mic): nothing is computed, the level decides."""
    chunks = scene(SQUARE_4, Placed(dry(LOUD_LINE, "en-gb"), 4.0, VISITOR_DBFS, 1000))
    mono = [AudioChunk(c.pcm, c.fmt, c.at_ms) for c in chunks]
    near = NearFieldGate(level_config(0.4), FMT)
    assert len(starts(gate_through(mono, near))) >= 1
    assert near.agreement_checks == 0


def test_coherence_follows_distance_and_costs_little() -> None:
    """Monotone in distance (the room model's DRR), and one check stays ~ms."""
    renderer = RoomRenderer(ROOM, SQUARE_4, seed=5)
    signal = dry(VISITOR_LINE)
    values = []
    for distance in (0.5, 1.0, 2.0, 4.0):
        channels = mix_scene(renderer, [Placed(signal, distance, VISITOR_DBFS)], 2500, -58.0)
        pcm = b"".join(c.array.pcm for c in capture_chunks(channels, 16000) if c.array)
        values.append(band_coherence(pcm[: 4 * 2 * 16000 // 2], 4, 16000))
    assert values == sorted(values, reverse=True), values
    assert values[0] is not None and values[0] > 0.8 and values[-1] is not None
    assert values[-1] < 0.3
    window = pcm[: int(0.5 * 16000) * 8]  # the longest onset window: 500 ms of 4 channels
    started = time.process_time()
    for _ in range(20):
        band_coherence(window, 4, 16000)
    assert (time.process_time() - started) / 20 < 0.02  # per onset candidate, not per chunk


def test_the_rejection_is_reported_with_its_coherence() -> None:
    """The near_field_rejected event (MQTT, journal) says why: agreement, and the value."""
    from agentd.config.sections_engagement import EngagementConfig
    from agentd.conversation.engagement import Engagement, EngagementState

    events: list[tuple[str, dict[str, object]]] = []

    class Reporter:
        def engagement_changed(self, state: EngagementState, reason: str) -> None:
            events.append(("engagement", {"state": state.value}))

        def event(self, name: str, payload: dict[str, object]) -> None:
            events.append((name, payload))

    near_config = level_config(0.4)
    engagement = Engagement(
        EngagementConfig(near_field=near_config),
        Reporter(),
        near_field=NearFieldGate(near_config, FMT),
    )
    gate = VadGate(VadConfig(), 16000, 20)
    admitted = []
    for chunk in scene(SQUARE_4, Placed(dry(LOUD_LINE, "en-gb"), 4.0, VISITOR_DBFS, 1000)):
        admitted += engagement.front_end(chunk, gate.process(chunk), idle=True)
    assert admitted == [] and not engagement.engaged
    rejected = [p for name, p in events if name == "near_field_rejected"]
    assert rejected and rejected[0]["reason"] == "agreement"
    coherence = rejected[0]["coherence"]
    assert isinstance(coherence, float) and coherence < 0.4


def test_calibration_sits_between_the_room_and_a_visitor_at_one_metre() -> None:
    """From the array's recordings of a visitor at 1 m and the quiet room (as
    `agentd test-hardware` records them): rejects 4 m, accepts 0.7 m."""
    from agentd.audio.array_agreement import calibrate_agreement
    from agentd.sim.room import room_noise, room_turn

    renderer = RoomRenderer(ROOM, SQUARE_4, seed=9)
    dry_visitor = dry("Hello, could you tell me where the meeting rooms are?")
    visitor = room_turn(renderer, dry_visitor.astype("<i2").tobytes(), 1.0, 0.0)
    room = room_noise(renderer, 3000, ROOM_TONE_DBFS)
    threshold = calibrate_agreement(visitor, room, 4, 16000)
    assert 0.3 <= threshold <= 0.5
    near_far = []
    for distance in (0.7, 4.0):
        chunks = scene(SQUARE_4, Placed(dry(LOUD_LINE, "en-gb"), distance, VISITOR_DBFS, 1000))
        near = NearFieldGate(level_config(threshold), FMT)
        near_far.append(len(starts(gate_through(chunks, near))))
    assert near_far[0] >= 1 and near_far[1] == 0


@pytest.mark.parametrize(
    ("distance_m", "min_coherence", "engaged"),
    [(0.7, 0.4, True), (5.0, 0.4, False), (5.0, 0.0, True)],
    ids=["visitor", "tv-with-agreement", "tv-level-only"],
)
def test_a_loud_wake_word_from_across_the_room_is_ignored(
    distance_m: float, min_coherence: float, engaged: bool
) -> None:
    """A TV saying "Okay Nabu" as loud as a visitor: the detector fires, the array says
    it is not at the kiosk (wake_words_far) - the level alone would engage; the same
    words at 0.7 m engage."""
    pytest.importorskip("pymicro_wakeword")
    from agentd.config.sections_engagement import EngagementConfig
    from agentd.conversation.engagement import engagement_from_config

    class Quiet:
        def engagement_changed(self, state: object, reason: str) -> None: ...

        def event(self, name: str, payload: dict[str, object]) -> None: ...

    config = EngagementConfig(modes=("wake_word",), near_field=level_config(min_coherence))
    engagement = engagement_from_config(config, Quiet(), 16000)
    wake = dry("Okay Nabu", "en-us")
    gate = VadGate(VadConfig(), 16000, 20)
    for chunk in scene(SQUARE_4, Placed(wake, distance_m, VISITOR_DBFS, 1000, 70.0)):
        engagement.front_end(chunk, gate.process(chunk), True)
    stats = engagement.stats
    assert stats.wake_words + stats.wake_words_far == 1  # the detector heard it either way
    assert engagement.engaged is engaged
    assert stats.wake_words_far == (0 if engaged else 1)
