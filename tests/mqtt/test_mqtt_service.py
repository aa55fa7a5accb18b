"""MqttService against a real Mosquitto with real CLI and paho clients."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agentd.events import AgentState, LinkState, Outcome, TurnMetrics
from agentd.mqtt import MqttService
from tests.helpers.mosquitto import Mosquitto
from tests.mqtt.conftest import (
    DEVICE_ID,
    LinkWatcher,
    Observer,
    RecordingTarget,
    device_config,
    health,
    mqtt_config,
    reply_json,
)

pytestmark = pytest.mark.timeout(60)
ROOT = f"agentd/{DEVICE_ID}"
CHILD = Path(__file__).with_name("_child_service.py")
REPO = Path(__file__).parents[2]


def make_service(broker: Mosquitto, target: RecordingTarget, watcher: LinkWatcher,
                 **overrides: object) -> MqttService:  # fmt: skip
    return MqttService(mqtt_config(broker, **overrides), device_config(), None, target, health,
                       on_link_changed=watcher)  # fmt: skip


async def test_lwt_offline_when_process_is_killed(broker: Mosquitto) -> None:
    child = subprocess.Popen(
        [sys.executable, str(CHILD), broker.host, str(broker.port)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", f"{ROOT}/status",
         "-q", "1", "-C", "2", "-W", "20"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and sub.stdout is not None
        assert await asyncio.to_thread(child.stdout.readline) == "connected\n"
        assert await asyncio.to_thread(sub.stdout.readline) == "online\n"
        child.kill()  # SIGKILL: no clean DISCONNECT, the broker must send the will
        assert await asyncio.to_thread(sub.stdout.readline) == "offline\n"
    finally:
        for proc in (child, sub):
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


async def test_start_does_not_block_and_state_survives_broker_loss(
    broker: Mosquitto, observers: list[Observer]
) -> None:
    broker.kill()
    watcher, target = LinkWatcher(), RecordingTarget()
    service = make_service(broker, target, watcher)
    service.start()  # broker down: must return at once and keep trying
    service.publish_state(AgentState.SPEAKING)
    await watcher.wait(LinkState.BACKOFF)
    broker.start()
    await watcher.wait(LinkState.CONNECTED)
    broker.kill()  # the broker forgets everything, including retained messages
    broker.start()
    await watcher.wait(LinkState.BACKOFF)
    await watcher.wait(LinkState.CONNECTED)
    # retained state after the reconnect, seen by a fresh CLI subscriber
    out = await asyncio.to_thread(
        subprocess.run,
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", f"{ROOT}/state",
         "-t", f"{ROOT}/status", "-C", "2", "-W", "10", "-v"],
        capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    assert sorted(out.stdout.splitlines()) == [f"{ROOT}/state speaking", f"{ROOT}/status online"]
    await service.stop()
    obs = Observer(broker, f"{ROOT}/status")
    observers.append(obs)
    await obs.await_for(f"{ROOT}/status", payload=b"offline")


async def test_qos1_published_while_broker_away_arrives_after_restart(
    broker: Mosquitto, observers: list[Observer]
) -> None:
    obs = Observer(broker, f"{ROOT}/event/#", client_id="ops-console", clean=False)
    observers.append(obs)
    watcher, target = LinkWatcher(), RecordingTarget()
    service = make_service(broker, target, watcher, queue_limit=10)
    service.start()
    await watcher.wait(LinkState.CONNECTED)
    broker.stop()  # graceful: the broker saves the operator's persistent session
    await watcher.wait(LinkState.BACKOFF)
    for i in range(15):
        service.publish_event("button", {"n": i})
    assert service.link is not None
    assert service.link.counters.dropped_offline == 5
    assert service.link.counters.queued == 10
    broker.start()
    await watcher.wait(LinkState.CONNECTED)
    msgs = await obs.await_for(f"{ROOT}/event/button", count=10, timeout=20)
    assert [json.loads(m.payload)["n"] for m in msgs] == list(range(5, 15))
    assert service.health_snapshot()["mqtt"] == {
        "protocol": "5", "queued": 0, "dropped_offline": 5, "callback_errors": 0,
        "connects": 2, "commands_rejected": 0,
    }  # fmt: skip
    await service.stop()


async def test_mosquitto_rr_request_gets_reply_with_correlation(broker: Mosquitto) -> None:
    watcher, target = LinkWatcher(), RecordingTarget()
    service = make_service(broker, target, watcher)
    service.start()
    await watcher.wait(LinkState.CONNECTED)
    out = await asyncio.to_thread(
        subprocess.run,
        ["mosquitto_rr", "-V", "5", "-h", broker.host, "-p", str(broker.port),
         "-t", f"{ROOT}/cmd/status", "-e", f"{ROOT}/reply/console-1", "-m", "",
         "-D", "PUBLISH", "correlation-data", "req-42", "-F", "%D|%p", "-W", "10"],
        capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    corr, _, payload = out.stdout.strip().partition("|")
    assert corr == "req-42", out
    reply = json.loads(payload)
    assert reply["ok"] is True and reply["command"] == "status"
    assert reply["result"]["llm"] == {"model": "m"}  # the api_key was scrubbed
    await service.stop()


async def test_v311_client_gets_reply_on_reply_topic(
    broker: Mosquitto, observers: list[Observer]
) -> None:
    watcher, target = LinkWatcher(), RecordingTarget()
    service = make_service(broker, target, watcher, allow_dangerous_commands=False)
    service.start()
    await watcher.wait(LinkState.CONNECTED)
    obs = Observer(broker, f"{ROOT}/reply", protocol=mqtt.MQTTv311)
    observers.append(obs)
    steps = [
        ("mute", b"ON"),  # Home Assistant switch payload
        ("volume", b"55"),  # Home Assistant number payload
        ("set_prompt", b'{"prompt": "be rude", "id": "p1"}'),  # disabled by config
        ("volume", b'{"level": true}'),
        ("say", b"x" * 5000),  # over max_command_bytes
        ("reload_config", b"PRESS"),  # disabled by config
        ("reset_conversation", b"PRESS"),
        ("status", b'{"id": "s1"}'),
    ]
    for name, payload in steps:
        obs.client.publish(f"{ROOT}/cmd/{name}", payload, qos=1).wait_for_publish(5)
    replies = [reply_json(m) for m in await obs.await_for(f"{ROOT}/reply", count=len(steps))]
    assert [r["ok"] for r in replies] == [True, True, False, False, False, False, True, True]
    assert [r.get("error", {}).get("code") for r in replies[2:6]] == [
        "forbidden", "invalid", "too_large", "forbidden",
    ]  # fmt: skip
    assert replies[-1]["id"] == "s1" and replies[-1]["result"]["muted"] is True
    assert target.calls == [("set_muted", True), ("set_volume", 0.55), ("reset_conversation", None)]
    await service.stop()


async def test_metrics_health_and_events(broker: Mosquitto, observers: list[Observer]) -> None:
    watcher, target = LinkWatcher(), RecordingTarget()
    service = make_service(broker, target, watcher)
    obs = Observer(broker, f"{ROOT}/#")
    observers.append(obs)
    service.start()
    await watcher.wait(LinkState.CONNECTED)
    # A reply dropped unheard because the visitor went on: published for its cost, but
    # no turn of its own (the answered turn that follows is).
    superseded = TurnMetrics(turn_id="t0", llm_requests=1, outcome=Outcome.SUPERSEDED)
    service.publish_turn_metrics(superseded)
    service.publish_turn_metrics(TurnMetrics(turn_id="t1", voice_to_voice_ms=812.34))
    service.publish_event("fault", {"error_kind": "tts_timeout"})
    dropped, metrics = await obs.await_for(f"{ROOT}/metrics/turn", count=2)
    assert json.loads(dropped.payload)["outcome"] == "superseded"
    assert json.loads(dropped.payload)["llm_requests"] == 1
    assert json.loads(metrics.payload)["voice_to_voice_ms"] == 812.34 and not metrics.retain
    health_msgs = await obs.await_for(f"{ROOT}/health", count=3)
    data = json.loads(health_msgs[-1].payload)
    assert data["turns_today"] == 1 and data["last_voice_to_voice_ms"] == 812.3
    assert data["links"] == {"stt": "connected", "mqtt": "connected"}
    assert data["volume_percent"] == 50 and data["version"]
    (fault,) = await obs.await_for(f"{ROOT}/event/fault")
    assert json.loads(fault.payload) == {"error_kind": "tts_timeout"}
    assert service.health_snapshot()["errors_today"] == 1
    await service.stop()
