"""The running kiosk: audio devices, the conversation, and the fleet links, wired together.

Part of the composition root (with `composition`): it builds everything on start,
rebuilds what a reload changed, and closes everything on stop. Threads (capture,
playback, paho, gpiozero) reach the loop only through the conversation's inbox or
`call_soon_threadsafe`, never by calling into the loop's objects directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import TYPE_CHECKING

from agentd.audio.format import AudioChunk
from agentd.config import Config
from agentd.conversation.engagement import Engagement, engagement_from_config
from agentd.conversation.inbox import Inbox
from agentd.conversation.parts import ConversationParts
from agentd.conversation.turns import Conversation
from agentd.diagnostics.kiosk_diagnostics import KioskDiagnostics
from agentd.errors import AgentdError
from agentd.events import AgentState, FaultRaised, LinkChanged, LinkState
from agentd.logs import fields
from agentd.secrets import Secrets
from agentd.service.composition import (
    AudioDevices,
    DeviceBackends,
    DeviceBridges,
    build_audio,
    build_conversation_parts,
    persona_path,
    prepare,
)
from agentd.service.remote_commands import RemoteCommands, Supervisor
from agentd.service.reporting import Reporting

if TYPE_CHECKING:
    from agentd.gpio.controls import GpioControls
    from agentd.gpio.presence import PresenceSensor
    from agentd.mqtt.service import MqttService

log = logging.getLogger("agentd.service")

# CPython hands the GIL over every 5 ms by default: a capture or playback thread (or the
# loop, when paho parses a burst) could wait that long, a quarter of an audio period.
# 1 ms bounds it; the extra switching is negligible at this load.
GIL_SWITCH_INTERVAL_S = 0.001
EXIT_RESTART = 75  # EX_TEMPFAIL: MQTT `restart` exits with it so Restart=on-failure restarts
CLOSE_STEP_S = 0.5  # each network link gets this long to close on shutdown


class Kiosk:
    """See the module docstring. Created and used on the loop thread only."""

    def __init__(
        self,
        *,
        config: Config,
        secrets: Secrets,
        reporting: Reporting,
        backends: DeviceBackends,
        supervisor: Supervisor,
        config_path: str = "",
    ) -> None:
        self.config = config
        self.secrets = secrets
        self.reporting = reporting
        self._backends = backends
        self._supervisor = supervisor
        self.audio: AudioDevices | None = None
        self.conversation: Conversation | None = None
        self.inbox: Inbox | None = None
        self.mqtt: MqttService | None = None
        self.gpio: GpioControls | None = None
        self.presence: PresenceSensor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._staff_tasks: set[asyncio.Task[None]] = set()
        self.diagnostics = KioskDiagnostics(
            config=config,
            secrets=secrets,
            config_path=config_path,
            conversation=lambda: self.conversation,
            playback=lambda: self.audio.playback if self.audio is not None else None,
            notify=reporting.event,
            capture_shown=self._show_capture,
        )

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        config = self.config
        barge_in = config.audio.barge_in
        if barge_in.enabled and barge_in.mode == "reference" and barge_in.echo_filter:
            from agentd.audio.echo_filter import preload

            await asyncio.to_thread(preload)  # numpy once at start, not mid-conversation
        audio = self._open_audio(config)
        parts = await self._build_parts(config, audio)
        conversation = self.conversation = Conversation(
            parts=parts,
            reporter=self.reporting,
            log_transcripts=config.logging.log_transcripts,
            engagement=self._build_engagement(config),
        )
        self.inbox = Inbox(loop, conversation.handle, conversation.on_audio)
        self.diagnostics.attach(conversation, self.reporting.observers)
        self.reporting.staff_caller = self.call_staff
        self.reporting.health_extras = self._health_extras
        self._start_fleet(config)
        self._start_presence(config)
        audio.capture.start(self.post_audio)
        for link in ("llm", "tts"):  # HTTP: per request; a failed request is the state
            self.reporting.link_changed(link, LinkState.CONNECTED)
        self.reporting.state_changed(AgentState.IDLE)

    def post(self, event: object) -> None:
        """Post a command or fact to the conversation (any thread)."""
        if self.inbox is not None:
            self.inbox.post(event)

    def post_audio(self, chunk: AudioChunk) -> None:
        """One mic chunk for the conversation (capture thread)."""
        if self.inbox is not None:
            self.inbox.post_audio(chunk)

    def _require_conversation(self) -> Conversation:
        if self.conversation is None:
            raise RuntimeError("Kiosk.start() has not run")
        return self.conversation

    def _set_system_prompt(self, text: str) -> None:
        self._require_conversation().parts.history.set_system_prompt(text)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("Kiosk.start() has not run")
        return self._loop

    def _open_audio(self, config: Config) -> AudioDevices:
        loop = self._require_loop()

        def link_changed(name: str, state: LinkState, detail: str) -> None:  # device thread
            loop.call_soon_threadsafe(self.reporting.link_changed, name, state, detail)

        audio = self.audio = build_audio(
            config, self._backends, DeviceBridges(link_changed, self.post)
        )
        self.reporting.link_changed("capture", audio.capture.state)
        self.reporting.link_changed("playback", audio.playback.state)
        return audio

    async def _build_parts(self, config: Config, audio: AudioDevices) -> ConversationParts:
        parts = build_conversation_parts(
            config=config,
            secrets=self.secrets,
            audio=audio,
            emit=self._emit,
            call_staff=self.call_staff,
            on_tool_limit=self.reporting.tool_limit,
        )
        await prepare(parts)
        return self.diagnostics.wrap_parts(parts)

    def _start_fleet(self, config: Config) -> None:
        loop = self._require_loop()
        if config.mqtt.enabled and self.mqtt is None:
            from agentd.mqtt.service import MqttService

            password = self.secrets.get("mqtt_password")
            commands = RemoteCommands(
                post=self.post,
                supervisor=self._supervisor,
                health=self.reporting.health,
                persona_path=lambda: persona_path(self.config),
                set_system_prompt=self._set_system_prompt,
                restart_exit_code=EXIT_RESTART,
                diagnostics=self.diagnostics,
            )
            self.mqtt = MqttService(
                config.mqtt,
                config.device,
                password.reveal() if password else None,
                commands,
                self.reporting.health,
                loop=loop,
                on_link_changed=self._emit,
            )
            self.reporting.attach_mqtt(self.mqtt)  # before start: retained on connect
            self.mqtt.start()
        if config.gpio.enabled and self.gpio is None:
            from agentd.gpio.controls import GpioControls

            gpio = GpioControls(config.gpio, self.post, led_engaged=config.engagement.led_engaged)
            try:
                gpio.start()
            except AgentdError as exc:
                self.reporting.fault(FaultRaised(exc.error_kind, str(exc)))
            else:
                self.gpio = gpio
                self.reporting.attach_gpio(gpio)

    async def stop(self) -> None:
        """Close everything; each step bounded so shutdown fits systemd's budget."""
        conversation, audio = self.conversation, self.audio
        if conversation is not None:
            await conversation.shutdown()
        if audio is not None:
            await asyncio.to_thread(audio.capture.close)
        if conversation is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conversation.parts.aclose(), CLOSE_STEP_S)
        await self._stop_mqtt()
        self._stop_presence()
        self._stop_gpio()
        if audio is not None:
            await asyncio.to_thread(audio.playback.close)

    async def _stop_mqtt(self) -> None:
        mqtt, self.mqtt = self.mqtt, None
        self.reporting.attach_mqtt(None)
        if mqtt is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(mqtt.stop(), CLOSE_STEP_S)

    def _stop_gpio(self) -> None:
        gpio, self.gpio = self.gpio, None
        self.reporting.attach_gpio(None)
        if gpio is not None:
            gpio.close()

    async def apply_config(self, old: Config, new: Config) -> None:
        """Swap in a reloaded config: links rebuilt, audio reopened only if it changed."""
        from agentd.logs import reconfigure

        conversation, audio = self._require_conversation(), self.audio
        if audio is None:
            raise RuntimeError("Kiosk.start() has not run")
        self.config = new
        reconfigure(new.logging, self.secrets.known_values())
        self.diagnostics.reconfigure(new, self.secrets)
        await conversation.shutdown()
        if new.audio.capture != old.audio.capture or new.audio.playback != old.audio.playback:
            await asyncio.to_thread(audio.capture.close)
            await asyncio.to_thread(audio.playback.close)
            audio = self._open_audio(new)
            audio.capture.start(self.post_audio)
        old_parts = conversation.parts
        conversation.parts = await self._build_parts(new, audio)
        conversation.log_transcripts = new.logging.log_transcripts
        if new.engagement != old.engagement or new.audio.capture != old.audio.capture:
            conversation.engagement = self._build_engagement(new)
        await old_parts.aclose()
        if new.mqtt != old.mqtt or new.device != old.device:
            await self._stop_mqtt()
        if new.gpio != old.gpio or new.engagement.presence != old.engagement.presence:
            self._stop_presence()
        if new.gpio != old.gpio:
            self._stop_gpio()
        self._start_fleet(new)
        self._start_presence(new)

    # --- engagement -------------------------------------------------------------------

    def _build_engagement(self, config: Config) -> Engagement:
        """The engagement policy; a bad wake-word model is a ConfigError (exit 78)."""
        capture = config.audio.capture
        engagement = engagement_from_config(
            config.engagement, self.reporting, capture.rate_hz, capture
        )
        self.reporting.engagement_modes = tuple(config.engagement.modes)
        if self.gpio is not None:
            self.gpio.set_led_engaged(config.engagement.led_engaged)
        if self.conversation is not None:  # a reload: the new policy takes over the hooks
            conversation = self.conversation
            engagement.on_end = conversation.end_conversation
            engagement.on_greet = conversation.greet
        self.reporting.engagement_changed(engagement.state, "start")
        return engagement

    def _start_presence(self, config: Config) -> None:
        """The presence sensor; if it cannot be claimed the kiosk runs degraded, reported."""
        cfg = config.engagement
        if "presence" not in cfg.modes or self.presence is not None:
            return
        from agentd.gpio.pins import make_pin_factory
        from agentd.gpio.presence import PresenceSensor

        try:
            factory = self.gpio.factory if self.gpio is not None else None
            factory = factory or make_pin_factory(config.gpio.pin_factory)
            self.presence = PresenceSensor(cfg.presence, factory, self.post)
        except AgentdError as exc:
            self.reporting.fault(FaultRaised(exc.error_kind, str(exc), link="presence"))
            self.reporting.link_changed("presence", LinkState.FAILED, str(exc))
        else:
            self.reporting.link_changed("presence", LinkState.CONNECTED)

    def _stop_presence(self) -> None:
        presence, self.presence = self.presence, None
        if presence is not None:
            presence.close()

    # --- bridges ----------------------------------------------------------------------

    def _emit(self, event: object) -> None:
        """Events from links on the loop: link state to reporting, the rest to the talk."""
        if isinstance(event, LinkChanged):
            self.reporting.link_changed(event.link, event.state, event.detail)
        elif self.conversation is not None:
            self.conversation.handle(event)

    def call_staff(self, reason: str) -> None:
        """The call_staff tool, the staff button, a long press: MQTT event and GPIO output."""
        log.info("staff called: %s", reason, extra=fields(stage="staff_call"))
        self.reporting.event("staff_call", {"reason": reason[:200]})
        if self.gpio is not None:
            task = self._require_loop().create_task(self.gpio.raise_staff_call(), name="staff")
            self._staff_tasks.add(task)
            task.add_done_callback(self._staff_tasks.discard)

    def _health_extras(self) -> dict[str, object]:
        audio, conversation = self.audio, self.conversation
        return {
            "xruns": audio.capture.stats.xruns if audio else 0,
            "underruns": audio.playback.stats.underruns if audio else 0,
            "turns": conversation.turns_completed if conversation else 0,
            # Replies dropped unheard because the visitor went on, and the LLM requests of
            # every reply agentd itself dropped unheard: paid for, never heard.
            "replies_superseded": conversation.replies_superseded if conversation else 0,
            "llm_requests_wasted": conversation.llm_requests_wasted if conversation else 0,
            "volume": audio.speaker.volume if audio else None,
            "muted": conversation.muted if conversation else False,
            "engagement": conversation.engagement.snapshot()
            if conversation and conversation.engagement
            else None,
            **self.diagnostics.health(),
        }

    def _show_capture(self, active: bool) -> None:
        """Capture is never silent: the LEDs show it while it is armed."""
        if self.gpio is not None:
            self.gpio.show_capture(active)

    def frames_processed(self) -> int:
        """The watchdog's progress counter: mic chunks the conversation consumed."""
        return self.conversation.frames_processed if self.conversation is not None else 0
