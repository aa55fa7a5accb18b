"""Config section [engagement]: who the kiosk listens to in a public space.

Modes combine: any enabled trigger opens a conversation ("engaged"); the talk button
always works. Defaults suit a kiosk that should keep today's behaviour (`open`, gated by
near-field level so the lobby is not a visitor) until the integrator fits a sensor or
chooses a wake word; docs/engagement.md has the lobby recipes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentd.config._fields import section, setting
from agentd.errors import ConfigError

MODES = ("open", "wake_word", "presence", "button")
BUILTIN_WAKE_WORDS = ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft")  # pymicro-wakeword 2.x
# Goodbye-style endings that close the conversation once the reply has been spoken.
DEFAULT_GOODBYES = (
    "goodbye",
    "good bye",
    "bye",
    "bye bye",
    "that's all",
    "that is all",
    "thanks, that's all",
    "see you",
    "see you later",
    "have a nice day",
)


@dataclass(frozen=True, slots=True)
class WakeWordConfig:
    model: str = setting(
        "okay_nabu",
        doc="A built-in microWakeWord model (okay_nabu, hey_jarvis, alexa, hey_mycroft) or "
        "the path of a model's .json (its .tflite beside it).",
    )
    probability_cutoff: float = setting(
        0.0, min=0.0, max=1.0, doc="0 = the model's own cutoff (0.85 for okay_nabu)."
    )
    refractory_s: float = setting(
        2.0, min=0.0, max=30.0, doc="A second detection within this time is the same one."
    )
    near_field_emphasis: bool = setting(
        False,
        doc="With near-field gating on, attenuate the detector's copy of the audio below "
        "the near-field threshold: hears the wake word over bystanders more often, but "
        "misses more soft-spoken visitors (docs/engagement.md).",
    )
    input: str = setting(
        "beam",
        choices=("beam", "mix"),
        doc="What the detector hears: beam = a fixed superdirective beam of the array's mics "
        "toward audio.capture.array_front_deg when audio.capture.array_geometry is set (the "
        "capture's mono signal otherwise); mix = always the capture's mono signal (the mics' "
        'mix or audio.capture.channel). docs/engagement.md "Front beam".',
    )

    def validate(self, path: str) -> None:
        if self.model in BUILTIN_WAKE_WORDS:
            return
        if not self.model.endswith(".json"):
            raise ConfigError(
                f"{path}.model",
                "not a built-in wake word or a model .json path",
                self.model,
                ", ".join(BUILTIN_WAKE_WORDS) + " or /path/to/model.json",
            )


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    pin: int = setting(-1, min=-1, max=53, doc="BCM GPIO of the sensor's output; -1 = none.")
    sensor: str = setting(
        "mmwave",
        choices=("pir", "mmwave"),
        doc="pir = gpiozero MotionSensor (smoothed); mmwave = DigitalInputDevice (LD2410 OUT).",
    )
    active_high: bool = setting(True, doc="PIR and LD2410 OUT drive the pin high on presence.")
    pull_up: bool = setting(
        False, doc="Only for open-collector outputs (then active_high = false)."
    )
    greeting: str = setting("", doc="Said when someone arrives (empty = say nothing).")
    leave_after_s: float = setting(
        15.0, min=1.0, max=600.0, doc="No presence this long ends the conversation."
    )


@dataclass(frozen=True, slots=True)
class NearFieldConfig:
    enabled: bool = setting(
        True, doc="Only speech loud enough to come from the kiosk opens a turn."
    )
    min_level_dbfs: float = setting(
        -30.0,
        min=-80.0,
        max=0.0,
        doc="Three voiced 20 ms frames of the onset must reach this. Default: a visitor "
        "at 1 m near -22 dBFS, minus 8 dB; calibrate (docs/engagement.md).",
    )
    min_snr_db: float = setting(
        15.0, min=0.0, max=60.0, doc="...and be this far above the tracked noise floor."
    )
    decide_ms: int = setting(
        300, min=60, max=2000, doc="Onset audio held back while deciding (passed on at once)."
    )
    min_coherence: float = setting(
        0.4,
        min=0.0,
        max=1.0,
        doc="With a mic array (audio.capture.channels >= 2): the onset's mean inter-mic "
        "coherence in 1.5-4 kHz must reach this too; a talker beyond the room's critical "
        "distance is incoherent however loud. 0 = level only; calibrate (docs/engagement.md).",
    )


@dataclass(frozen=True, slots=True)
class EngagementConfig:
    modes: tuple[str, ...] = setting(
        ("open", "button"),
        doc="Any of open, wake_word, presence, button; each one can start a conversation. "
        "The talk button always works.",
    )
    follow_up_s: float = setting(
        8.0, min=1.0, max=120.0, doc="After a reply, follow-ups need no wake word this long."
    )
    idle_end_s: float = setting(
        45.0, min=5.0, max=3600.0, doc="open mode: no turn this long ends the conversation."
    )
    goodbyes: tuple[str, ...] = setting(
        DEFAULT_GOODBYES, doc="A visitor turn ending in one of these ends the conversation."
    )
    max_turns: int = setting(30, min=1, max=1000, doc="Visitor turns per conversation.")
    max_conversation_s: float = setting(
        600.0, min=30.0, max=86400.0, doc="A conversation longer than this is ended politely."
    )
    limit_line: str = setting(
        "I'm sorry, I have to end our conversation here. Please ask a member of staff "
        "if you need more help.",
        doc="Said when max_turns or max_conversation_s is reached.",
    )
    led_engaged: str = setting(
        "",
        doc="LED pattern while engaged but idle (waiting shows `idle`); empty = the driver's "
        "default: `slow_blink white` on a colour ring, `wink` on mono LEDs.",
    )
    wake_word: WakeWordConfig = section(WakeWordConfig)
    presence: PresenceConfig = section(PresenceConfig)
    near_field: NearFieldConfig = section(NearFieldConfig)

    def validate(self, path: str) -> None:
        from agentd.gpio.patterns import parse_pattern

        if not self.modes:
            raise ConfigError(f"{path}.modes", "needs at least one mode", [], ", ".join(MODES))
        for i, mode in enumerate(self.modes):
            if mode not in MODES:
                raise ConfigError(f"{path}.modes[{i}]", "unknown mode", mode, ", ".join(MODES))
        if "presence" in self.modes and self.presence.pin < 0:
            raise ConfigError(
                f"{path}.presence.pin", "presence mode needs the sensor's GPIO", -1, "0 to 53"
            )
        if self.led_engaged:
            parse_pattern(self.led_engaged, f"{path}.led_engaged")

    def model_path(self) -> Path | None:
        """The custom wake-word model file, or None for a built-in model."""
        model = self.wake_word.model
        return None if model in BUILTIN_WAKE_WORDS else Path(model)
