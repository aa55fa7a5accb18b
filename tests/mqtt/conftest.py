"""Fixtures for the MQTT tests: a real Mosquitto, a real paho observer, a recording target."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agentd.config.sections_core import DeviceConfig
from agentd.config.sections_mqtt import MqttConfig
from agentd.errors import CommandError
from agentd.events import LinkChanged, LinkState
from tests.helpers.mosquitto import Mosquitto

DEVICE_ID = "kiosk1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A plain Mosquitto on a free loopback port; killed at teardown whatever happened."""
    b = Mosquitto(tmp_path).start()
    try:
        yield b
    finally:
        b.kill()


def mqtt_config(broker: Mosquitto, **overrides: Any) -> MqttConfig:
    base = MqttConfig(enabled=True, host=broker.host, port=broker.port, keepalive_s=5,
                      max_backoff_s=1.0)  # fmt: skip
    return dataclasses.replace(base, **overrides)


def device_config() -> DeviceConfig:
    return DeviceConfig(id=DEVICE_ID, name="Front desk kiosk", location="Lobby")


class Observer:
    """A real paho client that records every message it sees (the operator's view)."""

    def __init__(self, broker: Mosquitto, *topics: str, protocol: int = mqtt.MQTTv5,
                 client_id: str = "", clean: bool = True, **auth: Any) -> None:  # fmt: skip
        self.messages: list[mqtt.MQTTMessage] = []
        self._cond = threading.Condition()
        self._topics = topics
        self._connected = threading.Event()
        self._pending_subs: set[int] = set()
        kwargs: dict[str, Any] = {"protocol": protocol, "client_id": client_id}
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = clean
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, **kwargs)
        if auth:
            self.client.username_pw_set(auth["username"], auth["password"])
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        props = None
        if protocol == mqtt.MQTTv5 and not clean:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        extra: dict[str, Any] = {"clean_start": clean, "properties": props}
        self.client.connect(broker.host, broker.port, keepalive=5,
                            **(extra if protocol == mqtt.MQTTv5 else {}))  # fmt: skip
        self.client.loop_start()
        assert self._connected.wait(10), "observer could not connect"

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            for topic in self._topics:
                self._pending_subs.add(client.subscribe(topic, qos=1)[1])
        if not self._topics:
            self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        # "connected" means subscribed: a message published right after must be seen
        with self._cond:
            self._pending_subs.discard(mid)
            if not self._pending_subs:
                self._connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait_for(self, topic: str, count: int = 1, timeout: float = 10.0,
                 payload: bytes | None = None) -> list[mqtt.MQTTMessage]:  # fmt: skip
        """Block until `count` messages on `topic` (optionally with `payload`) arrived."""

        def matching() -> list[mqtt.MQTTMessage]:
            return [m for m in self.messages if mqtt.topic_matches_sub(topic, m.topic)
                    and (payload is None or m.payload == payload)]  # fmt: skip

        with self._cond:
            ok = self._cond.wait_for(lambda: len(matching()) >= count, timeout)
            found = matching()
        assert ok, f"waited {timeout}s for {count} on {topic}, got {[m.payload for m in found]}"
        return found

    async def await_for(self, topic: str, count: int = 1, timeout: float = 10.0,
                        payload: bytes | None = None) -> list[mqtt.MQTTMessage]:  # fmt: skip
        return await asyncio.to_thread(self.wait_for, topic, count, timeout, payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def observers() -> Iterator[list[Observer]]:
    """Collects observers created in a test and closes them at teardown."""
    made: list[Observer] = []
    yield made
    for obs in made:
        obs.close()


class RecordingTarget:
    """The daemon side of remote commands, recording what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.muted = False
        self.volume = 0.5

    async def say(self, text: str) -> None:
        self.calls.append(("say", text))

    async def set_muted(self, muted: bool) -> None:
        self.muted = muted
        self.calls.append(("set_muted", muted))

    async def set_volume(self, level: float) -> None:
        self.volume = level
        self.calls.append(("set_volume", level))

    async def cancel(self) -> None:
        self.calls.append(("cancel", None))

    async def reset_conversation(self) -> None:
        self.calls.append(("reset_conversation", None))

    async def reload_config(self) -> str:
        self.calls.append(("reload_config", None))
        raise CommandError("invalid_config", "llm.model: missing required value")

    def status(self) -> dict[str, object]:
        return {"state": "idle", "muted": self.muted, "llm": {"model": "m", "api_key": "sk-x"}}

    async def set_prompt(self, prompt: str) -> None:
        self.calls.append(("set_prompt", prompt))

    async def restart(self) -> None:
        self.calls.append(("restart", None))

    async def self_test(self, visitor_level_dbfs: float | None = None) -> dict[str, object]:
        self.calls.append(("self_test", visitor_level_dbfs))
        return {"ok": True, "echo_delay_ms": 40.0}

    def effective_config(self) -> dict[str, object]:
        return {"config_hash": "0123456789abcdef", "config": {"llm": {"max_tokens": 300}}}

    async def capture(self, turns: int) -> dict[str, object]:
        self.calls.append(("capture", turns))
        return {"armed_turns": turns}

    async def capture_get(self, file: str | None, offset: int, length: int) -> dict[str, object]:
        self.calls.append(("capture_get", (file, offset, length)))
        return {"files": []}


def health() -> dict[str, object]:
    return {"links": {"stt": "connected"}, "xruns": 0, "volume": 0.5}


class LinkWatcher:
    """Passed as on_link_changed: lets a test await a link state instead of sleeping."""

    def __init__(self) -> None:
        self.history: list[LinkState] = []
        self._changed = asyncio.Event()

    def __call__(self, event: LinkChanged) -> None:
        self.history.append(event.state)
        self._changed.set()

    async def wait(self, state: LinkState, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.history or self.history[-1] is not state:
                self._changed.clear()
                await self._changed.wait()


def reply_json(msg: mqtt.MQTTMessage) -> dict[str, Any]:
    data = json.loads(msg.payload)
    assert isinstance(data, dict)
    return data
