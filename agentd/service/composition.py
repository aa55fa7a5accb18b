"""The composition root: builds the kiosk's parts from the config, and rebuilds on reload.

Every backend is chosen by name. Production knows one device backend, `alsa`; other
backends (the simulator's `sim` mic and speaker) are handed in by whoever starts the
daemon - the CLI or the test harness - so production code never imports the simulator,
and a config naming a backend nobody provided is a clear error, never a silent fake.
A missing secret for a cloud link is a clear error too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agentd.audio.format import AudioFormat
from agentd.audio.ports import CaptureDevice, PlaybackDevice
from agentd.audio.speaker import Speaker
from agentd.config import Config
from agentd.conversation.parts import ConversationParts
from agentd.errors import ConfigError
from agentd.events import FirstAudioPlayed, LinkState
from agentd.llm.limits import LimitReport
from agentd.secrets import Secrets


@dataclass(frozen=True, slots=True)
class DeviceBridges:
    """Thread-safe callbacks a device thread uses to reach the loop."""

    link_changed: Callable[[str, LinkState, str], None]
    post: Callable[[object], None]  # facts such as FirstAudioPlayed (the inbox)


PlaybackOpener = Callable[[Config, DeviceBridges], PlaybackDevice]
CaptureOpener = Callable[[Config, PlaybackDevice, DeviceBridges], CaptureDevice]


@dataclass(frozen=True, slots=True)
class DeviceBackend:
    """How to open the mic and the speaker of one backend (`audio.*.backend`)."""

    open_capture: CaptureOpener
    open_playback: PlaybackOpener


# name -> a loader, called only when the config names it (imports stay lazy).
DeviceBackends = Mapping[str, Callable[[], DeviceBackend]]


@dataclass(slots=True)
class AudioDevices:
    capture: CaptureDevice
    playback: PlaybackDevice
    speaker: Speaker


def alsa_backend() -> DeviceBackend:
    """The production backend: pyalsaaudio on the configured PCMs."""
    return DeviceBackend(_open_alsa_capture, _open_alsa_playback)


def _open_alsa_playback(config: Config, bridges: DeviceBridges) -> PlaybackDevice:
    from agentd.audio.alsa_playback import AlsaPlayback

    return AlsaPlayback(
        config.audio.playback,
        on_link=lambda state, detail: bridges.link_changed("playback", state, detail),
        on_first_audio=lambda at_ms: bridges.post(FirstAudioPlayed(at_ms)),
    )


def _open_alsa_capture(
    config: Config, _playback: PlaybackDevice, bridges: DeviceBridges
) -> CaptureDevice:
    from agentd.audio.alsa_capture import AlsaCapture

    return AlsaCapture(
        config.audio.capture,
        on_link=lambda state, detail: bridges.link_changed("capture", state, detail),
    )


BUILTIN_BACKENDS: DeviceBackends = {"alsa": alsa_backend}


def _backend(backends: DeviceBackends, key: str, name: str) -> DeviceBackend:
    loader = backends.get(name)
    if loader is None:
        raise ConfigError(
            key,
            "no such device backend in this process",
            name,
            " or ".join(sorted(backends)) + " (the simulator's backend comes with `agentd demo`"
            " and the test harness)",
        )
    return loader()


def build_audio(config: Config, backends: DeviceBackends, bridges: DeviceBridges) -> AudioDevices:
    """Open the capture and playback devices named in the config (capture not started)."""
    audio = config.audio
    playback_backend = _backend(backends, "audio.playback.backend", audio.playback.backend)
    capture_backend = _backend(backends, "audio.capture.backend", audio.capture.backend)
    playback = playback_backend.open_playback(config, bridges)
    capture = capture_backend.open_capture(config, playback, bridges)
    speaker = Speaker(
        playback,
        AudioFormat(audio.playback.rate_hz),
        audio.playback.period_ms,
        audio.playback.volume,
    )
    return AudioDevices(capture, playback, speaker)


def build_conversation_parts(
    *,
    config: Config,
    secrets: Secrets,
    audio: AudioDevices,
    emit: Callable[[object], None],
    call_staff: Callable[[str], None],
    on_tool_limit: LimitReport | None = None,
) -> ConversationParts:
    """The gate, barge-in detector, cloud links and voices (nothing connects yet)."""
    from agentd.audio.barge_in import BargeInDetector
    from agentd.audio.recorder import TurnRecorder
    from agentd.audio.vad_gate import VadGate
    from agentd.conversation.turn_end import TurnEndPolicy
    from agentd.llm.client import ChatLlm
    from agentd.llm.history import ConversationHistory
    from agentd.llm.tool_catalog import tools_from_config
    from agentd.stt.assemblyai import AssemblyAiStt
    from agentd.stt.model_family import punctuates
    from agentd.tts.elevenlabs import ElevenLabsTts
    from agentd.tts.fallback import FallbackVoice
    from agentd.tts.splitter import ClauseSplitter

    cfg = config.audio
    in_format, out_format = AudioFormat(cfg.capture.rate_hz), AudioFormat(cfg.playback.rate_hz)
    frame_ms = cfg.capture.period_ms
    min_clause_chars = config.tts.min_clause_chars
    tools = tools_from_config(config.llm, call_staff, on_limit=on_tool_limit)
    turn_audio = None
    if config.turn_end.audio_model:  # the optional extra: ConfigError (exit 78) if absent
        from agentd.audio.turn_model import load_turn_model
        from agentd.conversation.turn_audio import TurnAudio

        turn_audio = TurnAudio(load_turn_model(config.turn_end, in_format.rate_hz), emit)

    return ConversationParts(
        gate=VadGate(cfg.vad, rate_hz=in_format.rate_hz, frame_ms=frame_ms),
        barge_in=BargeInDetector(cfg.barge_in, audio.playback.reference, frame_ms=frame_ms)
        if cfg.barge_in.enabled
        else None,
        stt=AssemblyAiStt(
            config.stt, secrets.require("assemblyai_api_key").reveal(), in_format.rate_hz, emit
        ),
        llm=ChatLlm(
            config.llm,
            secrets.require("openai_api_key").reveal(),
            tools,
        ),
        history=ConversationHistory(
            read_persona(config), config.llm.history_chars, config.llm.idle_reset_s
        ),
        tts=ElevenLabsTts(
            config.tts, secrets.require("elevenlabs_api_key").reveal(), out_format.rate_hz
        ),
        fallback=FallbackVoice(config.fallback, out_format.rate_hz),
        speaker=audio.speaker,
        new_splitter=lambda: ClauseSplitter(min_clause_chars),
        recorder=TurnRecorder(config.privacy.record_audio_dir, in_format.rate_hz),
        in_format=in_format,
        out_format=out_format,
        talk_mode=config.gpio.buttons.talk_mode,
        tool_limits=tools.limiter,
        turn_end=TurnEndPolicy(
            config.turn_end,
            punctuated=punctuates(config.stt),
            onset_window_ms=float(cfg.vad.start_window_frames * frame_ms),
        ),
        turn_audio=turn_audio,
    )


async def prepare(parts: ConversationParts) -> None:
    """Get freshly built parts ready to run: STT parameters checked, local voice rendered."""
    await parts.stt.start()
    await asyncio.to_thread(parts.fallback.prerender)  # espeak runs off the loop


def persona_path(config: Config) -> str:
    return f"{config.systemd.state_dir.rstrip('/')}/persona.txt"


def read_persona(config: Config) -> str:
    """A persona set over MQTT (`set_prompt`) outlives restarts; else the config's prompt."""
    try:
        with open(persona_path(config), encoding="utf-8") as handle:
            text = handle.read().strip()
    except OSError:
        return config.llm.system_prompt
    return text or config.llm.system_prompt
