"""Config section for turn-taking: when has the visitor finished speaking?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentd.config._fields import setting
from agentd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TurnEndConfig:
    policy: Literal["adaptive", "fixed"] = setting(
        "adaptive",
        doc="adaptive: a pause after an unfinished sentence is waited for; "
        "fixed: every local endpoint (VAD silence) ends the turn.",
    )
    max_pause_ms: int = setting(
        3000,
        min=300,
        max=6000,
        doc="Longest silence waited for: after a filler or a word no sentence ends on "
        "(um, uh, with, the, my).",
    )
    unfinished_pause_ms: int = setting(
        1500,
        min=300,
        max=6000,
        doc="Silence waited for after an unfinished sentence that does not trail off "
        "(no full stop, a comma).",
    )
    unpunctuated_pause_ms: int = setting(
        700,
        min=0,
        max=3000,
        doc="Silence waited for after a transcript without punctuation (unformatted STT).",
    )
    speculate: bool = setting(
        True,
        doc="While waiting, start the LLM and TTS on what was said; nothing plays before "
        "the turn ends, and the reply is dropped unheard if the visitor goes on.",
    )
    # The optional audio turn model (agentd/audio/turn_model.py, extra `turnmodel`): one
    # signal among several, asked only when the transcript alone cannot tell.
    audio_model: bool = setting(
        False,
        doc="Ask the local smart-turn audio model (pip install 'agentd[turnmodel]' and "
        "scripts/fetch-turn-model.sh) when a transcript neither ends a sentence nor trails off.",
    )
    audio_model_shadow: bool = setting(
        False,
        doc="With audio_model: ask the model and log its answers (journal: 'turn model'), "
        "but never let them change a wait - to judge it on real visitors first.",
    )
    audio_model_path: str = setting(
        "",
        doc="The smart-turn v3 .onnx file; empty: where scripts/fetch-turn-model.sh puts it "
        "(<venv>/share/agentd/smart-turn/smart-turn-v3.2-cpu.onnx).",
    )
    audio_model_complete: float = setting(
        0.8,
        min=0.5,
        max=1.0,
        doc="The model's probability of a finished turn at or above which the wait is "
        "shortened to audio_model_pause_ms (pipecat itself decides at 0.5).",
    )
    audio_model_incomplete: float = setting(
        0.2,
        min=0.0,
        max=0.5,
        doc="The probability at or below which the wait is lengthened to max_pause_ms.",
    )
    audio_model_pause_ms: int = setting(
        500,
        min=0,
        max=3000,
        doc="Silence waited for after an ambiguous transcript the model confidently calls "
        "finished (never longer than the words' own wait).",
    )

    def validate(self, path: str) -> None:
        if self.unfinished_pause_ms > self.max_pause_ms:
            raise ConfigError(
                f"{path}.unfinished_pause_ms",
                "longer than max_pause_ms",
                self.unfinished_pause_ms,
                f"at most {self.max_pause_ms}",
            )
        if self.unpunctuated_pause_ms > self.max_pause_ms:
            raise ConfigError(
                f"{path}.unpunctuated_pause_ms",
                "longer than max_pause_ms",
                self.unpunctuated_pause_ms,
                f"at most {self.max_pause_ms}",
            )
        if self.audio_model and self.policy != "adaptive":
            raise ConfigError(
                f"{path}.audio_model",
                'the audio turn model needs policy = "adaptive"',
                self.audio_model,
            )
