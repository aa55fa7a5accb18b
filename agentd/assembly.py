"""Build the daemon's parts from the config, choosing every backend by name.

Nothing here falls back silently: `backend = "sim"` is the only way to get the
simulated mic/speaker, and a missing secret for a cloud link is a clear error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentd.audio.recorder import TurnRecorder
from agentd.config import Config
from agentd.events import LinkState
from agentd.secrets import Secrets
from agentd.speaker import Speaker

OnLink = Callable[[str, LinkState, str], None]


@dataclass(slots=True)
class AudioDevices:
    capture: Any
    playback: Any
    speaker: Speaker


@dataclass(slots=True)
class ConversationParts:
    """What the orchestrator works with; rebuilt on reload (audio devices kept)."""

    gate: Any
    barge_in: Any
    stt: Any
    llm: Any
    history: Any
    tts: Any
    fallback: Any
    speaker: Speaker
    sanitize: Callable[[str], str]
    min_clause_chars: int
    buttons: Any  # ButtonsConfig: what each press means
    recorder: TurnRecorder
    out_bytes_per_s: float
    in_bytes_per_s: float

    @property
    def talk_mode(self) -> str:
        return str(self.buttons.talk_mode)

    def new_splitter(self) -> Any:
        from agentd.tts.splitter import ClauseSplitter

        return ClauseSplitter(self.min_clause_chars)

    async def aclose(self) -> None:
        await self.stt.close()
        for client in (self.llm, self.tts):
            closer = getattr(client, "aclose", None)
            if closer is not None:
                await closer()


def build_audio(
    config: Config,
    loop: asyncio.AbstractEventLoop,
    on_link: OnLink,
    on_first_audio: Callable[[float], None],
) -> AudioDevices:
    """Open the capture and playback devices named in the config."""
    audio = config.audio

    def bridge_link(name: str) -> Callable[[LinkState, str], None]:
        def report(state: LinkState, detail: str) -> None:  # device thread
            loop.call_soon_threadsafe(on_link, name, state, detail)

        return report

    def bridge_first(at_ms: float) -> None:
        loop.call_soon_threadsafe(on_first_audio, at_ms)

    playback: Any
    if audio.playback.backend == "sim":
        from agentd.audio.format import AudioFormat
        from agentd.audio.sim_speaker import SimSpeaker

        playback = SimSpeaker(
            AudioFormat(audio.playback.rate_hz),
            period_ms=audio.capture.period_ms,
            on_first_audio=bridge_first,
            wav_path=audio.sim.speaker_wav,
        )
        playback.set_volume(audio.playback.volume)
    else:
        from agentd.audio.alsa_playback import AlsaPlayback

        playback = AlsaPlayback(
            audio.playback, on_link=bridge_link("playback"), on_first_audio=bridge_first
        )
    capture: Any
    if audio.capture.backend == "sim":
        capture = _sim_mic(config, playback, bridge_link("capture"))
    else:
        from agentd.audio.alsa_capture import AlsaCapture

        capture = AlsaCapture(audio.capture, on_link=bridge_link("capture"))
    speaker = Speaker(playback, audio.playback.period_ms, audio.playback.volume)
    return AudioDevices(capture, playback, speaker)


def _sim_mic(config: Config, playback: Any, on_link: Callable[[LinkState, str], None]) -> Any:
    from agentd.audio.format import AudioFormat
    from agentd.audio.sim_mic import SimMic
    from agentd.audio.sim_speaker import SimSpeaker
    from agentd.errors import ConfigError
    from agentd.sim.scenario import load_scenario

    sim = config.audio.sim
    if not sim.scenario:
        raise ConfigError("audio.sim.scenario", "the sim mic needs a scenario file")
    return SimMic(
        load_scenario(sim.scenario),
        fmt=AudioFormat(config.audio.capture.rate_hz),
        period_ms=config.audio.capture.period_ms,
        speaker=playback if isinstance(playback, SimSpeaker) else None,
        realtime=sim.realtime,
        echo_db=sim.echo_db if sim.echo_db > -100 else None,
        echo_delay_ms=sim.echo_delay_ms,
        on_link=on_link,
    )


def build_conversation(
    *,
    config: Config,
    secrets: Secrets,
    speaker: Speaker,
    reference: Any,
    emit: Callable[[object], None],
    call_staff: Callable[[str], Any],
) -> ConversationParts:
    """Create the gate, barge-in detector and the three cloud links (nothing connects yet)."""
    from agentd.audio.barge_in import BargeInDetector
    from agentd.audio.vad_gate import VadGate
    from agentd.llm.client import ChatLlm
    from agentd.llm.history import ConversationHistory
    from agentd.llm.tools import ToolRegistry
    from agentd.stt.assemblyai import AssemblyAiStt
    from agentd.tts.elevenlabs import ElevenLabsTts
    from agentd.tts.fallback import FallbackVoice
    from agentd.tts.sanitize import speakable

    audio = config.audio
    in_rate, out_rate = audio.capture.rate_hz, audio.playback.rate_hz
    frame_ms = audio.capture.period_ms
    history = ConversationHistory(
        _persona(config), config.llm.history_chars, config.llm.idle_reset_s
    )
    tools = ToolRegistry.from_config(config.llm, call_staff)
    return ConversationParts(
        gate=VadGate(audio.vad, rate_hz=in_rate, frame_ms=frame_ms),
        barge_in=BargeInDetector(audio.barge_in, reference, frame_ms=frame_ms)
        if audio.barge_in.enabled
        else None,
        stt=AssemblyAiStt(
            config.stt, secrets.require("assemblyai_api_key").reveal(), in_rate, emit
        ),
        llm=ChatLlm(config.llm, secrets.require("openai_api_key").reveal(), tools),
        history=history,
        tts=ElevenLabsTts(config.tts, secrets.require("elevenlabs_api_key").reveal(), out_rate),
        fallback=FallbackVoice(config.fallback, out_rate),
        speaker=speaker,
        sanitize=speakable,
        min_clause_chars=config.tts.min_clause_chars,
        buttons=config.gpio.buttons,
        recorder=TurnRecorder(config.privacy.record_audio_dir, in_rate),
        out_bytes_per_s=out_rate * 2,
        in_bytes_per_s=in_rate * 2,
    )


def persona_path(config: Config) -> str:
    return f"{config.systemd.state_dir.rstrip('/')}/persona.txt"


def _persona(config: Config) -> str:
    """A persona set over MQTT (`set_prompt`) outlives restarts; else the config's prompt."""
    try:
        with open(persona_path(config), encoding="utf-8") as handle:
            text = handle.read().strip()
    except OSError:
        return config.llm.system_prompt
    return text or config.llm.system_prompt
