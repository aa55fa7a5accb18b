"""Scenario files: one script that drives the simulated mic and all three emulators.

A scenario is TOML::

    name = "front desk"
    noise_db = -50.0            # steady background noise level (dBFS), -inf = none
    [[turn]]
    visitor = "Hi, when are you open tomorrow?"
    pause_before_ms = 700       # silence before the visitor starts talking
    reply = "We're open from nine to five tomorrow."
    tool = "opening_hours"      # optional: the LLM emulator first calls this tool
    tool_arguments = { day = "tomorrow" }
    barge_in_after_ms = 0       # >0: visitor speaks again this long after the reply starts
    distance_m = 0.7            # with a sim mic array only: where the talker stands
    [[fault]]                   # optional device faults for the simulated mic
    at_ms = 5000
    kind = "stall"              # stall | xrun | lost
    duration_ms = 3000

The simulated mic speaks `visitor` (espeak-ng, or the recording `wav`) after
`pause_before_ms` of noise, with its pauses: punctuation, `|` (a hesitation) and
`<pause 700>` (agentd.sim.utterance), e.g. `visitor = "I'm here to see | Anna Schmidt."`;
the AssemblyAI emulator transcribes the k-th `visitor` text for the k-th turn, what was
said so far at each of its pauses;
the OpenAI emulator answers a request whose last user message is a turn's `visitor`
text with that turn's tool call and/or `reply`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agentd.errors import ConfigError
from agentd.sim.utterance import plain_text


@dataclass(frozen=True, slots=True)
class ScenarioTurn:
    visitor: str
    reply: str = ""
    pause_before_ms: int = 700
    tool: str = ""
    tool_arguments: dict[str, Any] = field(default_factory=dict)
    barge_in_after_ms: int = 0
    wav: str = ""  # optional recorded utterance instead of espeak-ng (relative: to the file)
    # Where the talker stands, heard only by a simulated mic array (agentd.sim.room):
    # a visitor at the kiosk by default; 3-5 m is a bystander across the lobby.
    distance_m: float = 0.7
    azimuth_deg: float = 0.0


@dataclass(frozen=True, slots=True)
class ScenarioFault:
    """A device fault the simulated mic plays at `at_ms` after it starts."""

    at_ms: int
    kind: str  # "stall" (no frames: the watchdog must notice), "xrun", "lost"
    duration_ms: int = 1000


FAULT_KINDS = ("stall", "xrun", "lost")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    turns: tuple[ScenarioTurn, ...]
    noise_db: float = -60.0
    tail_ms: int = 4000  # silence after the last turn so the last reply can play
    faults: tuple[ScenarioFault, ...] = ()

    def reply_for(self, user_text: str) -> ScenarioTurn | None:
        """The turn whose visitor text matches (case/punctuation-insensitive)."""
        key = _normalise(user_text)
        for turn in self.turns:
            if _normalise(turn.visitor) == key:
                return turn
        return None


def _normalise(text: str) -> str:
    text = plain_text(text)  # pause markup is how it is said, not what
    return " ".join("".join(c.lower() for c in text if c.isalnum() or c.isspace()).split())


def load_scenario(path: str | Path) -> Scenario:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("audio.sim.scenario", f"cannot load scenario: {exc}", str(path)) from None
    scenario = scenario_from_dict(data, source=str(path))
    base = Path(path).resolve().parent
    turns = tuple(
        replace(t, wav=str(base / t.wav)) if t.wav and not Path(t.wav).is_absolute() else t
        for t in scenario.turns
    )
    return replace(scenario, turns=turns)


def scenario_from_dict(data: dict[str, Any], source: str = "<dict>") -> Scenario:
    turns_raw = data.get("turn", [])
    if not isinstance(turns_raw, list) or not turns_raw:
        raise ConfigError("turn", "a scenario needs at least one [[turn]]", source)
    allowed = set(ScenarioTurn.__dataclass_fields__)
    turns = []
    for i, raw in enumerate(turns_raw):
        unknown = set(raw) - allowed
        if unknown or "visitor" not in raw:
            raise ConfigError(f"turn[{i}]", "bad scenario turn", sorted(unknown) or raw)
        turns.append(ScenarioTurn(**raw))
    faults = []
    for i, raw in enumerate(data.get("fault", [])):
        try:
            fault = ScenarioFault(**raw)
        except TypeError as exc:
            raise ConfigError(f"fault[{i}]", f"bad scenario fault: {exc}", raw) from None
        if fault.kind not in FAULT_KINDS:
            raise ConfigError(
                f"fault[{i}].kind", "unknown fault", fault.kind, ", ".join(FAULT_KINDS)
            )
        faults.append(fault)
    return Scenario(
        name=str(data.get("name", Path(source).stem)),
        turns=tuple(turns),
        noise_db=float(data.get("noise_db", -60.0)),
        tail_ms=int(data.get("tail_ms", 4000)),
        faults=tuple(sorted(faults, key=lambda f: f.at_ms)),
    )
