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
