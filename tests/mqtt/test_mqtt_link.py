"""MqttLink edge cases: guarded callbacks, and falling back to 3.1.1 when v5 is refused."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from agentd.events import LinkState
from agentd.mqtt.link import Inbound, MqttLink, Will
from tests.helpers.mosquitto import Mosquitto, free_port
from tests.mqtt.conftest import LinkWatcher, Observer

pytestmark = pytest.mark.timeout(30)
# MQTT 5 CONNACK: type 0x20, remaining length 3, flags 0, reason 0x84 (unsupported
# protocol version), properties length 0 (MQTT 5.0 spec 3.2).
V5_REFUSAL = bytes([0x20, 0x03, 0x00, 0x84, 0x00])
PROTOCOL_LEVEL_OFFSET = 8  # fixed header (2 bytes for a short CONNECT) + "\0\4MQTT"


class V311OnlyProxy:
    """Sits in front of Mosquitto and answers MQTT 5 CONNECTs like a 3.1.1-only broker."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.port = free_port()
        self.refused = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.read(4096)
        if len(head) > PROTOCOL_LEVEL_OFFSET and head[PROTOCOL_LEVEL_OFFSET] == 5:
            self.refused += 1
            writer.write(V5_REFUSAL)
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(self.broker.host, self.broker.port)
        up_writer.write(head)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    dst.close()


def make_link(port: int, watcher: LinkWatcher, **kwargs: Any) -> MqttLink:
    return MqttLink(loop=asyncio.get_running_loop(), host="127.0.0.1", port=port,
                    client_id="agentd-linktest", will=Will("t/linktest/status", "offline"),
                    max_backoff_s=1.0, on_link_changed=watcher, **kwargs)  # fmt: skip


async def test_falls_back_to_v311_when_v5_refused(
    broker: Mosquitto, observers: list[Observer]
) -> None:
    proxy = V311OnlyProxy(broker)
    await proxy.start()
    obs = Observer(broker, "t/linktest/#")
    observers.append(obs)
    watcher = LinkWatcher()
    link = make_link(proxy.port, watcher)
    link.publish("t/linktest/early", "queued before connect", qos=1)
    link.start()
    await watcher.wait(LinkState.CONNECTED)
    assert link.protocol == "3.1.1" and proxy.refused == 1
    await obs.await_for("t/linktest/early")
    await obs.await_for("t/linktest/status", payload=b"online")
    await link.stop(final=("t/linktest/status", "offline"))
    await obs.await_for("t/linktest/status", payload=b"offline")
    await proxy.close()


async def test_exception_in_callback_is_counted_not_fatal(
    broker: Mosquitto, observers: list[Observer]
) -> None:
    class Exploding(MqttLink):
        """Raises inside paho's network thread on the first message."""

        armed = True

        def _handle_message(self, client: Any, userdata: Any, message: Any) -> None:
            if Exploding.armed:
                Exploding.armed = False
                raise RuntimeError("bug in a callback")
            super()._handle_message(client, userdata, message)

    got: asyncio.Queue[Inbound] = asyncio.Queue()
    watcher = LinkWatcher()
    link = Exploding(loop=asyncio.get_running_loop(), host=broker.host, port=broker.port,
                     client_id="agentd-guard", will=Will("t/guard/status", "offline"),
                     on_link_changed=watcher, on_message=got.put_nowait)  # fmt: skip
    link.subscribe("t/guard/in")
    link.start()
    await watcher.wait(LinkState.CONNECTED)
    obs = Observer(broker)
    observers.append(obs)
    obs.client.publish("t/guard/in", b"first", qos=1).wait_for_publish(5)
    obs.client.publish("t/guard/in", b"second", qos=1).wait_for_publish(5)
    msg = await asyncio.wait_for(got.get(), 10)
    assert msg.payload == b"second"  # the network thread survived the first one
    assert link.counters.callback_errors == 1
    assert link.state is LinkState.CONNECTED
    await link.stop()
