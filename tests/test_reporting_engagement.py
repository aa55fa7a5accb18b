"""Engagement state through reporting (issue 14): LEDs, events to observers, health."""

from __future__ import annotations

from agentd.conversation.engagement import EngagementState
from agentd.events import AgentState
from agentd.service.reporting import Reporting
from agentd.service.sdnotify import Notifier


class FakeGpio:
    def __init__(self) -> None:
        self.shown: list[tuple[AgentState, bool]] = []

    def show_state(self, state: AgentState, engaged: bool = False) -> None:
        self.shown.append((state, engaged))


class FakeMqtt:
    def __init__(self) -> None:
        self.documents: list[dict[str, object]] = []
        self.events: list[tuple[str, object]] = []

    def publish_engagement(self, document: dict[str, object]) -> None:
        self.documents.append(dict(document))

    def publish_event(self, name: str, payload: object) -> None:
        self.events.append((name, payload))

    def publish_state(self, state: AgentState) -> None:
        pass


def test_engagement_reaches_the_leds_mqtt_health_and_observers() -> None:
    reporting = Reporting(Notifier({}), started_at=lambda: 0.0)
    gpio, mqtt = FakeGpio(), FakeMqtt()
    reporting.engagement_modes = ("wake_word", "button")
    reporting.engagement_changed(EngagementState.WAITING, "start")  # before MQTT/GPIO exist
    reporting.attach_mqtt(mqtt)  # type: ignore[arg-type]
    reporting.attach_gpio(gpio)  # type: ignore[arg-type]
    assert mqtt.documents == [{"state": "waiting", "reason": "start",
                               "modes": ["wake_word", "button"]}]  # fmt: skip
    seen: list[tuple[str, object]] = []
    reporting.observers.append(lambda kind, payload: seen.append((kind, payload)))

    reporting.state_changed(AgentState.IDLE)
    assert gpio.shown == [(AgentState.IDLE, False)]
    reporting.engagement_changed(EngagementState.ENGAGED, "wake_word")
    assert gpio.shown[-1] == (AgentState.IDLE, True)
    assert mqtt.documents[-1] == {"state": "engaged", "reason": "wake_word",
                                  "modes": ["wake_word", "button"]}  # fmt: skip
    assert ("engagement", {"state": "engaged", "reason": "wake_word"}) in mqtt.events
    assert ("engagement", {"state": "engaged", "reason": "wake_word"}) in seen
    assert reporting.health()["engagement"] == "engaged"
    reporting.state_changed(AgentState.LISTENING)
    assert gpio.shown[-1] == (AgentState.LISTENING, True)
    reporting.engagement_changed(EngagementState.WAITING, "window_closed")
    assert gpio.shown[-1] == (AgentState.LISTENING, False)
    assert mqtt.documents[-1]["state"] == "waiting"
    assert mqtt.documents[-1]["reason"] == "window_closed"
    assert reporting.health()["engagement"] == "waiting"


def test_tool_limit_is_an_event() -> None:
    reporting = Reporting(Notifier({}), started_at=lambda: 0.0)
    seen: list[tuple[str, object]] = []
    reporting.observers.append(lambda kind, payload: seen.append((kind, payload)))
    reporting.tool_limit("call_staff", "cooldown", 95.4)
    assert seen == [
        ("event/limit_reached", {"tool": "call_staff", "limit": "cooldown", "retry_after_s": 95})
    ]
