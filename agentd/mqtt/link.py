"""The MQTT connection: paho-mqtt 2.x on its own network thread, bridged to asyncio.

Contract: `start()` never blocks and never fails because the broker is down; paho
reconnects forever with capped exponential backoff. Every paho callback is guarded, so a
bug in our handling can never kill the network thread (it is logged and counted). QoS 1
messages published while disconnected wait in a bounded queue (oldest dropped and
counted) and are flushed in order right after the next CONNACK. Everything that crosses
from the network thread to the asyncio loop goes through `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agentd.backoff import Backoff
from agentd.config.sections_mqtt import MqttTlsConfig
from agentd.errors import ConfigError
from agentd.events import LinkChanged, LinkState

log = logging.getLogger("agentd.mqtt")

# MQTT 5 CONNACK reason 0x84 "Unsupported Protocol Version"; a 3.1.1-only broker answers a
# v5 CONNECT with the 3.1.1 return code 1 "unacceptable protocol version" (spec 3.2.2.3).
_V5_REFUSED_CODES = frozenset({0x84, 0x01})
# CONNACK codes that retrying cannot fix: bad credentials / not authorised
# (v5 0x86, 0x87; v3.1.1 4, 5). The link stays FAILED but paho keeps retrying slowly.
_AUTH_REFUSED_CODES = frozenset({0x86, 0x87, 0x04, 0x05})
_STOP_FLUSH_S = 2.0  # how long stop() waits for "offline" to reach the broker
# paho's own default first reconnect delay; a broker restart takes about that long.
RECONNECT_FIRST_S = 1.0

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message, copied out of paho's objects on the network thread."""

    topic: str
    payload: bytes
    retain: bool = False
    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Will:
    """Last will: published by the broker when the connection dies without DISCONNECT."""

    topic: str
    payload: str
    qos: int = 1
    retain: bool = True


@dataclass(slots=True)
class _Pending:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    correlation_data: bytes | None = None


@dataclass(slots=True)
class LinkCounters:
    """Counters exported in health: nothing here is ever reset while running."""

    dropped_offline: int = 0  # QoS 1 messages dropped because the offline queue was full
    dropped_qos0: int = 0  # QoS 0 messages published while disconnected (not queued)
    callback_errors: int = 0  # exceptions caught inside paho callbacks
    connects: int = 0
    rejected: int = 0  # publishes paho refused (invalid topic)
    queued: int = 0  # currently waiting for a connection


class MqttLink:
    """One broker connection; callbacks `on_message`/`on_connected` run on the asyncio loop."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        client_id: str,
        will: Will,
        online_payload: str = "online",
        protocol: str = "5",
        username: str = "",
        password: str | None = None,
        tls: MqttTlsConfig | None = None,
        keepalive_s: int = 30,
        max_backoff_s: float = 60.0,
        queue_limit: int = 1000,
        on_message: Callable[[Inbound], None] | None = None,
        on_connected: Callable[[], None] | None = None,
        on_link_changed: Callable[[LinkChanged], None] | None = None,
    ) -> None:
        self._loop = loop
        self._host, self._port = host, port
        self._client_id = client_id
        self._will = will
        self._online_payload = online_payload
        self._protocol = protocol
        self._username = username
        self._password = password
        self._ssl = _ssl_context(tls) if tls is not None and tls.enabled else None
        self._tls_insecure = bool(tls and tls.enabled and tls.insecure_skip_verify)
        self._keepalive_s = keepalive_s
        # Touched only on paho's network thread (its callbacks): no lock needed.
        self._backoff = Backoff(max_backoff_s, first_s=RECONNECT_FIRST_S)
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queue_limit = queue_limit
        self._subscriptions: list[tuple[str, int]] = []
        self._lock = threading.Lock()  # guards _connected, _queue and the client swap
        self._connected = False
        self._stopping = False
        self._refused = False  # network thread only: last CONNACK refused our credentials
        self._client: Any = None
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_link_changed = on_link_changed
        self.state = LinkState.DISCONNECTED
        self.detail = ""
        self.counters = LinkCounters()

    # --- public API (asyncio loop thread) ------------------------------------------

    @property
    def protocol(self) -> str:
        """'5' or '3.1.1': the protocol in use (after a fallback, '3.1.1')."""
        return self._protocol

    def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        self._set_state(LinkState.CONNECTING, f"{self._host}:{self._port}")
        self._start_client()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again after every reconnect."""
        with self._lock:
            self._subscriptions.append((topic, qos))
            if self._connected:
                self._client.subscribe(topic, qos)

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        correlation_data: bytes | None = None,
    ) -> None:
        """Publish, or queue (QoS >= 1) until connected; never blocks, never raises."""
        data = payload.encode() if isinstance(payload, str) else payload
        msg = _Pending(topic, data, qos, retain, correlation_data)
        with self._lock:
            if self._connected and not self._stopping:
                self._send(msg)
                return
            if qos == 0 or self._stopping:
                self.counters.dropped_qos0 += 1
                return
            if len(self._queue) >= self._queue_limit:
                self._queue.popleft()
                self.counters.dropped_offline += 1
            self._queue.append(msg)
            self.counters.queued = len(self._queue)

    async def stop(self, final: tuple[str, str] | None = None) -> None:
        """Publish `final` (topic, payload) retained, disconnect cleanly, join the thread."""
        with self._lock:
            self._stopping = True
            client, connected = self._client, self._connected
        if client is None:
            return
        if final is not None and connected:
            info = client.publish(final[0], final[1], qos=1, retain=True)
            await asyncio.to_thread(_wait_published, info)
        await asyncio.to_thread(_shutdown_client, client)
        with self._lock:
            self._client = None
            self._connected = False
        self._set_state(LinkState.DISCONNECTED, "stopped")

    # --- client lifecycle ----------------------------------------------------------

    def _start_client(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        proto = mqtt.MQTTv5 if self._protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=proto,
            clean_session=None if proto == mqtt.MQTTv5 else True,
        )
        client.suppress_exceptions = True  # belt and braces: our guards come first
        client.enable_logger(logging.getLogger("agentd.mqtt.paho"))
        if self._username:
            client.username_pw_set(self._username, self._password)
        if self._ssl is not None:
            client.tls_set_context(self._ssl)
            client.tls_insecure_set(self._tls_insecure)
        w = self._will
        client.will_set(w.topic, w.payload, qos=w.qos, retain=w.retain)
        self._pace_reconnect(client)
        client.on_connect = self._guard(self._handle_connect)
        client.on_connect_fail = self._guard(self._handle_connect_fail)
        client.on_disconnect = self._guard(self._handle_disconnect)
        client.on_message = self._guard(self._handle_message)
        with self._lock:
            self._client = client
        client.connect_async(self._host, self._port, keepalive=self._keepalive_s)
        client.loop_start()

    def _fallback_to_v311(self) -> None:
        """Runs on the asyncio loop: replace the v5 client with a 3.1.1 one."""

        async def swap() -> None:
            with self._lock:
                old = self._client
                if self._stopping or old is None:
                    return
            await asyncio.to_thread(_shutdown_client, old)
            with self._lock:
                if self._stopping:
                    return
            log.warning("mqtt: broker %s refused MQTT 5, using 3.1.1", self._host)
            self._protocol = "3.1.1"
            self._start_client()

        task = self._loop.create_task(swap())
        task.add_done_callback(_log_task_error)

    # --- paho callbacks (network thread) -------------------------------------------

    def _guard(self, func: F) -> F:
        """Wrap a paho callback: any exception is logged and counted, never propagated."""

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception:
                self.counters.callback_errors += 1
                log.exception("mqtt: error in paho callback %s (ignored)", func.__name__)
                return None

        return guarded  # type: ignore[return-value]

    def _handle_connect(
        self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        code = int(getattr(reason, "value", reason))
        if getattr(reason, "is_failure", code != 0):
            if self._protocol == "5" and code in _V5_REFUSED_CODES:
                client.disconnect()
                self._to_loop(self._fallback_to_v311)
                return
            self._refused = code in _AUTH_REFUSED_CODES
            state = LinkState.FAILED if self._refused else LinkState.BACKOFF
            self._set_state_threadsafe(state, f"broker refused: {reason}")
            return
        if client is not self._client:
            return  # a stale client being replaced
        self._refused = False
        self._backoff.reset()
        _no_delay(client)
        client.publish(self._will.topic, self._online_payload, qos=1, retain=True)
        with self._lock:
            for topic, qos in self._subscriptions:
                client.subscribe(topic, qos)
            self._connected = True
            while self._queue:
                self._send(self._queue.popleft())
            self.counters.queued = 0
            self.counters.connects += 1
        self._to_loop(self._announce_connected)

    def _announce_connected(self) -> None:
        """On the loop: the owner's on_connected first, then LinkChanged(CONNECTED)."""
        try:
            if self._on_connected is not None:
                self._on_connected()
        finally:
            self._set_state(LinkState.CONNECTED, f"MQTT {self._protocol}")

    def _handle_connect_fail(self, client: Any, _userdata: Any) -> None:
        self._pace_reconnect(client)
        self._set_state_threadsafe(LinkState.BACKOFF, "connect failed, retrying")

    def _pace_reconnect(self, client: Any) -> None:
        """Set paho's next reconnect wait from our Backoff (jittered, capped).

        paho doubles its own delay without jitter; a fleet behind one access point would
        then reconnect in lockstep after a broker restart. paho calls on_disconnect /
        on_connect_fail right before it waits, and `reconnect_delay_set(d, d)` makes
        that wait exactly `d`.
        """
        delay = self._backoff.next_delay()
        client.reconnect_delay_set(delay, delay)

    def _handle_disconnect(
        self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if client is not self._client:
            return
        with self._lock:
            self._connected = False
            stopping = self._stopping
        self._pace_reconnect(client)
        if not stopping and not self._refused:  # keep FAILED visible while paho retries
            self._set_state_threadsafe(LinkState.BACKOFF, f"disconnected: {reason}")

    def _handle_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        props = getattr(message, "properties", None)
        response = getattr(props, "ResponseTopic", None) if props is not None else None
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        inbound = Inbound(
            topic=message.topic,
            payload=bytes(message.payload),
            retain=bool(message.retain),
            response_topic=response or None,
            correlation_data=bytes(corr) if corr is not None else None,
        )
        if self._on_message is not None:
            self._to_loop(functools.partial(self._on_message, inbound))

    # --- helpers -------------------------------------------------------------------

    def _send(self, msg: _Pending) -> None:
        """Hand one message to paho (caller holds the lock)."""
        props = None
        if msg.correlation_data is not None and self._protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = msg.correlation_data
        try:
            self._client.publish(
                msg.topic, msg.payload, qos=msg.qos, retain=msg.retain, properties=props
            )
        except (ValueError, TypeError) as exc:  # e.g. a response topic with wildcards
            self.counters.rejected += 1
            log.warning("mqtt: cannot publish to %r: %s", msg.topic[:80], exc)

    def _to_loop(self, func: Callable[[], None]) -> None:
        try:
            self._loop.call_soon_threadsafe(func)
        except RuntimeError:  # loop closed during shutdown: nothing left to tell
            log.debug("mqtt: event loop closed, dropping callback")

    def _set_state_threadsafe(self, state: LinkState, detail: str) -> None:
        self._to_loop(functools.partial(self._set_state, state, detail))

    def _set_state(self, state: LinkState, detail: str) -> None:
        if state == self.state and detail == self.detail:
            return
        self.state, self.detail = state, detail
        log.info("mqtt link %s (%s)", state.value, detail)
        if self._on_link_changed is not None:
            self._on_link_changed(LinkChanged(link="mqtt", state=state, detail=detail))


def _ssl_context(tls: MqttTlsConfig) -> ssl.SSLContext:
    """Build the TLS context at start-up, so a wrong path is a ConfigError, not a retry loop."""
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, key)
        if path and not Path(path).is_file():
            raise ConfigError(f"mqtt.tls.{key}", "file not found", path)
    if tls.key_file and not tls.cert_file:
        raise ConfigError("mqtt.tls.cert_file", "required when key_file is set")
    try:
        ctx = ssl.create_default_context(cafile=tls.ca_file or None)
        if tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file or None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("mqtt.tls", f"cannot load TLS files: {exc}") from None
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
    return ctx


def _no_delay(client: Any) -> None:
    """Disable Nagle: paho writes small packets, and Nagle + delayed ACK add ~40 ms to
    every command round trip (measured on loopback); paho does not set it itself."""
    sock = client.socket()
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _wait_published(info: Any) -> None:
    # RuntimeError/ValueError: not queued or connection gone, nothing left to wait for
    with contextlib.suppress(RuntimeError, ValueError):
        info.wait_for_publish(timeout=_STOP_FLUSH_S)


def _shutdown_client(client: Any) -> None:
    client.disconnect()
    client.loop_stop()


def _log_task_error(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("mqtt: protocol fallback failed: %r", task.exception())
