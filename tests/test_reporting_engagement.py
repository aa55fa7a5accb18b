"""Engagement state through reporting (issue 14): LEDs, events to observers, health."""

from __future__ import annotations

from agentd.conversation.engagement import EngagementState
from agentd.events import AgentState
from agentd.gpio.patterns import Pattern, parse_pattern
from agentd.service.reporting import Reporting
from agentd.service.sdnotify import Notifier


class FakeLights:
    def __init__(self) -> None:
        self.patterns: list[Pattern] = []

    def show_pattern(self, pattern: Pattern) -> None:
        self.patterns.append(pattern)


class FakeGpio:
    def __init__(self) -> None:
        self.lights = FakeLights()
        self.states: list[AgentState] = []

    def show_state(self, state: AgentState) -> None:
        self.states.append(state)


def test_engaged_idle_has_its_own_led_pattern_and_is_reported() -> None:
    reporting = Reporting(Notifier({}), started_at=lambda: 0.0)
    gpio = FakeGpio()
    reporting.gpio = gpio  # type: ignore[assignment]
    engaged = parse_pattern("slow_blink white", "engagement.led_engaged")
    reporting.engaged_pattern = engaged
    seen: list[tuple[str, object]] = []
    reporting.observers.append(lambda kind, payload: seen.append((kind, payload)))

    reporting.state_changed(AgentState.IDLE)
    assert gpio.states == [AgentState.IDLE] and gpio.lights.patterns == []
    reporting.engagement_changed(EngagementState.ENGAGED, "wake_word")
    assert gpio.lights.patterns == [engaged]
    assert ("engagement", {"state": "engaged", "reason": "wake_word"}) in seen
    assert reporting.health()["engagement"] == "engaged"
    reporting.state_changed(AgentState.LISTENING)
    assert gpio.states[-1] is AgentState.LISTENING
    reporting.state_changed(AgentState.IDLE)  # back to idle, still engaged
    assert gpio.lights.patterns == [engaged, engaged]
    reporting.engagement_changed(EngagementState.WAITING, "left")
    assert gpio.states[-1] is AgentState.IDLE
    assert reporting.health()["engagement"] == "waiting"


def test_tool_limit_is_an_event() -> None:
    reporting = Reporting(Notifier({}), started_at=lambda: 0.0)
    seen: list[tuple[str, object]] = []
    reporting.observers.append(lambda kind, payload: seen.append((kind, payload)))
    reporting.tool_limit("call_staff", "cooldown", 95.4)
    assert seen == [
        ("event/limit_reached", {"tool": "call_staff", "limit": "cooldown", "retry_after_s": 95})
    ]
