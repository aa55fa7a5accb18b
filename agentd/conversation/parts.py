"""ConversationParts: everything the turn state machine works with, typed by its ports.

Built by the composition root (`agentd.service.composition`) from the config, rebuilt
on reload (the audio devices are kept), and by unit tests from fakes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from agentd.audio.format import AudioFormat
from agentd.config.sections_turn import TurnEndConfig
from agentd.conversation.ports import (
    BargeInDetector,
    ClauseSplitter,
    ConversationLimits,
    FallbackVoice,
    Gate,
    History,
    LlmClient,
    Recorder,
    Speaker,
    SttLink,
    TtsClient,
)
from agentd.conversation.turn_audio import TurnAudio
from agentd.conversation.turn_end import TurnEndPolicy

TalkMode = Literal["hold", "press"]


@dataclass(slots=True)
class ConversationParts:
    gate: Gate
    barge_in: BargeInDetector | None
    stt: SttLink
    llm: LlmClient
    history: History
    tts: TtsClient
    fallback: FallbackVoice
    speaker: Speaker
    new_splitter: Callable[[], ClauseSplitter]
    recorder: Recorder
    in_format: AudioFormat  # what the mic captures and STT hears
    out_format: AudioFormat  # what TTS produces and the speaker plays
    talk_mode: TalkMode = "hold"  # push-to-talk: hold the button, or press to start
    tool_limits: ConversationLimits | None = None  # restarted when a conversation ends
    turn_end: TurnEndPolicy = field(default_factory=lambda: TurnEndPolicy(TurnEndConfig()))
    turn_audio: TurnAudio | None = None  # the optional audio turn model ([turn_end] audio_model)

    async def aclose(self) -> None:
        """Close the cloud links (and the turn model's thread); each one even if another fails."""
        if self.turn_audio is not None:
            self.turn_audio.close()
        for close in (self.stt.close, self.llm.aclose, self.tts.aclose):
            with contextlib.suppress(Exception):
                await close()
