"""The fault matrix (issue 7): every cloud/link fault while a turn is in flight.

For each case the real daemon (in-process, sim mic/speaker, real SDKs against the
emulators, a real Mosquitto, the real journald) must: keep running; let the visitor
hear something (the reply, or the local fallback) within 2 s of the fault; report the
fault in the journal (ERROR_KIND) and on MQTT (event/fault, health link state); and
answer the next, fault-free turn normally.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agentd.config import parse_config
from agentd.logs import setup_logging
from agentd.sim.harness import SimulatedKiosk
from agentd.sim.stack import EmulatorStack
from tests.e2e.conftest import FAST, write_scenario
from tests.helpers import journald
from tests.helpers.mosquitto import Mosquitto

pytestmark = pytest.mark.timeout(240)

FALLBACK_WITHIN_MS = 2000

TIMEOUTS_TOML = """
[llm]
first_token_timeout_s = 1.5
chunk_gap_timeout_s = 1.0
max_retries = 1

[tts]
first_byte_timeout_s = 1.0
chunk_gap_timeout_s = 1.0

[stt]
final_timeout_s = 2.0
auth_retry_s = 5.0
"""


@dataclass
class Case:
    name: str
    inject: Callable[[EmulatorStack], None]
    error_kind: str  # expected FaultRaised.error_kind (journal ERROR_KIND)
    link: str
    outcomes: tuple[str, ...]  # acceptable turn outcomes
    needs_fallback: bool = True


def _llm(**faults: Any) -> Callable[[EmulatorStack], None]:
    def inject(stack: EmulatorStack) -> None:
        for key, value in faults.items():
            setattr(stack.llm.faults, key, value)

    return inject


def _tts(**faults: Any) -> Callable[[EmulatorStack], None]:
    def inject(stack: EmulatorStack) -> None:
        for key, value in faults.items():
            setattr(stack.tts.faults, key, value)

    return inject


def _stt_drop(stack: EmulatorStack) -> None:
    stack.stt.drop_after_audio_ms = 600  # mid-utterance


CASES = [
    Case("llm 500", _llm(status=500), "llm", "llm", ("fallback",)),
    Case(
        "llm 429",
        _llm(status=429, status_times=2, retry_after_s=0.1),
        "llm_rate_limited",
        "llm",
        ("fallback",),
    ),
    Case("llm stalled", _llm(stall_after_chunks=2), "llm_timeout", "llm", ("fallback",)),
    Case("llm malformed chunk", _llm(malformed_after_chunks=2), "llm", "llm", ("fallback",)),
    Case("llm empty reply", _llm(empty_reply=True), "", "llm", ("empty",)),
    Case("llm out of credit", _llm(insufficient_quota=True), "llm_quota", "llm", ("fallback",)),
    # One 5xx / system_busy is retried inside the first-byte budget; two are not.
    Case("tts 503", _tts(status=503, remaining=2), "tts", "tts", ("fallback",)),
    Case("tts busy once", _tts(error="system_busy", remaining=1), "", "tts", ("ok",), False),
    Case("tts quota", _tts(error="quota_exceeded", remaining=1), "tts_quota", "tts", ("fallback",)),
    Case(
        "tts stalled", _tts(stall_after_chunks=1, remaining=1), "tts_timeout", "tts", ("fallback",)
    ),
    Case("tts truncated", _tts(truncate_after_chunks=1, remaining=1), "tts", "tts", ("fallback",)),
    Case("stt dropped mid-utterance", _stt_drop, "stt", "stt", ("ok",), needs_fallback=False),
]


def _turns(count: int) -> list[dict[str, Any]]:
    """Short lines keep the matrix fast; each is unique so the emulators stay aligned."""
    return [
        {
            # One breath, no mid-line pause: a pause would let a speculative request
            # (turn_end) meet the injected fault instead of the answer under test.
            "visitor": f"Please answer question number {i + 1}.",
            "reply": f"Sure, answer {i + 1}.",
            "pause_before_ms": 500,
        }
        for i in range(count)
    ]


@dataclass
class MqttWatch:
    """A real paho client recording everything under the device's subtree."""

    broker: Mosquitto
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:6]}")
        client.on_message = self._on_message
        client.on_connect = lambda c, *_: c.subscribe("agentd/kiosk-e2e/#", qos=1)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        return client

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload.decode())
        except ValueError:
            payload = {"raw": msg.payload.decode(errors="replace")}
        with self.lock:
            self.messages.append(
                (msg.topic, payload if isinstance(payload, dict) else {"v": payload})
            )

    def on(self, suffix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for t, p in self.messages if t.endswith(suffix)]


def _mqtt_toml(broker: Mosquitto) -> str:
    return f"""
[device]
id = "kiosk-e2e"

[mqtt]
enabled = true
host = "{broker.host}"
port = {broker.port}
health_interval_s = 1.0
max_backoff_s = 1.0
discovery = false
"""


def _first_audible_after(kiosk: SimulatedKiosk, at_ms: float) -> float | None:
    for played_at, chunk in kiosk.speaker.played:
        if played_at >= at_ms and any(chunk):
            return float(played_at)
    return None


@pytest.fixture
def journal_logging() -> Any:
    if journald.available() is not None:
        pytest.skip(f"journald unavailable: {journald.available()}")
    with journald.running():
        setup_logging(parse_config({"logging": {"backend": "journal"}}).logging)
        try:
            yield
        finally:
            setup_logging(parse_config({"logging": {"backend": "stderr"}}).logging)


async def test_cloud_fault_matrix(tmp_path: Path, journal_logging: None) -> None:
    broker = Mosquitto(tmp_path).start()
    watch = MqttWatch(broker)
    watcher = watch.start()
    # Fault turn, then a clean turn, for every case; then one last clean turn.
    plan: list[Case | None] = [x for case in CASES for x in (case, None)]
    scenario = write_scenario(tmp_path / "faults.toml", _turns(len(plan)), tail_ms=3000)
    kiosk = SimulatedKiosk(
        scenario, tmp_path / "out", profile=FAST, extra_toml=TIMEOUTS_TOML + _mqtt_toml(broker)
    )
    try:
        await kiosk.start()
        stack = kiosk.stack
        assert stack is not None
        results = []
        for index, case in enumerate(plan):
            faults_before = len(kiosk.observed.faults)
            if case is not None:
                case.inject(stack)
            await kiosk.wait_for(lambda i=index: len(kiosk.observed.turns) > i, timeout_s=30)
            stack.llm.faults.reset()
            stack.tts.faults.clear()
            stack.stt.drop_after_audio_ms = 0
            results.append(
                (case, kiosk.observed.turns[index], kiosk.observed.faults[faults_before:])
            )
        reports = len(watch.on("/health"))
        await kiosk.wait_for(lambda: len(watch.on("/health")) > reports, 10)  # one more
        daemon_alive = not kiosk._task.done() if kiosk._task else False
        health = watch.on("/health")
    finally:
        code = await kiosk.stop()
        watcher.loop_stop()
        watcher.disconnect()
        broker.kill()
    assert daemon_alive and code == 0

    for case, metrics, faults in results:
        if case is None:
            assert metrics.outcome == "ok", f"clean turn after a fault: {metrics}"
            continue
        assert metrics.outcome in case.outcomes, f"{case.name}: {metrics.outcome}"
        if case.error_kind:
            kinds = [f.error_kind for f in faults]
            assert case.error_kind in kinds, f"{case.name}: faults {kinds}"
            fault = next(f for f in faults if f.error_kind == case.error_kind)
            heard = _first_audible_after(kiosk, fault.at_ms)
            assert heard is not None, f"{case.name}: silence after the fault"
            if case.needs_fallback:
                assert heard - fault.at_ms <= FALLBACK_WITHIN_MS, (
                    f"{case.name}: {heard - fault.at_ms} ms"
                )

    # Journal: every fault kind is findable by its structured field.
    for kind in {c.error_kind for c in CASES if c.error_kind}:
        records = journald.query("SYSLOG_IDENTIFIER=agentd", f"ERROR_KIND={kind}")
        assert records, f"no journal record with ERROR_KIND={kind}"
    # MQTT: faults as events, link states in the retained health.
    fault_events = {e.get("kind") for e in watch.on("/event/fault")}
    assert {c.error_kind for c in CASES if c.error_kind} <= fault_events
    llm_states = {h["links"]["llm"] for h in health if "links" in h}
    assert "backoff" in llm_states and "connected" in llm_states
    assert all(m.get("outcome") for m in watch.on("/metrics/turn"))
