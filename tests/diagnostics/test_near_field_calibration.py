"""Near-field calibration in the audio self-test (issue 14, "calibrated by agentd
test-hardware"), on the simulator's devices: the quiet room before the sweep, then a
visitor at 1 m saying a sentence when asked (or a level given). The thresholds it
recommends must let the visitor through the real VAD and near-field gates and keep
bystanders at -15 and -20 dB out; a badly set gate gets advice naming its keys."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentd.audio import dsp
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.near_field import NearFieldGate
from agentd.audio.vad_gate import VadGate
from agentd.config import Config, parse_config
from agentd.config.sections_audio import VadConfig
from agentd.config.sections_engagement import NearFieldConfig
from agentd.diagnostics.self_test import DeviceProbe, SelfTestReport, run_self_test
from agentd.events import SpeechStarted
from agentd.gpio.diagnostics import test_hardware as run_hardware_check
from agentd.mqtt.commands import parse_command
from agentd.service.composition import BUILTIN_BACKENDS
from agentd.sim.devices import with_sim
from agentd.sim.lobby import BYSTANDER_LINES, ROOM_TONE_DBFS, VISITOR_DBFS, at_level
from agentd.sim.mic import SimMic
from agentd.sim.room import RoomRenderer
from agentd.sim.scenario import Scenario, ScenarioTurn
from agentd.sim.speaker import SimSpeaker
from agentd.sim.speech import render_noise, render_speech

pytestmark = pytest.mark.timeout(60)
FMT = AudioFormat(16000)
LINE = "Excuse me, where can I find the meeting rooms?"
# The sweep's recording ends ~1.8 s after the probe attaches (lead 600 ms, sweep 500 ms,
# echo window 560 ms); the visitor starts talking after the prompt, as a person would.
SPEAKS_AT_MS = 2600
VOICE_MS = 5000.0


def speech_at(level_dbfs: float, text: str = LINE, voice: str = "en-us") -> bytes:
    return at_level(render_speech(text, 16000, voice), level_dbfs).astype("<i2").tobytes()


class SimKiosk:
    """A SimSpeaker and a SimMic (room tone, and a visitor who speaks at SPEAKS_AT_MS);
    with a `room` the mic is an array and the visitor stands `distance_m` away."""

    def __init__(
        self, visitor: bytes | None, room: RoomRenderer | None = None, distance_m: float = 0.7
    ) -> None:
        self.speaker = SimSpeaker(FMT, period_ms=20)
        turns = (
            (ScenarioTurn("calibration line", pause_before_ms=SPEAKS_AT_MS, distance_m=distance_m),)
            if visitor
            else ()
        )
        scenario = Scenario("near-field", turns, noise_db=ROOM_TONE_DBFS, tail_ms=30000)
        self.mic = SimMic(scenario, fmt=FMT, period_ms=20, speaker=self.speaker, realtime=True,
                          speech=[visitor] if visitor else None, room=room)  # fmt: skip
        self._tap: Callable[[AudioChunk], None] | None = None

    def attach(self, on_chunk: Callable[[AudioChunk], None]) -> Callable[[], None]:
        self._tap = on_chunk
        self.mic.start(self._deliver)  # the mic's clock starts with the test, like the CLI's

        def detach() -> None:
            self._tap = None

        return detach

    def _deliver(self, chunk: AudioChunk) -> None:
        tap = self._tap
        if tap is not None:
            tap(chunk)

    def close(self) -> None:
        self.mic.close()
        self.speaker.close()


@pytest.fixture
def kiosks() -> Iterator[list[SimKiosk]]:
    made: list[SimKiosk] = []
    yield made
    for kiosk in made:
        kiosk.close()


async def self_test(kiosks: list[SimKiosk], config: Config, visitor: bytes | None, *,
                    room: RoomRenderer | None = None, **kwargs: Any) -> SelfTestReport:  # fmt: skip
    kiosk = SimKiosk(visitor, room)
    kiosks.append(kiosk)
    return await run_self_test(DeviceProbe(kiosk.speaker, kiosk.attach, FMT), config, **kwargs)


def turns_opened(pcm: bytes, near: NearFieldConfig) -> int:
    """Utterances of `pcm` (over room tone) the real VAD gate + near-field gate pass on."""
    noise = render_noise(len(pcm) // 32 + 2000, 16000, ROOM_TONE_DBFS)
    audio = dsp.mix(noise, bytes(32000) + pcm)
    vad, gate, size = (
        VadGate(VadConfig(), 16000, 20),
        NearFieldGate(near, FMT),
        FMT.bytes_for_ms(20),
    )
    opened = 0
    for offset in range(0, len(audio) - size + 1, size):
        chunk = AudioChunk(audio[offset : offset + size], FMT, offset / 32)
        gate.observe(chunk.pcm)
        opened += sum(isinstance(e, SpeechStarted) for e in gate.filter(vad.process(chunk),
                                                                          chunk.at_ms))  # fmt: skip
    return opened


def near_config(**near: float) -> Config:
    return parse_config({"engagement": {"near_field": near}})


async def test_spoken_sentence_calibrates_a_gate_that_separates_visitor_and_bystanders(
    kiosks: list[SimKiosk],
) -> None:
    prompted: list[float] = []
    config = near_config(min_level_dbfs=-45.0)  # far too permissive: bystanders pass
    report = await self_test(kiosks, config, speech_at(VISITOR_DBFS), voice_ms=VOICE_MS,
                             prompt=lambda: prompted.append(1.0))  # fmt: skip
    near = report.near_field
    assert report.ok and prompted == [1.0] and near is not None, report
    assert near.visitor_source == "spoken" and near.voiced_ms is not None
    assert near.voiced_ms >= 1000, near  # the sentence, not its pauses
    assert near.visitor_level_dbfs == pytest.approx(VISITOR_DBFS, abs=2.0), near
    assert near.noise_floor_dbfs == pytest.approx(ROOM_TONE_DBFS, abs=3.0), near
    assert near.threshold_dbfs == pytest.approx(max(-45.0, near.noise_floor_dbfs + 15.0), abs=0.11)
    assert near.bystander_margin_db is not None
    assert near.bystander_margin_db < 0  # the configured gate lets a 3 m bystander in ...
    keys = [r.key for r in report.recommendations]
    assert "engagement.near_field.min_level_dbfs" in keys, report.recommendations  # ... said
    level, snr = near.recommended_min_level_dbfs, near.recommended_min_snr_db
    assert level is not None and snr is not None
    assert level == pytest.approx(near.visitor_level_dbfs - 8.0, abs=0.11)
    advice = next(r.advice for r in report.recommendations if r.key.endswith("min_level_dbfs"))
    assert str(level) in advice and "(now -45.0)" in advice

    calibrated = NearFieldConfig(min_level_dbfs=level, min_snr_db=snr)
    bystander = BYSTANDER_LINES[0]
    assert turns_opened(speech_at(VISITOR_DBFS), calibrated) == 1
    assert turns_opened(speech_at(VISITOR_DBFS - 3.0, LINE, "en-gb"), calibrated) == 1
    for relative_db in (-15.0, -20.0):
        far = speech_at(VISITOR_DBFS + relative_db, bystander, "en-gb")
        assert turns_opened(far, calibrated) == 0, relative_db
    # and the configured gate really was wrong: the nearer bystander opened a turn there
    permissive = config.engagement.near_field
    assert turns_opened(speech_at(VISITOR_DBFS - 15.0, bystander, "en-gb"), permissive) >= 1

    result = report.to_dict()  # the MQTT reply: every earlier key, plus near_field
    for key in ("echo_delay_ms", "noise_floor_dbfs", "vad_gate_opened", "recommendations"):
        assert key in result
    assert isinstance(result["near_field"], dict)
    assert result["near_field"]["recommended_min_level_dbfs"] == level
    assert report.summary()["near_field_margin_db"] == near.visitor_margin_db
    # a mono mic: no array, so no agreement check and no coherence anywhere
    assert near.agreement is None and result["near_field"]["agreement"] is None
    assert report.summary()["near_field_visitor_coherence"] is None


async def test_silence_when_asked_is_reported_not_calibrated(kiosks: list[SimKiosk]) -> None:
    report = await self_test(kiosks, near_config(), None, voice_ms=1500.0)
    near = report.near_field
    assert report.ok and near is not None
    assert near.visitor_level_dbfs is None and near.voiced_ms == 0.0
    assert "no sentence heard" in near.note
    assert not [r for r in report.recommendations if r.key.startswith("engagement.")]
    assert report.summary()["near_field_margin_db"] is None


@pytest.mark.parametrize(
    ("min_level_dbfs", "advised"),
    [(-30.0, False), (-17.0, True)],  # the default suits -20 dBFS; -17 drops the visitor
)
async def test_a_given_level_reports_the_margins(
    kiosks: list[SimKiosk], min_level_dbfs: float, advised: bool
) -> None:
    config = near_config(min_level_dbfs=min_level_dbfs)
    report = await self_test(kiosks, config, None, visitor_level_dbfs=VISITOR_DBFS)
    near = report.near_field
    assert near is not None and near.visitor_source == "provided" and near.voiced_ms is None
    assert near.threshold_dbfs == min_level_dbfs  # the room (-58) does not lift it
    assert near.visitor_margin_db == pytest.approx(VISITOR_DBFS - min_level_dbfs)
    assert near.bystander_margin_db == pytest.approx(min_level_dbfs - (VISITOR_DBFS - 15.0))
    assert near.recommended_min_level_dbfs == VISITOR_DBFS - 8.0
    advice = [r for r in report.recommendations if r.key == "engagement.near_field.min_level_dbfs"]
    assert bool(advice) is advised, report.recommendations
    if advised:
        assert "speak softly" in advice[0].advice


def test_test_hardware_asks_for_a_sentence_and_prints_the_calibration(tmp_path: Path) -> None:
    """The CLI path: sim backend devices, the visitor a recorded WAV in the scenario."""
    wav = tmp_path / "visitor.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(speech_at(VISITOR_DBFS))
    scenario = tmp_path / "calibration.toml"
    scenario.write_text(
        f'name = "calibration"\nnoise_db = {ROOM_TONE_DBFS}\ntail_ms = 30000\n'
        f'[[turn]]\nvisitor = "calibration line"\nwav = "{wav}"\n'
        f"pause_before_ms = {SPEAKS_AT_MS}\n"
    )
    config = parse_config({"audio": {"capture": {"backend": "sim"},
                                     "playback": {"backend": "sim"},
                                     "sim": {"scenario": str(scenario)}}})  # fmt: skip
    out = io.StringIO()
    rc = run_hardware_check(config, out, voice_s=VOICE_MS / 1000,
                            backends=with_sim(BUILTIN_BACKENDS))  # fmt: skip
    lines = out.getvalue().splitlines()
    assert rc == 0, lines
    asked = next(i for i, line in enumerate(lines) if line.startswith("say a sentence"))
    near = next(i for i, line in enumerate(lines) if line.startswith("near-field:"))
    assert asked < near, lines
    assert "(spoken)" in lines[near] and "calibrated: min_level_dbfs" in lines[near], lines[near]
    assert not [line for line in lines if "coherence" in line], lines  # a mono mic


def test_mqtt_self_test_takes_a_visitor_level() -> None:
    def parse(payload: str) -> dict[str, object]:
        return parse_command("self_test", payload.encode(), max_bytes=4096,
                             allow_dangerous=False).args  # fmt: skip

    assert parse("") == {} and parse("PRESS") == {}  # Home Assistant's button, as before
    assert parse(json.dumps({"visitor_level_dbfs": -21.5})) == {"visitor_level_dbfs": -21.5}
    from agentd.errors import CommandError

    for bad in ('{"visitor_level_dbfs": -100}', '{"visitor_level_dbfs": "loud"}',
                '{"visitor_level_dbfs": true}', '{"visitor_level": -20}'):  # fmt: skip
        with pytest.raises(CommandError):
            parse(bad)


async def test_a_long_voice_window_widens_the_time_bound(kiosks: list[SimKiosk]) -> None:
    """Sweep (~1.8 s) + 9 s of voice exceed the sweep's own 10 s bound: it is widened."""
    report = await asyncio.wait_for(
        self_test(kiosks, near_config(), None, voice_ms=9000.0), timeout=40
    )
    assert report.measurement is not None and report.near_field is not None, report.error


async def test_daemon_self_test_over_mqtt_with_a_given_level(tmp_path: Path) -> None:
    """The running kiosk: `cmd/self_test {"visitor_level_dbfs": ...}` through the real
    broker and `mosquitto_rr`; the reply keeps every earlier field and adds near_field."""
    from agentd.sim.harness import SimulatedKiosk
    from tests.e2e.conftest import FAST, write_scenario
    from tests.helpers.mosquitto import Mosquitto
    from tests.helpers.mqtt_clients import request

    broker = Mosquitto(tmp_path).start()
    turns = [{"visitor": "Hello there.", "reply": "Hello!", "pause_before_ms": 20000}]
    scenario = write_scenario(tmp_path / "s.toml", turns, tail_ms=20000)
    mqtt = (f'[device]\nid = "kiosk-near"\n[mqtt]\nenabled = true\nhost = "{broker.host}"\n'
            f"port = {broker.port}\nmax_backoff_s = 1.0\n")  # fmt: skip
    kiosk = SimulatedKiosk(scenario, tmp_path / "out", profile=FAST, extra_toml=mqtt)
    try:
        service = await kiosk.start()
        await kiosk.wait_for(lambda: service.reporting.links["mqtt"].value == "connected", 10)
        plain = await request(broker, "kiosk-near", "self_test", wait_s=15)
        level = json.dumps({"visitor_level_dbfs": -21.0})
        given = await request(broker, "kiosk-near", "self_test", level, wait_s=15)
        too_loud = json.dumps({"visitor_level_dbfs": 12})
        bad = await request(broker, "kiosk-near", "self_test", too_loud, wait_s=15)
        health = service.reporting.health()
    finally:
        await kiosk.stop()
        broker.kill()
    assert plain["ok"] and given["ok"], (plain, given)
    before = plain["result"]
    for key in ("ok", "echo_delay_ms", "echo_coupling_db", "noise_floor_dbfs", "mic_rms_dbfs",
                "clipped_percent", "vad_gate_opened", "recommendations"):  # fmt: skip
        assert key in before and key in given["result"], key
    assert before["near_field"]["visitor_level_dbfs"] is None  # nobody asked to speak
    near = given["result"]["near_field"]
    assert near["visitor_source"] == "provided" and near["visitor_level_dbfs"] == -21.0
    assert near["recommended_min_level_dbfs"] == -29.0
    assert near["visitor_margin_db"] == pytest.approx(-21.0 - near["threshold_dbfs"], abs=0.11)
    assert not bad["ok"] and "visitor_level_dbfs" in bad["error"]["message"]
    summary = health["self_test"]
    assert (
        isinstance(summary, dict) and summary["near_field_margin_db"] == near["visitor_margin_db"]
    )
