"""`MqttService`: the one object the daemon wires in for fleet management.

It owns the link, publishes status/state/engagement/health/metrics/events, keeps Home Assistant
discovery current, and runs remote commands one at a time (in arrival order) on the
asyncio loop against the daemon's `CommandTarget`. Nothing here blocks start-up.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from agentd import __version__
from agentd.config.sections_core import DeviceConfig
from agentd.config.sections_mqtt import MqttConfig
from agentd.errors import CommandError
from agentd.events import AgentState, LinkChanged, LinkState, Outcome, TurnMetrics
from agentd.mqtt import topics as t
from agentd.mqtt.commands import (
    Command,
    CommandTarget,
    dispatch,
    parse_command,
    reply_error,
    reply_ok,
)
from agentd.mqtt.discovery import DeviceInfo, discovery_messages, legacy_removal_messages
from agentd.mqtt.link import Inbound, MqttLink, Will

log = logging.getLogger("agentd.mqtt")

COMMAND_TIMEOUT_S = 15.0  # a command that has not finished by then gets a timeout reply
COMMAND_QUEUE = 64  # commands waiting to run; beyond this the sender gets "busy"


class MqttService:
    """Fleet management over MQTT; call `start()` on the loop, `await stop()` at shutdown."""

    def __init__(
        self,
        config: MqttConfig,
        device: DeviceConfig,
        password: str | None,
        target: CommandTarget,
        health: Callable[[], Mapping[str, object]],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        on_link_changed: Callable[[LinkChanged], None] | None = None,
        version: str = __version__,
    ) -> None:
        self.config = config
        self.device_id = t.default_device_id(device.id)
        self.topics = t.Topics(config.base_topic, self.device_id)
        self.client_id = config.client_id or f"agentd-{self.device_id}"
        self._device = DeviceInfo(
            self.device_id, device.name, sw_version=version, suggested_area=device.location
        )
        self._password = password
        self._target = target
        self._health = health
        self._loop = loop
        self._on_link_changed = on_link_changed
        self._version = version
        self._link: MqttLink | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._commands: asyncio.Queue[tuple[str, Command | CommandError, Inbound]] = asyncio.Queue(
            COMMAND_QUEUE
        )
        self._last_state: AgentState | None = None
        self._last_engagement: str | None = None  # the retained engagement document (JSON)
        self._started_at = time.monotonic()
        self._day = datetime.date.today()
        self.turns_today = 0
        self.errors_today = 0
        self.last_voice_to_voice_ms: float | None = None
        self.volume_percent: float | None = None
        self.commands_rejected = 0

    # --- lifecycle -----------------------------------------------------------------

    @property
    def link_state(self) -> LinkState:
        return self._link.state if self._link is not None else LinkState.DISCONNECTED

    @property
    def link(self) -> MqttLink | None:
        return self._link

    def start(self) -> None:
        """Connect in the background and start the health and command tasks."""
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        cfg = self.config
        self._link = MqttLink(
            loop=loop,
            host=cfg.host,
            port=cfg.port,
            client_id=self.client_id,
            will=Will(self.topics.status, t.STATUS_OFFLINE),
            online_payload=t.STATUS_ONLINE,
            protocol=cfg.protocol,
            username=cfg.username,
            password=self._password,
            tls=cfg.tls,
            keepalive_s=cfg.keepalive_s,
            max_backoff_s=cfg.max_backoff_s,
            queue_limit=cfg.queue_limit,
            on_message=self._on_inbound,
            on_connected=self._on_connected,
            on_link_changed=self._on_link_changed,
        )
        self._link.subscribe(self.topics.cmd_filter, 1)
        if cfg.discovery:
            self._link.subscribe(f"{cfg.discovery_prefix.strip('/')}/status", 1)
        self._tasks = [
            loop.create_task(self._health_loop(), name="mqtt-health"),
            loop.create_task(self._command_worker(), name="mqtt-commands"),
        ]
        self._link.start()

    async def stop(self) -> None:
        """Publish `offline` (retained), disconnect, and end our tasks."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._link is not None:
            await self._link.stop(final=(self.topics.status, t.STATUS_OFFLINE))

    # --- outbound ------------------------------------------------------------------

    def publish_state(self, state: AgentState) -> None:
        """Retained, on change only."""
        if state == self._last_state:
            return
        self._last_state = state
        self._publish(self.topics.state, t.state_payload(state), t.QOS_STATE, retain=True)

    def publish_engagement(self, document: Mapping[str, object]) -> None:
        """`engagement` {state, reason, modes}: retained, on change only, again on connect.

        Its own topic rather than a field of `state`: `state` is the bare enum value that
        Home Assistant and operators' scripts read unparsed, so it stays as it is.
        """
        payload = t.json_payload(document)
        if payload == self._last_engagement:
            return
        self._last_engagement = payload
        self._publish(self.topics.engagement, payload, t.QOS_STATE, retain=True)

    def publish_turn_metrics(self, metrics: TurnMetrics) -> None:
        """One message per reply record; also refreshes the health snapshot HA reads.

        A superseded reply (dropped unheard, the visitor went on) is no turn of its own:
        its record is published for its cost, `turns_today` counts the answered turn.
        """
        self._roll_day()
        if metrics.outcome is not Outcome.SUPERSEDED:
            self.turns_today += 1
        if metrics.voice_to_voice_ms is not None:
            self.last_voice_to_voice_ms = round(metrics.voice_to_voice_ms, 1)
        self._publish(self.topics.metrics_turn, t.metrics_payload(metrics), t.QOS_METRICS)
        self.publish_health()

    def publish_event(self, name: str, payload: Mapping[str, object]) -> None:
        """`event/<name>` (button, staff_call, fault), QoS 1, not retained."""
        if t.sanitize_event_name(name) == "fault":
            self._roll_day()
            self.errors_today += 1
        self._publish(self.topics.event(name), t.json_payload(payload), t.QOS_EVENT)

    def publish_health(self) -> None:
        self._publish(self.topics.health, t.json_payload(self.health_snapshot()), t.QOS_HEALTH,
                      retain=True)  # fmt: skip

    def health_snapshot(self) -> dict[str, object]:
        """The daemon's health dict, completed with what this service knows."""
        try:
            data: dict[str, object] = dict(self._health())
        except Exception as exc:  # the daemon's callable must not stop health reports
            log.exception("mqtt: health callable failed")
            data = {"health_error": type(exc).__name__}
        self._roll_day()
        data.setdefault("uptime_s", round(time.monotonic() - self._started_at, 1))
        data.setdefault("version", self._version)
        data.setdefault("cpu_temp_c", t.cpu_temperature_c())
        data.setdefault("memory_rss_bytes", t.memory_rss_bytes())
        data["turns_today"] = self.turns_today
        data["errors_today"] = self.errors_today
        data["last_voice_to_voice_ms"] = self.last_voice_to_voice_ms
        volume = data.get("volume")
        if isinstance(volume, (int, float)) and not isinstance(volume, bool):
            data["volume_percent"] = round(float(volume) * 100)
        else:
            data["volume_percent"] = self.volume_percent
        links = data.get("links")
        links = dict(links) if isinstance(links, Mapping) else {}
        links["mqtt"] = self.link_state.value
        data["links"] = links
        data["mqtt"] = self._mqtt_stats()
        return data

    async def _health_loop(self) -> None:
        """Retained health snapshot every health_interval_s (QoS 0: never queued offline)."""
        while True:
            await asyncio.sleep(self.config.health_interval_s)
            self.publish_health()

    def _mqtt_stats(self) -> dict[str, object]:
        if self._link is None:
            return {}
        c = self._link.counters
        return {
            "protocol": self._link.protocol,
            "queued": c.queued,
            "dropped_offline": c.dropped_offline,
            "callback_errors": c.callback_errors,
            "connects": c.connects,
            "commands_rejected": self.commands_rejected,
        }

    def _publish(self, topic: str, payload: str, qos: int, retain: bool = False) -> None:
        if self._link is None:
            log.debug("mqtt: not started, dropping %s", topic)
            return
        self._link.publish(topic, payload, qos=qos, retain=retain)

    def _roll_day(self) -> None:
        today = datetime.date.today()
        if today != self._day:
            self._day, self.turns_today, self.errors_today = today, 0, 0

    # --- inbound -------------------------------------------------------------------

    def _on_connected(self) -> None:
        self.publish_discovery()
        if self._last_state is not None and self._link is not None:
            self._link.publish(self.topics.state, self._last_state.value, qos=1, retain=True)
        if self._last_engagement is not None and self._link is not None:
            self._link.publish(self.topics.engagement, self._last_engagement, qos=t.QOS_STATE,
                               retain=True)  # fmt: skip
        self.publish_health()

    def publish_discovery(self) -> None:
        if not self.config.discovery or self._link is None:
            return
        prefix = self.config.discovery_prefix
        # Earlier versions' per-entity configs go first, so Home Assistant never sees the
        # same unique_id from two discovery topics (a no-op once they are gone).
        for topic, payload in legacy_removal_messages(prefix, self.device_id):
            self._link.publish(topic, payload, qos=1, retain=True)
        for topic, payload in discovery_messages(prefix, self.topics, self._device):
            self._link.publish(topic, payload, qos=1, retain=True)

    def _on_inbound(self, msg: Inbound) -> None:
        ha_status = f"{self.config.discovery_prefix.strip('/')}/status"
        if msg.topic == ha_status:
            if msg.payload.strip().lower() == b"online":
                log.info("mqtt: Home Assistant came online, re-publishing discovery")
                self.publish_discovery()
            return
        prefix = self.topics.cmd_prefix
        if not msg.topic.startswith(prefix):
            return
        name = msg.topic[len(prefix) :]
        if msg.retain:  # a retained "restart" would replay on every reconnect
            log.warning("mqtt: ignoring retained command %r", name[:40])
            return
        try:
            command: Command | CommandError = parse_command(
                name,
                msg.payload,
                max_bytes=self.config.max_command_bytes,
                allow_dangerous=self.config.allow_dangerous_commands,
            )
        except CommandError as exc:
            self.commands_rejected += 1
            log.warning("mqtt: rejected command %r: %s", name[:40], exc)
            command = exc
        try:  # rejections queue too, so replies keep the order of the requests
            self._commands.put_nowait((name, command, msg))
        except asyncio.QueueFull:
            self.commands_rejected += 1
            self._reply(msg, reply_error(name, CommandError("busy", "too many commands queued")))

    async def _command_worker(self) -> None:
        while True:
            name, command, msg = await self._commands.get()
            if isinstance(command, CommandError):
                self._reply(msg, reply_error(name, command))
            else:
                self._reply(msg, await self._run(command))

    async def _run(self, command: Command) -> dict[str, object]:
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_S):
                result = await dispatch(command, self._target)
        except CommandError as exc:
            return reply_error(command.name, exc, command.request_id)
        except TimeoutError:
            err = CommandError("timeout", f"{command.name} did not finish in {COMMAND_TIMEOUT_S}s")
            return reply_error(command.name, err, command.request_id)
        except Exception as exc:  # task boundary: a target bug must not end the worker
            log.exception("mqtt: command %s failed", command.name)
            err = CommandError("failed", f"{command.name} failed: {type(exc).__name__}")
            return reply_error(command.name, err, command.request_id)
        if command.name == "volume":
            self.volume_percent = float(str(result.get("level", 0)))
        if command.name in ("self_test", "capture"):
            self.publish_health()  # Home Assistant's diagnostic sensors read it now
        log.info("mqtt: command %s done", command.name)
        return reply_ok(command, result)

    def _reply(self, msg: Inbound, reply: Mapping[str, Any]) -> None:
        """MQTT 5 request/response when asked for, else the device's `reply` topic."""
        if self._link is None:
            return
        payload = t.json_payload(reply)
        if msg.response_topic and self._link.protocol == "5":
            self._link.publish(msg.response_topic, payload, qos=t.QOS_REPLY,
                               correlation_data=msg.correlation_data)  # fmt: skip
        else:
            self._link.publish(self.topics.reply, payload, qos=t.QOS_REPLY)
