"""Reporting: the conversation's facts fanned out to the journal, MQTT, LEDs and systemd.

`Reporting` implements the conversation's `Reporter` port and keeps the link table: every
link (capture, playback, stt, llm, tts, mqtt) reports its state through `link_changed`,
the one path for link state, whatever the link. From that table it derives the
sd_notify STATUS= line and the `health` document. Observers (the demo, benchmarks and
tests) see every report as (kind, payload) without the daemon knowing them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agentd import __version__
from agentd.events import AgentState, FaultRaised, LinkState, Outcome, TurnMetrics
from agentd.logs import fields

if TYPE_CHECKING:
    from agentd.conversation.engagement import EngagementState
    from agentd.gpio.controls import GpioControls
    from agentd.mqtt.service import MqttService
    from agentd.service.sdnotify import Notifier

log = logging.getLogger("agentd.service")

LINKS = ("capture", "playback", "stt", "llm", "tts", "mqtt")
AUDIO_LINKS = ("capture", "playback")
Observer = Callable[[str, object], None]
StaffCaller = Callable[[str], None]


class Reporting:
    """See the module docstring. Used on the loop thread only."""

    def __init__(self, notifier: Notifier, *, started_at: Callable[[], float]) -> None:
        self.notifier = notifier
        self._uptime_s = started_at
        self.links: dict[str, LinkState] = dict.fromkeys(LINKS, LinkState.DISCONNECTED)
        self.state: AgentState | None = None  # None until the conversation runs
        self.last_error: dict[str, object] | None = None
        self.faults = 0
        self.observers: list[Observer] = []
        self.mqtt: MqttService | None = None
        self.gpio: GpioControls | None = None
        self.staff_caller: StaffCaller | None = None
        self.health_extras: Callable[[], dict[str, object]] = dict
        self.engagement: str = ""  # "waiting" / "engaged"; "" until the policy reports
        self.engagement_reason = ""
        self.engagement_modes: tuple[str, ...] = ()  # engagement.modes, for the document

    # --- links ------------------------------------------------------------------------

    def link_changed(self, name: str, state: LinkState, detail: str = "") -> None:
        """The one path for link state: table, fault on a lost device, log, STATUS=."""
        previous = self.links.get(name)
        self.links[name] = state
        lost = state in (LinkState.DISCONNECTED, LinkState.BACKOFF)
        if name in AUDIO_LINKS and lost and previous == LinkState.CONNECTED:
            self.fault(
                FaultRaised("audio_device_lost", f"{name}: {detail or state.value}", link=name)
            )
        if previous != state:
            log.info(
                "%s link %s%s",
                name,
                state.value,
                f": {detail}" if detail else "",
                extra=fields(link=name, stage="link"),
            )
            self._notify("link", {"link": name, "state": state.value})
            self.notifier.status(self.status_text())

    # --- Reporter (conversation -> world) ---------------------------------------------

    def state_changed(self, state: AgentState) -> None:
        self.state = state
        log.debug("state %s", state.value, extra=fields(stage="state"))
        if self.mqtt is not None:
            self.mqtt.publish_state(state)
        self._show_lights()
        self.notifier.status(self.status_text())
        self._notify("state", state)

    def _show_lights(self) -> None:
        gpio, state = self.gpio, self.state
        if gpio is None or state is None:
            return
        gpio.show_state(state, engaged=self.engagement == "engaged")

    def attach_mqtt(self, mqtt: MqttService | None) -> None:
        """The MQTT service (None: detached); it gets the current engagement to retain.

        Call before `mqtt.start()`: the document is then published on connect, once.
        """
        self.mqtt = mqtt
        if mqtt is not None and self.engagement:
            mqtt.publish_engagement(self.engagement_document())

    def attach_gpio(self, gpio: GpioControls | None) -> None:
        """The GPIO controls (None: detached); the LEDs show the current state at once."""
        self.gpio = gpio
        self._show_lights()

    def engagement_document(self) -> dict[str, object]:
        """The retained MQTT `engagement` document (Home Assistant's engagement entity)."""
        return {
            "state": self.engagement or None,
            "reason": self.engagement_reason,
            "modes": list(self.engagement_modes),
        }

    def engagement_changed(self, state: EngagementState, reason: str) -> None:
        """Waiting / engaged: journal (STAGE=engagement), MQTT event and retained
        `engagement` document, LEDs, observers."""
        self.engagement, self.engagement_reason = state.value, reason
        log.info("engagement %s (%s)", state.value, reason, extra=fields(stage="engagement"))
        payload: dict[str, object] = {"state": state.value, "reason": reason}
        if self.mqtt is not None:
            self.mqtt.publish_event("engagement", payload)
            self.mqtt.publish_engagement(self.engagement_document())
        self._show_lights()
        self._notify("engagement", payload)

    def tool_limit(self, tool: str, limit: str, retry_after_s: float) -> None:
        """A tool call refused by its rate limit: never silent (journal + MQTT event)."""
        log.warning(
            "tool %s refused: %s limit (retry in %.0f s)",
            tool,
            limit,
            retry_after_s,
            extra=fields(stage="limits"),
        )
        self.event(
            "limit_reached", {"tool": tool, "limit": limit, "retry_after_s": round(retry_after_s)}
        )

    def fault(self, fault: FaultRaised) -> None:
        self.faults += 1
        if fault.link in ("llm", "tts"):
            # Request/response links have no socket to watch: a failed request is the state.
            auth = "auth" in fault.error_kind or "401" in fault.message
            state = LinkState.FAILED if auth else LinkState.BACKOFF
            self.link_changed(fault.link, state, fault.error_kind)
        self.last_error = {
            "kind": fault.error_kind,
            "message": fault.message[:300],
            "link": fault.link,
        }
        log.error(
            "%s",
            fault.message,
            extra=fields(
                error_kind=fault.error_kind, link=fault.link or None, turn_id=fault.turn_id or None
            ),
        )
        if self.mqtt is not None:
            self.mqtt.publish_event("fault", self.last_error)
        self._notify("fault", fault)

    def turn_finished(self, metrics: TurnMetrics) -> None:
        if metrics.outcome is Outcome.OK:
            for link in ("llm", "tts"):
                self.link_changed(link, LinkState.CONNECTED)
        if metrics.outcome is Outcome.SUPERSEDED:
            summary = f"dropped unheard, the visitor went on ({metrics.llm_requests} LLM requests)"
        else:
            summary = f"voice-to-voice {metrics.voice_to_voice_ms} ms"
        log.info(
            "turn %s: %s",
            metrics.outcome.value,
            summary,
            extra=fields(
                turn_id=metrics.turn_id,
                stage="turn",
                latency_ms=metrics.voice_to_voice_ms,
                stt_final_ms=metrics.stt_final_ms,
                llm_ttft_ms=metrics.llm_ttft_ms,
                tts_ttfb_ms=metrics.tts_ttfb_ms,
                llm_requests=metrics.llm_requests,
                llm_prompt_tokens=metrics.llm_prompt_tokens,
                llm_completion_tokens=metrics.llm_completion_tokens,
                outcome=metrics.outcome.value,
            ),
        )
        if self.mqtt is not None:
            self.mqtt.publish_turn_metrics(metrics)
        self._notify("turn", metrics)

    def call_staff(self, reason: str, source: str) -> None:
        if self.staff_caller is not None:
            self.staff_caller(f"{reason} ({source})")

    def transcript(self, who: str, text: str, turn_id: str) -> None:
        self._notify("transcript", (who, text))  # logged only if log_transcripts says so

    def event(self, name: str, payload: dict[str, object]) -> None:
        if self.mqtt is not None:
            self.mqtt.publish_event(name, payload)
        self._notify(f"event/{name}", payload)

    def _notify(self, kind: str, payload: object) -> None:
        for observer in list(self.observers):
            try:
                observer(kind, payload)
            except Exception:  # an observer bug must not break the daemon
                log.exception("observer failed")

    # --- health and status ------------------------------------------------------------

    def status_text(self) -> str:
        state = self.state.value if self.state is not None else "starting"
        down = [n for n, s in self.links.items() if s in (LinkState.FAILED, LinkState.BACKOFF)]
        return state + (f"; degraded: {', '.join(down)}" if down else "")

    def health(self) -> dict[str, object]:
        """The MQTT `health` document (and `status` command reply)."""
        return {
            "version": __version__,
            "uptime_s": round(self._uptime_s(), 1),
            "state": self.state.value if self.state is not None else "starting",
            "engagement": self.engagement or None,
            "links": {name: state.value for name, state in self.links.items()},
            **self.health_extras(),
            "faults": self.faults,
            "last_error": self.last_error,
            "rss_kb": rss_kb(),
        }


def rss_kb() -> int:
    """This process's resident memory (VmRSS), 0 where /proc is not available."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
