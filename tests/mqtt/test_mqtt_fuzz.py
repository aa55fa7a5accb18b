"""Hypothesis: >= 2,000 malformed commands through a real broker change nothing.

Every payload below is invalid by construction (unknown name, bad UTF-8, oversized,
unknown keys, wrong types, out of range, forbidden). Each must get an error reply with its
correlation data, the target must never be called, and `status` must still answer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agentd.events import LinkChanged, LinkState
from agentd.mqtt import MqttService
from agentd.mqtt.commands import COMMAND_NAMES, DANGEROUS
from tests.helpers.mosquitto import Mosquitto
from tests.mqtt.conftest import DEVICE_ID, RecordingTarget, device_config, health, mqtt_config

pytestmark = pytest.mark.timeout(120)
ROOT = f"agentd/{DEVICE_ID}"
LIMIT = 256  # mqtt.max_command_bytes minimum, so "oversized" stays cheap
EXAMPLES = 2000
RESPONSE = f"{ROOT}/reply/fuzz"
NO_ARGS = [n for n in COMMAND_NAMES if n not in ("say", "set_prompt", "volume")]
SAFE = [n for n in COMMAND_NAMES if n not in DANGEROUS]
ARG_KEYS = {"say": "text", "volume": "level", "set_prompt": "prompt"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
topic_text = st.text(
    st.characters(categories=("L", "N", "P", "S"), exclude_characters="/+#"), min_size=1,
    max_size=24,
)  # fmt: skip


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()


unknown_name = st.tuples(
    topic_text.filter(lambda n: n not in COMMAND_NAMES), st.binary(max_size=64)
)
bad_utf8 = st.tuples(st.sampled_from(SAFE), st.binary(max_size=40).map(lambda b: b + b"\xff"))
oversized = st.tuples(st.sampled_from(SAFE), st.binary(min_size=LIMIT + 1, max_size=LIMIT * 4))
extra_key = st.tuples(
    st.sampled_from(SAFE),
    st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("text", "level", "id")),
                    json_values, min_size=1, max_size=3),
).map(lambda t: (t[0], dumps({**t[1], **({"text": "hi"} if t[0] == "say" else {})})))  # fmt: skip
wrong_text = st.tuples(
    st.just("say"),
    json_values.filter(lambda v: not isinstance(v, str)) | st.sampled_from(["", "  "]),
).map(lambda t: (t[0], dumps({"text": t[1]})))  # fmt: skip
wrong_level = st.tuples(
    st.just("volume"),
    json_values.filter(lambda v: isinstance(v, bool) or not isinstance(v, (int, float)))
    | st.floats(min_value=100.0001, allow_infinity=False) | st.integers(max_value=-1),
).map(lambda t: (t[0], dumps({"level": t[1]})))  # fmt: skip
bad_id = st.tuples(
    st.sampled_from(NO_ARGS), json_values.filter(lambda v: not isinstance(v, str) and v is not None)
).map(lambda t: (t[0], dumps({"id": t[1]})))  # fmt: skip
plain_args = st.tuples(
    st.sampled_from([n for n in NO_ARGS if n not in DANGEROUS]),
    st.text(max_size=30).filter(
        lambda s: not s.strip().startswith("{")
        and s.strip().upper() not in ("", "PRESS", "ON", "OFF")
    ).map(str.encode),
)  # fmt: skip
broken_json = st.tuples(
    st.sampled_from(SAFE), st.text(max_size=30).map(lambda s: b"{" + s.encode())
)
forbidden = st.tuples(st.sampled_from(sorted(DANGEROUS)), st.sampled_from([b"", b"{}", b"PRESS"]))
malformed = st.one_of(unknown_name, bad_utf8, oversized, extra_key, wrong_text, wrong_level,
                      bad_id, plain_args, broken_json, forbidden)  # fmt: skip


class Console:
    """An MQTT 5 operator console: request with correlation data, await the reply."""

    def __init__(self, broker: Mosquitto) -> None:
        self._replies: dict[bytes, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle
        self.client.loop_start()
        self.client.subscribe(RESPONSE, qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", b"")
        with self._cond:
            self._replies[bytes(corr)] = json.loads(msg.payload)
            self._cond.notify_all()

    def request(self, name: str, payload: bytes) -> dict[str, Any]:
        corr = str(next(self._ids)).encode()
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic, props.CorrelationData = RESPONSE, corr
        self.client.publish(f"{ROOT}/cmd/{name}", payload, qos=1, properties=props)
        with self._cond:
            assert self._cond.wait_for(lambda: corr in self._replies, 10), (name, payload)
            return self._replies.pop(corr)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def running(broker: Mosquitto) -> Iterator[tuple[MqttService, RecordingTarget]]:
    """The service on its own loop thread, as the daemon runs it; the test plays operator."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-loop")
    thread.start()
    target = RecordingTarget()
    cfg = mqtt_config(broker, max_command_bytes=LIMIT, allow_dangerous_commands=False)
    connected = threading.Event()

    def on_link(event: LinkChanged) -> None:
        if event.state is LinkState.CONNECTED:
            connected.set()

    service = MqttService(cfg, device_config(), None, target, health, loop=loop,
                          on_link_changed=on_link)  # fmt: skip
    loop.call_soon_threadsafe(service.start)
    try:
        assert connected.wait(10)
        yield service, target
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_malformed_commands_change_nothing(
    broker: Mosquitto, running: tuple[MqttService, RecordingTarget]
) -> None:
    service, target = running
    console = Console(broker)
    seen: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(malformed)
    def fuzz(case: tuple[str, bytes]) -> None:
        name, payload = case
        reply = console.request(name, payload)
        assert reply["ok"] is False, (name, payload, reply)
        seen.append(reply["error"]["code"])

    try:
        fuzz()
        assert len(seen) >= EXAMPLES
        assert set(seen) >= {"unknown_command", "malformed", "too_large", "invalid", "forbidden"}
        assert target.calls == []
        status = console.request("status", b"")
        assert status["ok"] is True and status["result"]["state"] == "idle"
        assert service.commands_rejected == len(seen)
    finally:
        console.close()
