"""Buttons and LEDs through the real daemon (gpiozero MockFactory pins).

Pins are driven with drive_low()/drive_high() as a finger would; the effect is checked
on the daemon itself: push-to-talk opens a turn without the VAD, cancel silences the
speaker, mute keeps audio from the gate, and the RGB LED follows the agent's state.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agentd.events import AgentState
from agentd.sim.harness import SimulatedKiosk

pytestmark = pytest.mark.timeout(120)

TALK, CANCEL, MUTE = 17, 27, 22
RED, GREEN, BLUE = 5, 6, 13

GPIO_TOML = f"""
[gpio]
enabled = true
pin_factory = "mock"

[gpio.buttons]
talk_mode = "hold"
talk = {{ pin = {TALK}, bounce_ms = 0 }}
cancel = {{ pin = {CANCEL}, bounce_ms = 0 }}
mute = {{ pin = {MUTE}, bounce_ms = 0 }}

[gpio.leds]
driver = "rgb"
pins = [{RED}, {GREEN}, {BLUE}]
"""

LONG_REPLY = (
    "Welcome to the building. The reception is straight ahead, the lifts are on your "
    "right, and the cafeteria is on the ground floor next to the garden entrance."
)


def press(kiosk: SimulatedKiosk, pin: int) -> None:
    kiosk.service.gpio.factory.pin(pin).drive_low()  # buttons pull up: pressed = low


def release(kiosk: SimulatedKiosk, pin: int) -> None:
    kiosk.service.gpio.factory.pin(pin).drive_high()


def heard_until_ms(kiosk: SimulatedKiosk, span: int, after_ms: float = 0.0) -> bool:
    """The daemon has processed the mic's audio up to `after_ms` past utterance `span`'s end."""
    mic = kiosk.mic
    if len(mic.spans) <= span:
        return False
    heard_ms = kiosk.conversation.frames_processed * mic.period_ms
    return heard_ms >= mic.spans[span].end_ms - mic.t0_ms + after_ms


def processed_more(kiosk: SimulatedKiosk, frames: int) -> Callable[[], bool]:
    """True once the daemon has processed `frames` more mic frames than now."""
    target = kiosk.conversation.frames_processed + frames
    return lambda: kiosk.conversation.frames_processed >= target


def led(kiosk: SimulatedKiosk) -> tuple[float, float, float]:
    factory = kiosk.service.gpio.factory
    return tuple(float(factory.pin(p).state) for p in (RED, GREEN, BLUE))  # type: ignore[return-value]


async def test_buttons_and_leds_drive_the_daemon(
    make_kiosk: Callable[..., SimulatedKiosk], tmp_path: Path
) -> None:
    from agentd.sim.stack import ServiceProfile

    turns = [
        # Turn 1 is spoken while the talk button is held (push-to-talk).
        {"visitor": "Can you hear me now?", "reply": LONG_REPLY, "pause_before_ms": 1500},
        {
            "visitor": "And where are the toilets?",
            "reply": "Next to the lifts.",
            "pause_before_ms": 1500,
        },
    ]
    paced = ServiceProfile(stt_final_ms=100, llm_ttft_ms=80, llm_chunk_ms=5, tts_ttfb_ms=30,
                           tts_pace=1.0)  # fmt: skip
    kiosk = make_kiosk(turns, profile=paced, extra_toml=GPIO_TOML, tail_ms=8000)
    await kiosk.start()
    conversation = kiosk.conversation
    stack = kiosk.stack
    assert stack is not None
    try:
        await kiosk.wait_for(lambda: len(set(led(kiosk))) == 1 and led(kiosk)[0] > 0, 5)
        idle_led = led(kiosk)
        # Push-to-talk: the turn opens on the press, before any speech.
        press(kiosk, TALK)
        await kiosk.wait_for(lambda: conversation.state is AgentState.LISTENING, 5)
        listening_led = led(kiosk)
        # The visitor speaks while holding the button, and lets go just after.
        await kiosk.wait_for(lambda: heard_until_ms(kiosk, 0, after_ms=100), 15)
        release(kiosk, TALK)
        await kiosk.wait_for(lambda: conversation.state is AgentState.SPEAKING, 15)
        # The LED follows the state (from the thinking spin to steady green).
        await kiosk.wait_for(lambda: led(kiosk) == (0.0, 0.5, 0.0), 5)
        speaking_led = led(kiosk)
        # Cancel: the speaker goes silent within a period or two.
        speaker = kiosk.speaker
        press(kiosk, CANCEL)
        await kiosk.wait_for(lambda: conversation.state is AgentState.IDLE, 5)
        cancelled_at = speaker.silent_since_ms or 0.0
        release(kiosk, CANCEL)
        await kiosk.wait_for(processed_more(kiosk, 25), 5)  # 500 ms of audio later
        late = [at for at, chunk in speaker.played if at > cancelled_at + 40 and any(chunk)]
        # Mute: the next utterance never reaches the gate or STT.
        press(kiosk, MUTE)
        release(kiosk, MUTE)
        await kiosk.wait_for(lambda: conversation.state is AgentState.MUTED, 5)
        muted_led = led(kiosk)
        audio_before = sum(len(s.audio) for s in stack.stt.sessions)
        gate_events_before = kiosk.conversation.frames_processed
        # Turn 2 is spoken while muted; then a second in which a heard turn would end.
        await kiosk.wait_for(lambda: heard_until_ms(kiosk, 1, after_ms=1000), 20)
        audio_after = sum(len(s.audio) for s in stack.stt.sessions)
        muted_turns = len(kiosk.observed.turns)
        gate_open = conversation.parts.gate.is_open
        alive = conversation.frames_processed > gate_events_before  # watchdog still fed
    finally:
        await kiosk.stop()

    assert kiosk.observed.lines[0] == ("visitor", "Can you hear me now?")
    assert not late, "audio kept playing after the cancel button"
    assert kiosk.observed.turns[0].outcome == "cancelled"
    assert audio_after == audio_before and muted_turns == 1 and not gate_open and alive
    assert ("button", {"button": "talk", "long_press": False}) in kiosk.observed.events
    # LED colours: idle dim white, listening blue, speaking green, muted red.
    # (gpio.leds.brightness defaults to 0.5: "on" is half duty cycle)
    assert idle_led[0] == idle_led[1] == idle_led[2] and 0 < idle_led[0] < 0.5
    assert listening_led[2] == 0.5 and listening_led[0] == listening_led[1] == 0
    assert speaking_led[1] == 0.5 and speaking_led[0] == speaking_led[2] == 0
    assert muted_led[0] == 0.5 and muted_led[1] == muted_led[2] == 0
