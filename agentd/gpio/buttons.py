"""Kiosk buttons: gpiozero callbacks posted to the conversation as facts and commands.

gpiozero calls `when_pressed`/`when_released` on its pin-callback thread and `when_held`
on its hold thread; `ButtonPanel` timestamps the fact and posts it, followed by the
command events it stands for (`commands_for`: start a turn, cancel, toggle mute, call
staff), through `post` - the conversation's inbox, safe from any thread. The commands
need no daemon state (mute is a toggle the conversation resolves), so the same events
arrive whether a finger, MQTT or the barge-in policy asked.

The long-press button: for talk (press mode) and mute, the short action waits for the
release, since only then is it known not to be a long press. Cancel acts on press at
once (it must stop the reply immediately; cancelling before calling staff is harmless),
and its long press then additionally calls staff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from agentd.config.sections_gpio import ButtonConfig, ButtonsConfig
from agentd.errors import GpioError
from agentd.events import (
    ButtonPressed,
    ButtonReleased,
    CallStaff,
    CancelReply,
    StartListening,
    StopListening,
    ToggleMute,
    now_ms,
)

log = logging.getLogger(__name__)

BUTTON_NAMES = ("talk", "cancel", "mute", "staff")
SOURCE = "button"


class _Handler:
    """Turns one gpiozero Button's callbacks into ButtonPressed/ButtonReleased facts."""

    def __init__(
        self, name: str, *, long_press: bool, defer_press: bool, post: Callable[[object], None]
    ) -> None:
        self.name = name
        self.long_press = long_press
        self.defer_press = defer_press
        self._post = post
        self._lock = threading.Lock()  # pressed and held arrive on different threads
        self._held = False

    def pressed(self) -> None:
        with self._lock:
            self._held = False
        if not self.defer_press:
            self._post(ButtonPressed(self.name))

    def held(self) -> None:
        with self._lock:
            self._held = True
        self._post(ButtonPressed(self.name, long_press=True))

    def released(self) -> None:
        with self._lock:
            was_held, self._held = self._held, False
        at_ms = now_ms()
        if self.defer_press and not was_held:
            self._post(ButtonPressed(self.name, at_ms=at_ms))
        self._post(ButtonReleased(self.name, at_ms=at_ms))


class ButtonPanel:
    """The configured buttons; every press is posted as a fact plus its commands."""

    def __init__(
        self,
        config: ButtonsConfig,
        factory: Any,
        post: Callable[[object], None],
    ) -> None:
        from gpiozero import Button

        self._config = config
        self._post_to_loop = post  # thread-safe (the conversation's inbox)
        self._buttons: dict[str, Any] = {}
        self._closed = False
        long_name = config.long_press_button if config.long_press_action != "none" else ""
        try:
            for name in BUTTON_NAMES:
                cfg: ButtonConfig = getattr(config, name)
                if cfg.pin < 0:
                    continue
                button = Button(
                    cfg.pin,
                    pull_up=cfg.pull_up,
                    bounce_time=cfg.bounce_ms / 1000 if cfg.bounce_ms else None,
                    hold_time=cfg.hold_s,
                    pin_factory=factory,
                )
                self._buttons[name] = button
                is_long = name == long_name
                handler = _Handler(
                    name,
                    long_press=is_long,
                    defer_press=is_long and name != "cancel",
                    post=self._post,
                )
                button.when_pressed = handler.pressed
                button.when_released = handler.released
                if is_long:
                    button.when_held = handler.held
        except Exception as exc:  # gpiozero: pin in use, bad pin, no permission
            self.close()
            raise GpioError(f"gpio.buttons.{name}: cannot use GPIO{cfg.pin}: {exc}") from exc

    @property
    def names(self) -> tuple[str, ...]:
        """The buttons actually fitted (pin >= 0)."""
        return tuple(self._buttons)

    def pin_of(self, name: str) -> Any:
        """The gpiozero pin object of one button (tests drive mock pins through this)."""
        return self._buttons[name].pin

    def _post(self, event: object) -> None:
        try:
            self._post_to_loop(event)
            for command in commands_for(event, self._config):
                self._post_to_loop(command)
        except RuntimeError:  # loop closed during shutdown: the press no longer matters
            log.debug("dropped %r: event loop closed", event)

    def close(self) -> None:
        """Release the pins; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for button in self._buttons.values():
            button.close()
        self._buttons.clear()


def commands_for(event: object, config: ButtonsConfig) -> tuple[object, ...]:
    """The commands one button fact stands for.

    Commands keep the press time (`at_ms`), so latency is measured from the finger.
    """
    if isinstance(event, ButtonPressed):
        at = event.at_ms
        if event.long_press:
            if (
                config.long_press_action == "call_staff"
                and event.button == config.long_press_button
            ):
                return (CallStaff(f"long press on {event.button}", SOURCE, at_ms=at),)
            return ()
        if event.button == "talk":
            return (StartListening(SOURCE, at_ms=at),)
        if event.button == "cancel":
            return (CancelReply(SOURCE, at_ms=at),)
        if event.button == "mute":
            return (ToggleMute(SOURCE),)
        if event.button == "staff":
            return (CallStaff("staff button", SOURCE, at_ms=at),)
    if isinstance(event, ButtonReleased) and event.button == "talk" and config.talk_mode == "hold":
        return (StopListening(SOURCE, at_ms=event.at_ms),)
    return ()
