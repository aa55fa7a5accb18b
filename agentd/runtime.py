"""Runtime: the running daemon's parts wired together on the asyncio loop.

It owns the audio devices, the conversation parts and the orchestrator; fans the
orchestrator's reports out to the journal, MQTT, the LEDs and sd_notify STATUS; and
implements the MQTT command target. Threads (capture, playback, paho, gpiozero)
reach the loop only through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentd import __version__
from agentd.assembly import build_audio, build_conversation, persona_path
from agentd.errors import AgentdError, CommandError
from agentd.events import AgentState, FaultRaised, LinkChanged, LinkState, TurnMetrics
from agentd.logs import fields
from agentd.orchestrator import Orchestrator

if TYPE_CHECKING:
    from agentd.config import Config
    from agentd.daemon import Daemon
    from agentd.sdnotify import Notifier

log = logging.getLogger("agentd.runtime")

LINKS = ("capture", "playback", "stt", "llm", "tts", "mqtt")
GIL_SWITCH_INTERVAL_S = 0.001


class Runtime:
    """See the module docstring. Created and used on the loop thread only."""

    def __init__(self, daemon: Daemon, notifier: Notifier) -> None:
        self.daemon = daemon
        self.notifier = notifier
        self.links: dict[str, LinkState] = dict.fromkeys(LINKS, LinkState.DISCONNECTED)
        self.last_error: dict[str, Any] | None = None
        self.faults = 0
        self.observers: list[Callable[[str, Any], None]] = []  # demo/bench/tests listen here
        self.mqtt: Any = None
        self.gpio: Any = None
        self.audio: Any = None
        self.orchestrator: Orchestrator = None  # type: ignore[assignment]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: list[asyncio.TimerHandle] = []

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("Runtime.start() has not run")
        return self._loop

    @property
    def config(self) -> Config:
        return self.daemon.config

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        # CPython hands the GIL over every 5 ms by default: a capture or playback thread
        # (or the loop, when paho parses a burst) could wait that long, a quarter of an
        # audio period. 1 ms bounds it; the extra switching is negligible at this load.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        config = self.config
        barge_in = config.audio.barge_in
        if barge_in.enabled and barge_in.mode == "reference" and barge_in.echo_filter:
            from agentd.audio.echo_filter import preload

            await asyncio.to_thread(preload)
        self._open_audio(config)
        parts = await self._conversation(config)
        self.orchestrator = Orchestrator(
            parts=parts, reporter=self, log_transcripts=config.logging.log_transcripts
        )
        self._start_fleet(config)
        self.audio.capture.start(self._frame_bridge(loop))
        self.links["llm"] = self.links["tts"] = LinkState.CONNECTED  # HTTP: per request
        self.state_changed(AgentState.IDLE)

    def _open_audio(self, config: Config) -> None:
        """Open the configured devices (capture not started yet) and note their state."""
        self.audio = build_audio(config, self._require_loop(), self._on_link, self._on_first_audio)
        for name in ("capture", "playback"):
            device = getattr(self.audio, name)
            self.links[name] = getattr(device, "state", LinkState.DISCONNECTED)

    async def _conversation(self, config: Config) -> Any:
        """Build the conversation parts for `config` and get them ready to run."""
        parts = build_conversation(
            config=config,
            secrets=self.daemon.secrets,
            speaker=self.audio.speaker,
            reference=self.audio.playback.reference,
            emit=self._emit,
            call_staff=self._call_staff,
        )
        await parts.stt.start()
        await asyncio.to_thread(parts.fallback.prerender)  # espeak runs off the loop
        return parts

    def _frame_bridge(self, loop: asyncio.AbstractEventLoop) -> Callable[[bytes, float], None]:
        def on_frame(pcm: bytes, at_ms: float) -> None:  # capture thread: never block
            loop.call_soon_threadsafe(self.orchestrator.on_frame, pcm, at_ms)

        return on_frame

    def _start_fleet(self, config: Config) -> None:
        loop = self._require_loop()
        if config.mqtt.enabled:
            from agentd.mqtt.service import MqttService

            password = self.daemon.secrets.get("mqtt_password")
            self.mqtt = MqttService(
                config.mqtt,
                config.device,
                password.reveal() if password else None,
                RemoteCommands(self),
                self.health,
                loop=loop,
                on_link_changed=self._emit,
            )
            self.mqtt.start()
        if config.gpio.enabled:
            from agentd.gpio.controls import GpioControls

            self.gpio = GpioControls(config.gpio, self._emit, loop)
            try:
                self.gpio.start()
            except AgentdError as exc:
                self.report_fault(exc.error_kind, str(exc))
                self.gpio = None

    async def stop(self) -> None:
        """Close everything; each step bounded so shutdown fits systemd's budget."""
        for timer in self._timers:
            timer.cancel()
        if self.orchestrator is not None:
            await self.orchestrator.cancel_and_wait("shutdown")
        if self.audio is not None:
            await asyncio.to_thread(self.audio.capture.close)
        if self.orchestrator is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.orchestrator.parts.aclose(), 0.5)
        if self.mqtt is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.mqtt.stop(), 0.5)
        if self.gpio is not None:
            self.gpio.close()
        if self.audio is not None:
            await asyncio.to_thread(self.audio.playback.close)

    async def apply_config(self, old: Config, new: Config) -> None:
        """Swap in a reloaded config: links rebuilt, audio reopened only if it changed."""
        from agentd.logs import reconfigure

        reconfigure(new.logging, self.daemon.secrets.known_values())
        orchestrator = self.orchestrator
        await orchestrator.cancel_and_wait("reload")
        if new.audio.capture != old.audio.capture or new.audio.playback != old.audio.playback:
            await asyncio.to_thread(self.audio.capture.close)
            await asyncio.to_thread(self.audio.playback.close)
            self._open_audio(new)
            self.audio.capture.start(self._frame_bridge(self._require_loop()))
        old_parts = orchestrator.parts
        orchestrator.parts = await self._conversation(new)
        orchestrator.log_transcripts = new.logging.log_transcripts
        await old_parts.aclose()
        if (new.mqtt != old.mqtt or new.device != old.device) and self.mqtt is not None:
            await self.mqtt.stop()
            self.mqtt = None
        if new.gpio != old.gpio and self.gpio is not None:
            self.gpio.close()
            self.gpio = None
        if self.mqtt is None or self.gpio is None:
            self._start_fleet_missing(new)

    def _start_fleet_missing(self, config: Config) -> None:
        mqtt, gpio = self.mqtt, self.gpio
        self._start_fleet(config)
        if mqtt is not None:
            self.mqtt = mqtt
        if gpio is not None:
            self.gpio = gpio

    # --- bridges into the orchestrator -----------------------------------------------

    def _emit(self, event: object) -> None:
        """Events from links (loop thread): link bookkeeping, then the orchestrator."""
        if isinstance(event, LinkChanged):
            self._on_link(event.link, event.state, event.detail)
            return
        if self.orchestrator is not None:
            self.orchestrator.handle(event)

    def _on_link(self, name: str, state: LinkState, detail: str) -> None:
        previous = self.links.get(name)
        self.links[name] = state
        lost = state in (LinkState.DISCONNECTED, LinkState.BACKOFF)
        if name in ("capture", "playback") and lost and previous == LinkState.CONNECTED:
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

    def _on_first_audio(self, at_ms: float) -> None:
        if self.orchestrator is not None:
            self.orchestrator.on_first_audio(at_ms)

    async def _call_staff(self, reason: str) -> None:
        """The call_staff tool / long press: MQTT event and the GPIO output."""
        log.info("staff called: %s", reason, extra=fields(stage="staff_call"))
        self.event("staff_call", {"reason": reason[:200]})
        if self.gpio is not None:
            await self.gpio.raise_staff_call()

    # --- Reporter (orchestrator -> world) ---------------------------------------------

    def state_changed(self, state: AgentState) -> None:
        log.debug("state %s", state.value, extra=fields(stage="state"))
        if self.mqtt is not None:
            self.mqtt.publish_state(state)
        if self.gpio is not None:
            self.gpio.show_state(state)
        self.notifier.status(self.status_text())
        self._notify("state", state)

    def fault(self, fault: FaultRaised) -> None:
        self.faults += 1
        if fault.link in ("llm", "tts"):
            # Request/response links have no socket to watch: a failed request is the state.
            auth = "auth" in fault.error_kind or "401" in fault.message
            self._on_link(
                fault.link, LinkState.FAILED if auth else LinkState.BACKOFF, fault.error_kind
            )
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

    def report_fault(self, kind: str, message: str, link: str = "") -> None:
        self.fault(FaultRaised(kind, message, link=link))

    def turn_finished(self, metrics: TurnMetrics) -> None:
        if metrics.outcome == "ok":
            for link in ("llm", "tts"):
                self._on_link(link, LinkState.CONNECTED, "")
        log.info(
            "turn %s: voice-to-voice %s ms",
            metrics.outcome,
            metrics.voice_to_voice_ms,
            extra=fields(
                turn_id=metrics.turn_id,
                stage="turn",
                latency_ms=metrics.voice_to_voice_ms,
                stt_final_ms=metrics.stt_final_ms,
                llm_ttft_ms=metrics.llm_ttft_ms,
                tts_ttfb_ms=metrics.tts_ttfb_ms,
                outcome=metrics.outcome,
            ),
        )
        if self.mqtt is not None:
            self.mqtt.publish_turn_metrics(metrics)
        self._notify("turn", metrics)

    def call_staff(self, reason: str, source: str) -> None:
        self._require_loop().create_task(
            self._call_staff(f"{reason} ({source})"), name="staff-call"
        )

    def transcript(self, who: str, text: str, turn_id: str) -> None:
        self._notify("transcript", (who, text))  # logged only if log_transcripts says so

    def event(self, name: str, payload: dict[str, Any]) -> None:
        if self.mqtt is not None:
            self.mqtt.publish_event(name, payload)
        self._notify(f"event/{name}", payload)

    def _notify(self, kind: str, payload: Any) -> None:
        for observer in list(self.observers):
            try:
                observer(kind, payload)
            except Exception:  # an observer bug must not break the daemon
                log.exception("observer failed")

    # --- health and status ------------------------------------------------------------

    def status_text(self) -> str:
        state = self.orchestrator.state.value if self.orchestrator is not None else "starting"
        down = [n for n, s in self.links.items() if s in (LinkState.FAILED, LinkState.BACKOFF)]
        return f"{state}" + (f"; degraded: {', '.join(down)}" if down else "")

    def health(self) -> dict[str, Any]:
        capture = getattr(self.audio, "capture", None)
        playback = getattr(self.audio, "playback", None)
        orch = self.orchestrator
        return {
            "version": __version__,
            "uptime_s": round(self.daemon.uptime_s(), 1),
            "state": orch.state.value if orch is not None else "starting",
            "links": {name: state.value for name, state in self.links.items()},
            "xruns": getattr(getattr(capture, "stats", None), "xruns", 0),
            "underruns": getattr(getattr(playback, "stats", None), "underruns", 0),
            "turns": orch.turns_completed if orch is not None else 0,
            "volume": getattr(getattr(self.audio, "speaker", None), "volume", None),
            "muted": orch.muted if orch is not None else False,
            "faults": self.faults,
            "last_error": self.last_error,
            "rss_kb": _rss_kb(),
        }


def _rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RemoteCommands:
    """The MQTT command target: every command runs on the loop via the orchestrator."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    async def say(self, text: str) -> None:
        self._rt.orchestrator.speak(text, source="mqtt")

    async def set_muted(self, muted: bool) -> None:
        self._rt.orchestrator.set_muted(muted)

    async def set_volume(self, level: float) -> None:
        self._rt.audio.speaker.set_volume(level)

    async def cancel(self) -> None:
        self._rt.orchestrator.cancel_reply("mqtt cancel")

    async def reset_conversation(self) -> None:
        await self._rt.orchestrator.cancel_and_wait("reset")
        self._rt.orchestrator.parts.history.reset()

    async def reload_config(self) -> str:
        try:
            return await self._rt.daemon.reload()
        except AgentdError as exc:
            raise CommandError("invalid_config", str(exc)) from None

    def status(self) -> dict[str, object]:
        return self._rt.health()

    async def set_prompt(self, prompt: str) -> None:
        try:
            await asyncio.to_thread(_write_atomically, persona_path(self._rt.config), prompt)
        except OSError as exc:
            raise CommandError(
                "persist_failed", f"cannot persist the prompt: {exc.strerror}"
            ) from None
        self._rt.orchestrator.parts.history.set_system_prompt(prompt)

    async def restart(self) -> None:
        from agentd.daemon import EXIT_RESTART

        # Reply first (the service sends it when we return), then exit for systemd to restart.
        asyncio.get_running_loop().call_later(0.2, self._rt.daemon.request_stop, EXIT_RESTART)


def _write_atomically(path: str, text: str) -> None:
    """Persist via a temp file and rename, so a power cut never leaves half a persona."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
