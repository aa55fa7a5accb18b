"""LED patterns: what each agent state looks like, as pure functions of time.

A pattern is "<effect> [colour]", e.g. "pulse cyan", "on #ff0000", "fast_blink". The
effect gives a brightness level 0..1 over time (per LED, so "spin" can rotate round a
ring); the colour only matters to colour drivers (rgb, apa102). Mono drivers (gpio, pwm)
use the level alone, and plain on/off LEDs light when the level is >= 0.5, so "dim" reads
as off and "pulse" as a slow blink there. Nothing here touches hardware, so config
validation can import it cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from agentd.errors import ConfigError
from agentd.events import AgentState

Rgb = tuple[float, float, float]

COLOURS: dict[str, Rgb] = {
    "white": (1.0, 1.0, 1.0),
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "orange": (1.0, 0.4, 0.0),
    "purple": (0.5, 0.0, 1.0),
}

# Piecewise-constant effects: (duration_s, level) segments repeated forever. Timings
# are chosen so each reads differently on a single mono LED: blink 1 Hz even, fast_blink
# 5 Hz (alarm), slow_blink a short flash every 2 s (standby), heartbeat a double flash,
# wink the inverse of slow_blink (on, dark for 0.2 s every 2 s: attentive).
SEGMENTS: dict[str, tuple[tuple[float, float], ...]] = {
    "blink": ((0.5, 1.0), (0.5, 0.0)),
    "fast_blink": ((0.1, 1.0), (0.1, 0.0)),
    "slow_blink": ((0.2, 1.0), (1.8, 0.0)),
    "heartbeat": ((0.1, 1.0), (0.15, 0.0), (0.1, 1.0), (1.15, 0.0)),
    "wink": ((1.8, 1.0), (0.2, 0.0)),
}
STEADY: dict[str, float] = {"off": 0.0, "on": 1.0, "dim": 0.15}  # dim: 15 % of full
CONTINUOUS = ("pulse", "spin")
EFFECTS = tuple(STEADY) + tuple(SEGMENTS) + CONTINUOUS

PULSE_PERIOD_S = 2.0  # one fade in + fade out, like gpiozero's pulse(1, 1) default
SPIN_PERIOD_S = 1.2  # one revolution of the ring
FRAME_S = 1 / 25  # continuous effects: 25 frames/s, gpiozero's own fps for pulse()

# Mono LEDs cannot show colour, so their defaults differ where the colour carried the
# meaning (muted = red on a colour ring, a double flash on a single LED).
MONO_DEFAULTS: dict[AgentState, str] = {
    AgentState.IDLE: "dim",
    AgentState.LISTENING: "on",
    AgentState.THINKING: "pulse",
    AgentState.SPEAKING: "blink",
    AgentState.MUTED: "heartbeat",
}
COLOUR_DEFAULTS: dict[AgentState, str] = {
    AgentState.IDLE: "dim white",
    AgentState.LISTENING: "on blue",
    AgentState.THINKING: "spin cyan",
    AgentState.SPEAKING: "on green",
    AgentState.MUTED: "on red",
}


# Engaged but idle (issue 14: a conversation is on, the kiosk waits for the visitor's next
# words; "waiting" - nobody engaged, e.g. waiting for the wake word - shows `idle`). It
# must differ from idle and from every state, and on a mono LED also from the capture
# variant (slow_blink), so "engaged" never reads as "recording" or back: a colour ring
# slow-blinks white, a mono LED winks. `engagement.led_engaged` overrides both.
ENGAGED_COLOUR_DEFAULT = "slow_blink white"
ENGAGED_MONO_DEFAULT = "wink"


# While turn capture is armed (agentd.diagnostics.capture) the kiosk must look different:
# a colour ring keeps each state's effect in magenta, a colour no state uses by default;
# a mono LED cannot change colour, so it shows slow_blink, an effect no state uses.
CAPTURE_COLOUR = "magenta"
CAPTURE_MONO_EFFECT = "slow_blink"


@dataclass(frozen=True, slots=True)
class Pattern:
    """One effect in one colour."""

    effect: str
    colour: Rgb = (1.0, 1.0, 1.0)


def parse_pattern(text: str, key_path: str) -> Pattern:
    """Parse "<effect> [colour]"; a ConfigError names the key and what is allowed."""
    parts = text.split()
    if not 1 <= len(parts) <= 2 or parts[0] not in EFFECTS:
        raise ConfigError(key_path, "not a valid LED pattern", text, _allowed())
    colour = (1.0, 1.0, 1.0) if len(parts) == 1 else _parse_colour(parts[1], key_path, text)
    return Pattern(parts[0], colour)


def _parse_colour(word: str, key_path: str, text: str) -> Rgb:
    if word in COLOURS:
        return COLOURS[word]
    if len(word) == 7 and word.startswith("#"):
        try:
            value = int(word[1:], 16)
        except ValueError:
            pass
        else:
            return ((value >> 16) / 255, ((value >> 8) & 0xFF) / 255, (value & 0xFF) / 255)
    raise ConfigError(key_path, "not a valid LED colour", text, _allowed())


def _allowed() -> str:
    return f"'<effect> [colour]', effect one of {', '.join(EFFECTS)}; colour one of " + (
        ", ".join(COLOURS) + " or #rrggbb"
    )


def check_overrides(overrides: Mapping[str, str], key_path: str) -> None:
    """Validate a `leds.patterns` table: keys are agent states, values patterns."""
    states = {s.value for s in AgentState}
    for key, text in overrides.items():
        if key not in states:
            raise ConfigError(
                f"{key_path}.{key}", "unknown agent state", key, ", ".join(sorted(states))
            )
        parse_pattern(text, f"{key_path}.{key}")


def resolve_patterns(overrides: Mapping[str, str], *, colour: bool) -> dict[AgentState, Pattern]:
    """The full state -> pattern map: the driver kind's defaults, then the overrides."""
    texts = dict(COLOUR_DEFAULTS if colour else MONO_DEFAULTS)
    for key, text in overrides.items():
        texts[AgentState(key)] = text
    return {
        state: parse_pattern(text, f"gpio.leds.patterns.{state}") for state, text in texts.items()
    }


def engaged_pattern(override: str, *, colour: bool) -> Pattern:
    """The engaged-and-idle pattern: `override` (engagement.led_engaged) or the default."""
    default = ENGAGED_COLOUR_DEFAULT if colour else ENGAGED_MONO_DEFAULT
    return parse_pattern(override or default, "engagement.led_engaged")


def capture_variant(pattern: Pattern, *, colour: bool) -> Pattern:
    """How `pattern` looks while turn capture is armed (see CAPTURE_COLOUR)."""
    if colour:
        return Pattern(
            pattern.effect if pattern.effect != "off" else "dim", COLOURS[CAPTURE_COLOUR]
        )
    return Pattern(CAPTURE_MONO_EFFECT, pattern.colour)


def level_at(effect: str, t_s: float, index: int = 0, count: int = 1) -> float:
    """Brightness 0..1 of LED `index` of `count`, `t_s` seconds into `effect`."""
    if effect in STEADY:
        return STEADY[effect]
    if effect in SEGMENTS:
        segments = SEGMENTS[effect]
        t = t_s % sum(d for d, _ in segments)
        for duration, level in segments:
            if t < duration:
                return level
            t -= duration
        return segments[-1][1]
    if effect == "spin" and count > 1:
        head = (t_s / SPIN_PERIOD_S * count) % count
        behind = (head - index) % count  # how far this LED trails the head
        tail = max(1.0, count / 3)  # a third of the ring glows behind the head
        return max(0.0, 1.0 - behind / tail)
    # pulse (and spin on a single LED): a raised cosine starting dark
    return 0.5 - 0.5 * math.cos(2 * math.pi * t_s / PULSE_PERIOD_S)


def next_change_s(effect: str, t_s: float) -> float:
    """Seconds from `t_s` until the effect's level can change (inf for steady effects)."""
    if effect in STEADY:
        return math.inf
    if effect in SEGMENTS:
        segments = SEGMENTS[effect]
        t = t_s % sum(d for d, _ in segments)
        for duration, _ in segments:
            if t < duration:
                return duration - t
            t -= duration
        return 0.0
    return FRAME_S
