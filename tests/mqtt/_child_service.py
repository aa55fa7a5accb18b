"""Child process for the last-will test: runs an MqttService until it is SIGKILLed."""

from __future__ import annotations

import asyncio
import sys

from agentd.config.sections_core import DeviceConfig
from agentd.config.sections_mqtt import MqttConfig
from agentd.events import LinkChanged, LinkState
from agentd.mqtt import MqttService


class Target:
    """Accepts every command and does nothing: only the link matters here."""

    async def say(self, text: str) -> None: ...
    async def set_muted(self, muted: bool) -> None: ...
    async def set_volume(self, level: float) -> None: ...
    async def cancel(self) -> None: ...
    async def reset_conversation(self) -> None: ...
    async def reload_config(self) -> str:
        return ""

    def status(self) -> dict[str, object]:
        return {}

    async def set_prompt(self, prompt: str) -> None: ...
    async def restart(self) -> None: ...


async def main(host: str, port: int) -> None:
    def on_link(event: LinkChanged) -> None:
        if event.state is LinkState.CONNECTED:
            print("connected", flush=True)

    cfg = MqttConfig(enabled=True, host=host, port=port, keepalive_s=5)
    service = MqttService(cfg, DeviceConfig(id="kiosk1"), None, Target(), dict,
                          on_link_changed=on_link)  # fmt: skip
    service.start()
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
