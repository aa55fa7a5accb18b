"""Buttons end to end: mock pin edges -> gpiozero -> bridge -> events on a running loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentd.config import parse_config
from agentd.config.sections_fleet import ButtonsConfig
from agentd.events import (
    ButtonPressed,
    ButtonReleased,
    CancelReply,
    SetMuted,
    StaffCalled,
    StartListening,
    StopListening,
)
from agentd.gpio.buttons import ButtonPanel, commands_for

pytestmark = pytest.mark.timeout(20)

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
    """Collects what the bridge delivers; asserts delivery happens on the loop thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    def emit(self, event: object) -> None:
        assert asyncio.get_running_loop() is self.loop  # only ever called on the loop
        self.queue.put_nowait(event)

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
    panel = ButtonPanel(config, factory, inbox.emit, asyncio.get_running_loop())
    try:
        talk = panel.pin_of("talk")
        await press(talk)
        first = await inbox.next()
        assert isinstance(first, ButtonPressed)
        assert (first.button, first.long_press) == ("talk", False)
        assert commands_for(first, config, muted=False) == (StartListening("button", first.at_ms),)
        await release(talk)
        second = await inbox.next()
        assert isinstance(second, ButtonReleased) and second.button == "talk"
        assert second.at_ms >= first.at_ms
        assert commands_for(second, config, muted=False) == (StopListening("button", second.at_ms),)
    finally:
        panel.close()
    assert inbox.queue.empty()


async def test_press_mode_press_starts_turn_release_does_nothing(factory: Any) -> None:
    inbox = Inbox(asyncio.get_running_loop())
    config = buttons(talk_mode="press")
    panel = ButtonPanel(config, factory, inbox.emit, asyncio.get_running_loop())
    try:
        await press(panel.pin_of("talk"))
        pressed = await inbox.next()
        assert isinstance(pressed, ButtonPressed) and not pressed.long_press
        assert [type(c) for c in commands_for(pressed, config, muted=False)] == [StartListening]
        await release(panel.pin_of("talk"))
        released = await inbox.next()
        assert isinstance(released, ButtonReleased)
        assert commands_for(released, config, muted=False) == ()
    finally:
        panel.close()


async def test_cancel_acts_on_press_and_long_press_calls_staff(factory: Any) -> None:
    inbox = Inbox(asyncio.get_running_loop())
    config = buttons(long_press_button="cancel")
    panel = ButtonPanel(config, factory, inbox.emit, asyncio.get_running_loop())
    try:
        cancel = panel.pin_of("cancel")
        # short press: cancel at once, no staff call
        await press(cancel)
        short = await inbox.next()
        assert isinstance(short, ButtonPressed) and short.button == "cancel"
        assert [type(c) for c in commands_for(short, config, muted=False)] == [CancelReply]
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
        (call,) = commands_for(held, config, muted=False)
        assert call == StaffCalled("long press on cancel", "button", held.at_ms)
        assert held.at_ms - again.at_ms >= 0.25 * 1000  # hold_s = 0.3, generous bound
        await release(cancel)
        assert isinstance(await inbox.next(), ButtonReleased)
    finally:
        panel.close()


async def test_long_press_on_talk_in_press_mode_is_only_a_staff_call(factory: Any) -> None:
    inbox = Inbox(asyncio.get_running_loop())
    config = buttons(talk_mode="press", long_press_button="talk")
    panel = ButtonPanel(config, factory, inbox.emit, asyncio.get_running_loop())
    try:
        talk = panel.pin_of("talk")
        await press(talk)
        held = await inbox.next()  # nothing before the hold: the short press is deferred
        assert isinstance(held, ButtonPressed) and held.long_press
        assert [type(c) for c in commands_for(held, config, muted=False)] == [StaffCalled]
        await release(talk)
        released = await inbox.next()
        assert isinstance(released, ButtonReleased)  # no deferred short press after a hold
        # a short press is reported at release and starts a turn
        await press(talk)
        await release(talk)
        short, rel = await inbox.take(2)
        assert isinstance(short, ButtonPressed) and not short.long_press
        assert isinstance(rel, ButtonReleased)
        assert [type(c) for c in commands_for(short, config, muted=False)] == [StartListening]
    finally:
        panel.close()


async def test_mute_toggles_and_staff_button_calls(factory: Any) -> None:
    inbox = Inbox(asyncio.get_running_loop())
    config = buttons()
    panel = ButtonPanel(config, factory, inbox.emit, asyncio.get_running_loop())
    try:
        muted = False
        for expected in (True, False):
            await press(panel.pin_of("mute"))
            await release(panel.pin_of("mute"))
            pressed, released = await inbox.take(2)
            (cmd,) = commands_for(pressed, config, muted=muted)
            assert cmd == SetMuted(expected, "button")
            muted = cmd.muted  # type: ignore[attr-defined]
            assert commands_for(released, config, muted=muted) == ()
        await press(panel.pin_of("staff"))
        staff = await inbox.next()
        assert [type(c) for c in commands_for(staff, config, muted=False)] == [StaffCalled]
    finally:
        panel.close()


async def test_unfitted_buttons_claim_no_pin_and_close_is_idempotent(factory: Any) -> None:
    config = parse_config({"gpio": {"buttons": {"talk": {"pin": TALK}}}}).gpio.buttons
    panel = ButtonPanel(config, factory, lambda e: None, asyncio.get_running_loop())
    assert panel.names == ("talk",)
    panel.close()
    panel.close()
    # the pin is free again after close
    again = ButtonPanel(config, factory, lambda e: None, asyncio.get_running_loop())
    again.close()


async def test_pin_in_use_is_a_gpio_error(factory: Any) -> None:
    from gpiozero import LED

    from agentd.errors import GpioError

    holder = LED(TALK, pin_factory=factory)
    try:
        with pytest.raises(GpioError, match=r"talk.*GPIO17"):
            ButtonPanel(buttons(), factory, lambda e: None, asyncio.get_running_loop())
    finally:
        holder.close()


def test_long_press_on_talk_in_hold_mode_is_rejected() -> None:
    from agentd.errors import ConfigError

    with pytest.raises(ConfigError, match=r"gpio\.buttons\.long_press_button"):
        parse_config({"gpio": {"buttons": {"talk_mode": "hold", "long_press_button": "talk"}}})
