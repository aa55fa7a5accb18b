"""The simulated mic as a mic array (a profile with audio.capture.channels >= 2): turns are
heard through the room model from their `distance_m`, the loop gets the mix and the mics;
end to end through the VAD gate and the near-field gate, a visitor at 0.7 m is a turn and
a talker 4 m away at the same level is not. The 1-channel mic is unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agentd.audio import dsp
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.near_field import NearFieldGate, calibrate
from agentd.audio.vad_gate import VadGate
from agentd.config import load_config
from agentd.config.sections_audio import VadConfig
from agentd.config.sections_engagement import NearFieldConfig
from agentd.events import SpeechStarted
from agentd.sim.mic import SimMic
from agentd.sim.room import SQUARE_4, Room, RoomRenderer
from agentd.sim.scenario import Scenario, ScenarioTurn
from agentd.sim.speech import render_noise, render_speech

FMT = AudioFormat(16000)
VISITOR = "Excuse me, where can I find the meeting rooms?"
FAR = "Hey Tom, over here, we are leaving now!"


def collect(mic: SimMic) -> list[AudioChunk]:
    chunks: list[AudioChunk] = []
    mic.run(chunks.append)
    return chunks


def scenario() -> Scenario:
    return Scenario(
        "array",
        (
            ScenarioTurn(VISITOR, pause_before_ms=1000, distance_m=0.7),
            ScenarioTurn(FAR, pause_before_ms=1500, distance_m=4.0, azimuth_deg=60.0),
        ),
        noise_db=-58.0,
        tail_ms=1500,
    )


def test_the_array_mic_hands_on_the_mix_and_the_mics() -> None:
    mic = SimMic(scenario(), realtime=False, room=RoomRenderer(Room(), SQUARE_4, seed=2))
    chunks = collect(mic)
    assert all(c.array is not None and c.array.fmt.channels == 4 for c in chunks)
    first = chunks[len(chunks) // 3]
    assert first.array is not None
    assert first.pcm == dsp.to_mono(first.array.pcm, 4)
    assert len(mic.spans) == 2 and mic.spans[0].start_ms < mic.spans[1].start_ms


def test_near_and_far_turns_through_the_gates() -> None:
    """Both turns are at espeak's own level at the array: only the level is the same."""
    mic = SimMic(scenario(), realtime=False, room=RoomRenderer(Room(), SQUARE_4, seed=2))
    chunks = collect(mic)
    dry = render_speech(VISITOR, 16000)
    levels = calibrate(dry, render_noise(3000, 16000, -58.0), FMT)
    config = NearFieldConfig(
        min_level_dbfs=levels.min_level_dbfs, min_snr_db=levels.min_snr_db, min_coherence=0.4
    )
    near, gate, started = NearFieldGate(config, FMT), VadGate(VadConfig(), 16000, 20), []
    for chunk in chunks:
        near.observe(chunk.pcm, chunk.array)
        started += [
            e for e in near.filter(gate.process(chunk), chunk.at_ms) if isinstance(e, SpeechStarted)
        ]
    visitor, far = mic.spans
    assert len(started) == 1 and visitor.start_ms - 400 <= started[0].at_ms <= visitor.end_ms
    assert [r.reason for r in near.rejections] and all(
        r.reason == "agreement" and far.start_ms - 400 <= r.at_ms for r in near.rejections
    )


def test_the_mono_mic_is_unchanged() -> None:
    mono = SimMic(scenario(), realtime=False)
    chunks = collect(mono)
    assert all(c.array is None and c.fmt.channels == 1 for c in chunks)
    assert len(chunks[0].pcm) == FMT.bytes_for_ms(20)
    assert np.frombuffer(b"".join(c.pcm for c in chunks), "<i2").std() > 0


def test_a_profile_with_an_array_gets_a_room(tmp_path: Path) -> None:
    from agentd.sim.devices import open_sim_capture, open_sim_playback

    scenario_file = tmp_path / "s.toml"
    scenario_file.write_text('[[turn]]\nvisitor = "Hello."\ndistance_m = 4.0\n')
    config_file = tmp_path / "agentd.toml"
    config_file.write_text(
        "[audio.capture]\nbackend = 'sim'\nchannels = 6\narray_channels = [1, 2, 3, 4]\n"
        f"[audio.playback]\nbackend = 'sim'\n[audio.sim]\nscenario = '{scenario_file}'\n"
    )
    config = load_config(config_file)

    class Bridges:
        def post(self, event: object) -> None: ...

        def link_changed(self, link: str, state: object, detail: str) -> None: ...

    bridges = Bridges()
    speaker = open_sim_playback(config, bridges)  # type: ignore[arg-type]
    mic = open_sim_capture(config, speaker, bridges)  # type: ignore[arg-type]
    assert isinstance(mic, SimMic) and mic.room is not None and mic.room.array.channels == 4
