"""The simulator's device backend (`audio.*.backend = "sim"`): SimMic and SimSpeaker.

Handed to the daemon by whoever starts it for simulation - `agentd run`/`agentd demo`
from the CLI, the test harness - so production code never imports the simulator. The
openers' return types are the audio Protocols, so mypy checks the simulated devices
against the same seams as the ALSA ones.
"""

from __future__ import annotations

from agentd.audio.format import AudioFormat
from agentd.audio.ports import CaptureDevice, PlaybackDevice
from agentd.config import Config
from agentd.errors import ConfigError
from agentd.events import FirstAudioPlayed
from agentd.service.composition import DeviceBackend, DeviceBackends, DeviceBridges


def sim_backend() -> DeviceBackend:
    return DeviceBackend(open_sim_capture, open_sim_playback)


# What `agentd run` offers when the simulator is installed: ALSA and the simulator.
def with_sim(backends: DeviceBackends) -> DeviceBackends:
    return {**backends, "sim": sim_backend}


def open_sim_playback(config: Config, bridges: DeviceBridges) -> PlaybackDevice:
    from agentd.sim.speaker import SimSpeaker

    audio = config.audio
    speaker = SimSpeaker(
        AudioFormat(audio.playback.rate_hz),
        period_ms=audio.capture.period_ms,
        on_first_audio=lambda at_ms: bridges.post(FirstAudioPlayed(at_ms)),
        wav_path=audio.sim.speaker_wav,
    )
    speaker.set_volume(audio.playback.volume)
    return speaker


def open_sim_capture(
    config: Config, playback: PlaybackDevice, bridges: DeviceBridges
) -> CaptureDevice:
    from agentd.sim.mic import SimMic
    from agentd.sim.scenario import load_scenario
    from agentd.sim.speaker import SimSpeaker

    sim = config.audio.sim
    if not sim.scenario:
        raise ConfigError("audio.sim.scenario", "the sim mic needs a scenario file")
    mics = config.audio.capture.mic_channels()
    room = None
    if mics:  # the profile has a mic array: the scenario is heard through a room
        from agentd.sim.room import Room, RoomRenderer, array_for

        room = RoomRenderer(Room(rate_hz=config.audio.capture.rate_hz), array_for(len(mics)))
    return SimMic(
        load_scenario(sim.scenario),
        fmt=AudioFormat(config.audio.capture.rate_hz),
        period_ms=config.audio.capture.period_ms,
        speaker=playback if isinstance(playback, SimSpeaker) else None,
        realtime=sim.realtime,
        echo_db=sim.echo_db if sim.echo_db > -100 else None,
        echo_delay_ms=sim.echo_delay_ms,
        on_link=lambda state, detail: bridges.link_changed("capture", state, detail),
        room=room,
    )
