"""The MQTT command target: each remote command becomes a command event, or a service call.

Conversation commands (say, mute, volume, cancel, reset) are posted as the same events
a button or the barge-in policy posts; the service-level ones (reload, restart,
set_prompt) go to the supervisor. The supervisor is a small Protocol here, so this
module never imports the lifecycle (no import cycle). The diagnostics commands (self_test,
config, capture, capture_get) go to the kiosk's diagnostics, also seen through a Protocol.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Protocol

from agentd.errors import AgentdError, CommandError
from agentd.events import CancelReply, ResetConversation, Say, SetMuted, SetVolume

SOURCE = "mqtt"
RESTART_REPLY_GRACE_S = 0.2  # let the command's reply reach the broker before exiting


class Supervisor(Protocol):
    """What remote commands need from the daemon's supervisor."""

    async def reload(self) -> str: ...

    def request_stop(self, exit_code: int = 0) -> None: ...


class Diagnostics(Protocol):
    """What the diagnostics commands need (agentd.diagnostics.kiosk_diagnostics)."""

    async def run_self_test(self, visitor_level_dbfs: float | None = None) -> dict[str, object]: ...

    def effective_config(self) -> dict[str, object]: ...

    @property
    def capture(self) -> CaptureControl: ...


class CaptureControl(Protocol):
    def arm(self, turns: int) -> dict[str, object]: ...

    def listing(self) -> dict[str, object]: ...

    def read_chunk(self, name: str, offset: int, length: int) -> dict[str, object]: ...


class RemoteCommands:
    """Implements `agentd.mqtt.commands.CommandTarget` by posting command events."""

    def __init__(
        self,
        *,
        post: Callable[[object], None],
        supervisor: Supervisor,
        health: Callable[[], dict[str, object]],
        persona_path: Callable[[], str],
        set_system_prompt: Callable[[str], None],
        restart_exit_code: int,
        diagnostics: Diagnostics,
    ) -> None:
        self._post = post
        self._supervisor = supervisor
        self._health = health
        self._persona_path = persona_path
        self._set_system_prompt = set_system_prompt
        self._restart_exit_code = restart_exit_code
        self._diagnostics = diagnostics

    async def say(self, text: str) -> None:
        self._post(Say(text, SOURCE))

    async def set_muted(self, muted: bool) -> None:
        self._post(SetMuted(muted, SOURCE))

    async def set_volume(self, level: float) -> None:
        self._post(SetVolume(level, SOURCE))

    async def cancel(self) -> None:
        self._post(CancelReply(SOURCE))

    async def reset_conversation(self) -> None:
        self._post(ResetConversation(SOURCE))

    async def reload_config(self) -> str:
        try:
            return await self._supervisor.reload()
        except AgentdError as exc:
            raise CommandError("invalid_config", str(exc)) from None

    def status(self) -> dict[str, object]:
        return self._health()

    async def set_prompt(self, prompt: str) -> None:
        try:
            await asyncio.to_thread(write_atomically, self._persona_path(), prompt)
        except OSError as exc:
            raise CommandError(
                "persist_failed", f"cannot persist the prompt: {exc.strerror}"
            ) from None
        self._set_system_prompt(prompt)

    async def restart(self) -> None:
        # Reply first (the service sends it when we return), then exit for systemd to restart.
        asyncio.get_running_loop().call_later(
            RESTART_REPLY_GRACE_S, self._supervisor.request_stop, self._restart_exit_code
        )

    async def self_test(self, visitor_level_dbfs: float | None = None) -> dict[str, object]:
        return await self._diagnostics.run_self_test(visitor_level_dbfs)

    def effective_config(self) -> dict[str, object]:
        return self._diagnostics.effective_config()

    async def capture(self, turns: int) -> dict[str, object]:
        return self._diagnostics.capture.arm(turns)

    async def capture_get(self, file: str | None, offset: int, length: int) -> dict[str, object]:
        capture = self._diagnostics.capture
        if file is None:
            return capture.listing()
        return capture.read_chunk(file, offset, length)  # one bounded chunk: quick


def write_atomically(path: str, text: str) -> None:
    """Persist via a temp file and rename, so a power cut never leaves half a persona."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
