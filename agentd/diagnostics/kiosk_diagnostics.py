"""The running kiosk's diagnostics: self-test, turn capture and config drift in one place.

The kiosk builds one `KioskDiagnostics`, lets it wrap the conversation parts (capture's
tees, only when capture is allowed), attach its observers, and asks it for the `health`
fields; the MQTT command target forwards `self_test`, `config`, `capture` and
`capture_get` to it. Everything runs on the asyncio loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.ports import PlaybackDevice
from agentd.config import Config
from agentd.conversation.parts import ConversationParts
from agentd.conversation.turns import Conversation
from agentd.diagnostics.capture import Notify, TurnCapture
from agentd.diagnostics.config_fingerprint import config_hash, effective_config, hardware_profiles
from agentd.diagnostics.self_test import DeviceProbe, SelfTestService
from agentd.diagnostics.taps import CaptureRecorder, CaptureSpeaker
from agentd.events import AgentState
from agentd.logs import Redactor
from agentd.secrets import Secrets

CaptureShown = Callable[[bool], None]  # capture on/off -> the LEDs


def capture_dir(config: Config) -> str:
    return config.privacy.capture_dir or os.path.join(config.systemd.state_dir, "capture")


class KioskDiagnostics:
    """See the module docstring."""

    def __init__(
        self,
        *,
        config: Config,
        secrets: Secrets,
        config_path: str,
        conversation: Callable[[], Conversation | None],
        playback: Callable[[], PlaybackDevice | None],
        notify: Notify,
        capture_shown: CaptureShown | None = None,
    ) -> None:
        self.config = config
        self.secrets = secrets
        self.config_path = config_path
        self._conversation = conversation
        self._playback = playback
        self._notify = notify
        self.capture_shown = capture_shown
        self.profiles = hardware_profiles(config_path)
        self.config_hash = config_hash(config)
        self.capture = TurnCapture(
            config.privacy,
            capture_dir(config),
            in_rate_hz=config.audio.capture.rate_hz,
            out_rate_hz=config.audio.playback.rate_hz,
            notify=self._capture_changed,
        )
        self.self_test = SelfTestService(
            state=self._state, probe=self._probe, config=lambda: self.config
        )

    # --- wiring -----------------------------------------------------------------------

    def wrap_parts(self, parts: ConversationParts) -> ConversationParts:
        """Tee the recorder and speaker into capture, if capture may ever run."""
        if self.config.privacy.allow_remote_capture:
            parts.recorder = CaptureRecorder(parts.recorder, self.capture)
            parts.speaker = CaptureSpeaker(parts.speaker, self.capture)
        return parts

    def attach(
        self, conversation: Conversation, observers: list[Callable[[str, object], None]]
    ) -> None:
        conversation.event_observer = self.capture.on_event
        observers.append(self.capture.on_report)

    def reconfigure(self, config: Config, secrets: Secrets) -> None:
        self.config, self.secrets = config, secrets
        self.profiles = hardware_profiles(self.config_path)
        self.config_hash = config_hash(config)
        self.capture.in_rate_hz = config.audio.capture.rate_hz
        self.capture.out_rate_hz = config.audio.playback.rate_hz
        self.capture.reconfigure(config.privacy, capture_dir(config))

    def _capture_changed(self, name: str, payload: dict[str, object]) -> None:
        self._notify(name, payload)
        if self.capture_shown is not None:
            self.capture_shown(self.capture.active)

    # --- health and commands ----------------------------------------------------------

    def health(self) -> dict[str, object]:
        return {
            "config_hash": self.config_hash,
            "hardware_profiles": self.profiles,
            "self_test": self.self_test.health(),
            "capture": self.capture.health(),
        }

    async def run_self_test(self, visitor_level_dbfs: float | None = None) -> dict[str, object]:
        report = await self.self_test.run(visitor_level_dbfs)
        self._notify("self_test", report.summary())
        return report.to_dict()

    def effective_config(self) -> dict[str, object]:
        redact = Redactor(self.secrets.known_values())
        return effective_config(
            self.config, secrets=self.secrets.summary(), profiles=self.profiles, redact=redact
        )

    # --- the self-test's devices ------------------------------------------------------

    def _state(self) -> AgentState | None:
        conversation = self._conversation()
        return conversation.state if conversation is not None else None

    def _probe(self) -> DeviceProbe:
        conversation, playback = self._conversation(), self._playback()
        gain = conversation.parts.speaker.volume if conversation is not None else 1.0
        if conversation is None or playback is None:
            raise RuntimeError("the kiosk is not running")

        def attach(on_chunk: Callable[[AudioChunk], None]) -> Callable[[], None]:
            conversation.audio_tap = on_chunk

            def detach() -> None:
                conversation.audio_tap = None
                conversation.forget_heard()  # its pre-roll predates the test

            return detach

        rate = self.config.audio.capture.rate_hz
        return DeviceProbe(playback, attach, AudioFormat(rate), gain)
