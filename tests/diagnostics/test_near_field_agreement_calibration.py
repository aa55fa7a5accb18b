"""The self-test calibrates a mic array's channel agreement (issue 14 item 2: "the
channels' agreement ... calibrated by `agentd test-hardware`"), on the simulator's
array mic (agentd/sim/room.py): the array's coherence over the quiet lead (the room) and
over a visitor's sentence at 0.7 m, the configured `min_coherence`'s margins, and a
recommended value that must let a visitor through the real VAD and near-field gates and
keep a talker 4 m away - as loud at the array - out, where the badly set value it
replaces does not. Without a sentence only the room is measured; a mono mic has no
agreement check at all."""

from __future__ import annotations

import io
import json
import logging
import wave
from pathlib import Path

import numpy as np
import pytest

from agentd.audio.format import AudioChunk
from agentd.audio.near_field import NearFieldGate
from agentd.audio.vad_gate import VadGate
from agentd.config import parse_config
from agentd.config.sections_audio import VadConfig
from agentd.config.sections_engagement import NearFieldConfig
from agentd.diagnostics.near_field_check import check_near_field, near_field_advice
from agentd.diagnostics.probe import Recording
from agentd.diagnostics.self_test import DeviceProbe, SelfTestService
from agentd.events import SpeechStarted
from agentd.gpio.diagnostics import test_hardware as run_hardware_check
from agentd.service.composition import BUILTIN_BACKENDS
from agentd.sim.devices import with_sim
from agentd.sim.lobby import ROOM_TONE_DBFS, VISITOR_DBFS
from agentd.sim.mic import SimMic
from agentd.sim.room import SQUARE_4, Placed, Room, RoomRenderer, mix_scene, to_interleaved_pcm
from agentd.sim.scenario import Scenario, ScenarioTurn
from agentd.sim.speech import render_noise
from tests.diagnostics.test_near_field_calibration import (
    FMT,
    LINE,
    SPEAKS_AT_MS,
    VOICE_MS,
    SimKiosk,
    kiosks,
    near_config,
    self_test,
    speech_at,
)

__all__ = ["kiosks"]  # the fixture, shared with the level's calibration tests
pytestmark = pytest.mark.timeout(90)
KEY = "engagement.near_field.min_coherence"
OTHER_VISITOR = "Hello, I have a parcel for the second floor, who can sign for it?"
LOUD_TALKER = "Hey Tom, over here, we are leaving now, are you coming?"


def array_room(seed: int) -> RoomRenderer:
    return RoomRenderer(Room(), SQUARE_4, seed=seed)


def turns_by_talker(near: NearFieldConfig, seed: int = 11) -> tuple[int, int]:
    """Turns the real VAD + near-field gates open for a visitor at 0.7 m (another line,
    another voice than the calibration's) and for a talker 4 m away, 60 degrees off,
    as loud at the array, over the lobby's room tone: (visitor's, far talker's)."""
    scenario = Scenario(
        "separation",
        (
            ScenarioTurn(OTHER_VISITOR, pause_before_ms=1500, distance_m=0.7),
            ScenarioTurn(LOUD_TALKER, pause_before_ms=2000, distance_m=4.0, azimuth_deg=60.0),
        ),
        noise_db=ROOM_TONE_DBFS,
        tail_ms=1500,
    )
    speech = [speech_at(VISITOR_DBFS, OTHER_VISITOR, "en-gb"), speech_at(VISITOR_DBFS, LOUD_TALKER)]
    mic = SimMic(scenario, realtime=False, speech=speech, room=array_room(seed))
    chunks: list[AudioChunk] = []
    mic.run(chunks.append)
    gate, vad, started = NearFieldGate(near, FMT), VadGate(VadConfig(), 16000, 20), []
    for chunk in chunks:
        gate.observe(chunk.pcm, chunk.array)
        events = gate.filter(vad.process(chunk), chunk.at_ms)
        started += [e.at_ms for e in events if isinstance(e, SpeechStarted)]
    visitor, far = mic.spans
    near_turns = sum(visitor.start_ms - 400 <= at <= visitor.end_ms for at in started)
    far_turns = sum(far.start_ms - 400 <= at <= far.end_ms for at in started)
    assert near_turns + far_turns == len(started), (started, mic.spans)
    return near_turns, far_turns


@pytest.mark.parametrize(
    ("badly_set", "said", "fails_with"),
    [
        (0.9, "the kiosk would ignore its visitors", (0, 0)),  # too strict: the visitor lost
        (0.12, "a talker across the lobby may pass", (1, 1)),  # too lax: the far talker in
    ],
)
async def test_a_sentence_at_0_7_m_calibrates_an_agreement_that_keeps_a_far_talker_out(
    kiosks: list[SimKiosk], badly_set: float, said: str, fails_with: tuple[int, int]
) -> None:
    config = near_config(min_coherence=badly_set)
    report = await self_test(kiosks, config, speech_at(VISITOR_DBFS), room=array_room(5),
                             voice_ms=VOICE_MS, prompt=lambda: None)  # fmt: skip
    near = report.near_field
    assert report.ok and near is not None and near.visitor_source == "spoken", report
    agreement = near.agreement
    assert agreement is not None and agreement.channels == 4, near
    room, visitor = agreement.room_coherence, agreement.visitor_coherence
    recommended = agreement.recommended_min_coherence
    assert room is not None and visitor is not None and recommended is not None, agreement
    # the room model's figures (docs/engagement.md): a diffuse room ~0.15, 0.7 m ~0.7
    assert room < 0.25 and visitor > 0.55, agreement
    assert room + 0.15 < recommended < visitor - 0.15, agreement
    assert agreement.min_coherence == badly_set
    assert agreement.visitor_margin == pytest.approx(visitor - badly_set, abs=0.011)
    assert agreement.room_margin == pytest.approx(badly_set - room, abs=0.011)
    advice = [r.advice for r in report.recommendations if r.key == KEY]
    assert len(advice) == 1 and said in advice[0], report.recommendations
    assert f"to {recommended} (now {badly_set})" in advice[0]

    # Through the real gates, with the level's calibrated thresholds: the badly set
    # value fails one talker or the other, the recommended one passes both.
    level, snr = near.recommended_min_level_dbfs, near.recommended_min_snr_db
    assert level is not None and snr is not None
    gate = NearFieldConfig(min_level_dbfs=level, min_snr_db=snr, min_coherence=badly_set)
    assert turns_by_talker(gate) == fails_with
    calibrated = NearFieldConfig(min_level_dbfs=level, min_snr_db=snr, min_coherence=recommended)
    assert turns_by_talker(calibrated) == (1, 0)
    assert turns_by_talker(calibrated, seed=12) == (1, 0)  # another room's reverb

    # reply, health and journal carry it beside the level's figures
    reply = report.to_dict()["near_field"]
    assert (
        isinstance(reply, dict) and reply["agreement"]["recommended_min_coherence"] == recommended
    )
    summary = report.summary()
    assert summary["near_field_visitor_coherence"] == visitor
    assert summary["near_field_room_coherence"] == room
    assert summary["near_field_coherence_margin"] == agreement.visitor_margin


async def test_a_well_set_agreement_gets_no_advice(kiosks: list[SimKiosk]) -> None:
    report = await self_test(kiosks, near_config(), speech_at(VISITOR_DBFS), room=array_room(6),
                             voice_ms=VOICE_MS)  # fmt: skip
    near = report.near_field
    assert near is not None and near.agreement is not None
    margins = (near.agreement.visitor_margin, near.agreement.room_margin)
    assert all(m is not None and m >= 0.1 for m in margins), near.agreement
    assert not [r for r in report.recommendations if r.key.startswith("engagement.")], report


@pytest.mark.parametrize("array", [True, False])
async def test_without_a_sentence_only_the_room(
    kiosks: list[SimKiosk], caplog: pytest.LogCaptureFixture, array: bool
) -> None:
    """MQTT `cmd/self_test`: nobody is asked to speak (a level may be given), so an array
    reports the room's coherence and nothing to calibrate; a mono mic reports none."""
    kiosk = SimKiosk(None, array_room(7) if array else None)
    kiosks.append(kiosk)
    service = SelfTestService(
        state=lambda: None,
        probe=lambda: DeviceProbe(kiosk.speaker, kiosk.attach, FMT),
        config=lambda: near_config(min_coherence=0.4),
    )
    with caplog.at_level(logging.INFO, logger="agentd.diagnostics"):
        report = await service.run(visitor_level_dbfs=VISITOR_DBFS)
    near = report.near_field
    assert near is not None and near.visitor_source == "provided", report
    line = next(r for r in caplog.records if r.getMessage().startswith("self-test"))
    assert getattr(line, "NEAR_FIELD_THRESHOLD_DBFS", None) == near.threshold_dbfs
    health = service.health()
    assert health is not None
    if not array:
        assert near.agreement is None and report.to_dict()["near_field"]["agreement"] is None  # type: ignore[index]
        assert health["near_field_room_coherence"] is None
        assert not [k for k in vars(line) if "COHERENCE" in k]
        return
    agreement = near.agreement
    assert agreement is not None and agreement.room_coherence is not None
    assert agreement.room_coherence < 0.25 and agreement.room_margin == pytest.approx(
        0.4 - agreement.room_coherence, abs=0.011
    )
    assert agreement.visitor_coherence is None and agreement.recommended_min_coherence is None
    assert "room only" in agreement.note
    assert health["near_field_room_coherence"] == agreement.room_coherence
    assert health["near_field_visitor_coherence"] is None
    assert getattr(line, "NEAR_FIELD_ROOM_COHERENCE", None) == agreement.room_coherence
    assert getattr(line, "NEAR_FIELD_MIN_COHERENCE", None) == 0.4
    assert not hasattr(line, "NEAR_FIELD_VISITOR_COHERENCE")  # None: not a journal field
    assert not [r for r in report.recommendations if r.key.startswith("engagement.")]


def room_recording(fan_dbfs: float | None, silent_mic: int | None = None) -> Recording:
    """600 ms of the lobby's diffuse room tone at the array (the self-test's quiet lead),
    with a fan 20 cm from the mics (steady broadband noise: near field, coherent)."""
    renderer = array_room(8)
    fan = render_noise(600, 16000, -20.0)
    sources = [] if fan_dbfs is None else [
        Placed(np.frombuffer(fan, "<i2").astype(np.float64), 0.2, fan_dbfs)
    ]  # fmt: skip
    channels = mix_scene(renderer, sources, 600.0, ROOM_TONE_DBFS)
    if silent_mic is not None:
        channels[silent_mic] = 0.0
    array = to_interleaved_pcm(channels)
    mono = to_interleaved_pcm(channels.mean(axis=0, keepdims=True))
    return Recording(mono, bytes(len(mono)), 16000, 600.0, array=array, array_channels=4)


def test_a_coherent_room_makes_the_check_useless_and_says_so() -> None:
    config = near_config()
    quiet = check_near_field(room_recording(None), config)
    assert quiet.agreement is not None and quiet.agreement.room_coherence is not None
    assert quiet.agreement.room_coherence < 0.25
    assert not near_field_advice(quiet, config)

    fan = check_near_field(room_recording(-45.0), config)  # 13 dB over the room tone
    assert fan.agreement is not None and fan.agreement.room_coherence is not None
    assert fan.agreement.room_coherence >= 0.6, fan.agreement
    advice = dict(near_field_advice(fan, config))
    assert "of no use" in advice["engagement.modes"] and "a fan" in advice["engagement.modes"]
    assert KEY in advice["engagement.modes"]


def test_a_silent_array_mic_is_named() -> None:
    config = parse_config({"audio": {"capture": {"channels": 6, "array_channels": [1, 2, 3, 4]}}})
    check = check_near_field(room_recording(None, silent_mic=2), config)
    assert check.agreement is not None and check.agreement.room_coherence is None
    assert check.agreement.silent_mics == (3,)  # the array's third mic: capture channel 3
    advice = dict(near_field_advice(check, config))
    assert "[3]" in advice["audio.capture.array_channels"]


def test_test_hardware_prints_the_coherence_line(tmp_path: Path) -> None:
    """The CLI path on a simulated 4-mic array: the visitor a recorded WAV at 0.7 m."""
    wav = tmp_path / "visitor.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(speech_at(VISITOR_DBFS, LINE))
    scenario = tmp_path / "calibration.toml"
    scenario.write_text(
        f'name = "calibration"\nnoise_db = {ROOM_TONE_DBFS}\ntail_ms = 30000\n'
        f'[[turn]]\nvisitor = "calibration line"\nwav = "{wav}"\ndistance_m = 0.7\n'
        f"pause_before_ms = {SPEAKS_AT_MS}\n"
    )
    config = parse_config({"audio": {"capture": {"backend": "sim", "channels": 4},
                                     "playback": {"backend": "sim"},
                                     "sim": {"scenario": str(scenario)}},
                           "engagement": {"near_field": {"min_coherence": 0.9}}})  # fmt: skip
    out = io.StringIO()
    rc = run_hardware_check(config, out, voice_s=VOICE_MS / 1000,
                            backends=with_sim(BUILTIN_BACKENDS))  # fmt: skip
    lines = out.getvalue().splitlines()
    assert rc == 0, lines
    level = next(i for i, line in enumerate(lines) if line.startswith("near-field:"))
    array = lines[level + 1]
    assert array.startswith("near-field array (4 mics): room coherence 0."), lines
    assert "gate min_coherence 0.9" in array and "visitor 0." in array and "(spoken)" in array
    assert "calibrated: min_coherence 0." in array, array
    advice = next(line for line in lines if line.startswith(f"ADVICE {KEY}:"))
    assert "would ignore its visitors" in advice, lines


async def test_daemon_self_test_over_mqtt_on_an_array_reports_the_room(tmp_path: Path) -> None:
    """The running kiosk with a 4-mic array profile: `cmd/self_test` through the real
    broker asks nobody to speak, so the reply's agreement has the room and no visitor;
    every earlier field stays, health adds the room's coherence."""
    from agentd.sim.harness import SimulatedKiosk
    from tests.e2e.conftest import FAST, write_scenario
    from tests.helpers.mosquitto import Mosquitto
    from tests.helpers.mqtt_clients import request

    broker = Mosquitto(tmp_path).start()
    turns = [{"visitor": "Hello there.", "reply": "Hello!", "pause_before_ms": 20000}]
    scenario = write_scenario(tmp_path / "s.toml", turns, tail_ms=20000)
    toml = (f'[device]\nid = "kiosk-array"\n[mqtt]\nenabled = true\nhost = "{broker.host}"\n'
            f"port = {broker.port}\nmax_backoff_s = 1.0\n"
            "[audio.capture]\nchannels = 4\n")  # fmt: skip
    kiosk = SimulatedKiosk(scenario, tmp_path / "out", profile=FAST, extra_toml=toml)
    try:
        service = await kiosk.start()
        await kiosk.wait_for(lambda: service.reporting.links["mqtt"].value == "connected", 10)
        level = json.dumps({"visitor_level_dbfs": -21.0})
        reply = await request(broker, "kiosk-array", "self_test", level, wait_s=15)
        health = service.reporting.health()
    finally:
        await kiosk.stop()
        broker.kill()
    assert reply["ok"], reply
    result = reply["result"]
    for key in ("ok", "echo_delay_ms", "noise_floor_dbfs", "vad_gate_opened", "recommendations"):
        assert key in result, key
    near = result["near_field"]
    assert near["visitor_source"] == "provided" and near["recommended_min_level_dbfs"] == -29.0
    agreement = near["agreement"]
    assert agreement["channels"] == 4 and agreement["min_coherence"] == 0.4, agreement
    assert 0.0 < agreement["room_coherence"] < 0.25, agreement
    assert agreement["room_margin"] == pytest.approx(0.4 - agreement["room_coherence"], abs=0.011)
    assert agreement["visitor_coherence"] is None and agreement["recommended_min_coherence"] is None
    summary = health["self_test"]
    assert isinstance(summary, dict)
    assert summary["near_field_room_coherence"] == agreement["room_coherence"]
    assert summary["near_field_margin_db"] == near["visitor_margin_db"]
