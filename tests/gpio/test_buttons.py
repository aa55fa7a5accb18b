"""Buttons end to end: mock pin edges -> gpiozero -> posted facts and their commands."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentd.config import parse_config
from agentd.config.sections_gpio import ButtonsConfig
from agentd.events import (
    ButtonPressed,
    ButtonReleased,
    CallStaff,
    CancelReply,
    StartListening,
    StopListening,
    ToggleMute,
)
from agentd.gpio.buttons import ButtonPanel, commands_for

pytestmark = pytest.mark.timeout(20)
CONFIG_OF: dict[int, ButtonsConfig] = {}  # the panel config each test inbox checks against

TALK, CANCEL, MUTE, STAFF = 17, 22, 23, 24


def buttons(**overrides: Any) -> ButtonsConfig:
    table: dict[str, Any] = {
        "talk": {"pin": TALK, "hold_s": 0.3, "bounce_ms": 0},
        "cancel": {"pin": CANCEL, "hold_s": 0.3, "bounce_ms": 0},
        "mute": {"pin": MUTE, "bounce_ms": 0},
        "staff": {"pin": STAFF, "bounce_ms": 0},
    }
    table.update(overrides)
    return parse_config({"gpio": {"buttons": table}}).gpio.buttons


class Inbox:
    """Stands in for the conversation's inbox: `emit` is called from GPIO threads.

    Facts (ButtonPressed/Released) are queued for the test; every command posted must
    follow its fact and be exactly what `commands_for` says that fact stands for.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.commands: list[object] = []
        self._expected: list[object] = []

    def emit(self, event: object) -> None:
        if isinstance(event, (ButtonPressed, ButtonReleased)):
            self._expected = list(commands_for(event, CONFIG_OF[id(self)]))
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
            return
        assert self._expected and self._expected.pop(0) == event  # posted right after its fact
        self.commands.append(event)

    async def next(self, timeout: float = 5.0) -> object:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def take(self, n: int) -> list[object]:
        return [await self.next() for _ in range(n)]


async def press(pin: Any) -> None:
    """Press a pull-up button (active low) from another thread, like a real GPIO edge."""
    await asyncio.to_thread(pin.drive_low)


async def release(pin: Any) -> None:
    await asyncio.to_thread(pin.drive_high)


async def test_hold_to_talk_press_and_release(factory: Any) -> None:
    inbox = Inbox(asyncio.get_running_loop())
    config = buttons(talk_mode="hold")
    CONFIG_OF[id(inbox)] = config
    panel = ButtonPanel(config, factory, inbox.emit)
    try:
        talk = panel.pin_of("talk")
        await press(talk)
        first = await inbox.next()
        assert isinstance(first, ButtonPressed)
        assert (first.button, first.long_press) == ("talk", False)
        assert commands_for(first, config) == (StartListening("button", first.at_ms),)
        await release(talk)
        second = await inbox.next()
        assert isinstance(second, ButtonReleased) and second.button == "talk"
        assert second.at_ms >= first.at_ms
        assert commands_for(second, config) == (StopListening("button", second.at_ms),)
    finally:
        panel.close()
    assert inbox.queue.empty()


async def test_press_mode_press_starts_turn_release_does_nothing(factory: Any) -> None:
    inbox = Inbox(asyncio.get_running_loop())
    config = buttons(talk_mode="press")
    CONFIG_OF[id(inbox)] = config
    panel = ButtonPanel(config, factory, inbox.emit)
    try:
        await press(panel.pin_of("talk"))
        pressed = await inbox.next()
        assert isinstance(pressed, ButtonPressed) and not pressed.long_press
        assert [type(c) for c in commands_for(pressed, config)] == [StartListening]
        await release(panel.pin_of("talk"))
        released = await inbox.next()
        assert isinstance(released, ButtonReleased)
        assert commands_for(released, config) == ()
    finally:
        panel.close()


async def test_cancel_acts_on_press_and_long_press_calls_staff(factory: Any) -> None:
    inbox = Inbox(asyncio.get_running_loop())
    config = buttons(long_press_button="cancel")
    CONFIG_OF[id(inbox)] = config
    panel = ButtonPanel(config, factory, inbox.emit)
    try:
        cancel = panel.pin_of("cancel")
        # short press: cancel at once, no staff call
        await press(cancel)
        short = await inbox.next()
        assert isinstance(short, ButtonPressed) and short.button == "cancel"
        assert [type(c) for c in commands_for(short, config)] == [CancelReply]
        await release(cancel)
        assert isinstance(await inbox.next(), ButtonReleased)
        # long press (hold_s = 0.3): cancel on press, then the held event calls staff
        await press(cancel)
        again = await inbox.next()
        assert isinstance(again, ButtonPressed) and (again.button, again.long_press) == (
            "cancel",
            False,
        )
        held = await inbox.next()
        assert isinstance(held, ButtonPressed) and held.long_press and held.button == "cancel"
        (call,) = commands_for(held, config)
        assert call == CallStaff("long press on cancel", "button", held.at_ms)
        assert held.at_ms - again.at_ms >= 0.25 * 1000  # hold_s = 0.3, generous bound
        await release(cancel)
        assert isinstance(await inbox.next(), ButtonReleased)
    finally:
        panel.close()


async def test_long_press_on_talk_in_press_mode_is_only_a_staff_call(factory: Any) -> None:
    inbox = Inbox(asyncio.get_running_loop())
    config = buttons(talk_mode="press", long_press_button="talk")
    CONFIG_OF[id(inbox)] = config
    panel = ButtonPanel(config, factory, inbox.emit)
    try:
        talk = panel.pin_of("talk")
        await press(talk)
        held = await inbox.next()  # nothing before the hold: the short press is deferred
        assert isinstance(held, ButtonPressed) and held.long_press
        assert [type(c) for c in commands_for(held, config)] == [CallStaff]
        await release(talk)
        released = await inbox.next()
        assert isinstance(released, ButtonReleased)  # no deferred short press after a hold
        # a short press is reported at release and starts a turn
        await press(talk)
        await release(talk)
        short, rel = await inbox.take(2)
        assert isinstance(short, ButtonPressed) and not short.long_press
        assert isinstance(rel, ButtonReleased)
        assert [type(c) for c in commands_for(short, config)] == [StartListening]
    finally:
        panel.close()


async def test_mute_toggles_and_staff_button_calls(factory: Any) -> None:
    inbox = Inbox(asyncio.get_running_loop())
    config = buttons()
    CONFIG_OF[id(inbox)] = config
    panel = ButtonPanel(config, factory, inbox.emit)
    try:
        for _ in range(2):  # the conversation resolves the toggle against its own state
            await press(panel.pin_of("mute"))
            await release(panel.pin_of("mute"))
            pressed, released = await inbox.take(2)
            assert commands_for(pressed, config) == (ToggleMute("button"),)
            assert commands_for(released, config) == ()
        await press(panel.pin_of("staff"))
        staff = await inbox.next()
        assert [type(c) for c in commands_for(staff, config)] == [CallStaff]
    finally:
        panel.close()


async def test_unfitted_buttons_claim_no_pin_and_close_is_idempotent(factory: Any) -> None:
    config = parse_config({"gpio": {"buttons": {"talk": {"pin": TALK}}}}).gpio.buttons
    panel = ButtonPanel(config, factory, lambda e: None)
    assert panel.names == ("talk",)
    panel.close()
    panel.close()
    # the pin is free again after close
    again = ButtonPanel(config, factory, lambda e: None)
    again.close()


async def test_pin_in_use_is_a_gpio_error(factory: Any) -> None:
    from gpiozero import LED

    from agentd.errors import GpioError

    holder = LED(TALK, pin_factory=factory)
    try:
        with pytest.raises(GpioError, match=r"talk.*GPIO17"):
            ButtonPanel(buttons(), factory, lambda e: None)
    finally:
        holder.close()


def test_long_press_on_talk_in_hold_mode_is_rejected() -> None:
    from agentd.errors import ConfigError

    with pytest.raises(ConfigError, match=r"gpio\.buttons\.long_press_button"):
        parse_config({"gpio": {"buttons": {"talk_mode": "hold", "long_press_button": "talk"}}})
