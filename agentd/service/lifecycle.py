"""The supervisor under systemd: start-up, READY/STATUS/WATCHDOG, SIGHUP reload, shutdown.

`run_daemon` is what `agentd run` calls. It validates the config (ConfigError -> exit
78 before anything starts), sets up logging, then runs `Daemon` on one asyncio loop.
The watchdog is fed only while the conversation is consuming mic chunks, so a stalled
capture thread or a hung loop makes systemd restart the service. SIGTERM sends
STOPPING=1 and everything is closed within the 2 s systemd allows us.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from agentd import __version__
from agentd.config import Config, load_config
from agentd.errors import AgentdError, ConfigError
from agentd.events import FaultRaised, LinkState
from agentd.secrets import Secrets
from agentd.service.composition import BUILTIN_BACKENDS, DeviceBackends
from agentd.service.kiosk import EXIT_RESTART, Kiosk
from agentd.service.reporting import Reporting
from agentd.service.sdnotify import Notifier, WatchdogFeeder

log = logging.getLogger("agentd.service.lifecycle")

__all__ = ["EXIT_RESTART", "Daemon", "run_daemon"]
SHUTDOWN_BUDGET_S = 1.5  # systemd allows TimeoutStopSec; the brief asks for < 2 s
READY_GRACE_S = 10.0  # wait this long for the audio devices before READY=1 (degraded)


def run_daemon(config_path: str, backends: DeviceBackends = BUILTIN_BACKENDS) -> int:
    """Load config, set up logging, run until SIGTERM; returns the process exit code.

    `backends` are the device backends the config may name (`alsa`, plus `sim` when the
    CLI or a test harness provides the simulator's).
    """
    config = load_config(config_path)
    from agentd.logs import setup_logging

    secrets = Secrets.load()
    setup_logging(config.logging, secrets.known_values())
    daemon = Daemon(config_path, config, secrets, backends)
    try:
        return asyncio.run(daemon.run())
    except AgentdError as exc:
        log.critical("agentd failed: %s", exc, extra={"ERROR_KIND": exc.error_kind})
        return 78 if isinstance(exc, ConfigError) else 1


class Daemon:
    """Owns the kiosk: signals, reload, watchdog, READY/STOPPING, shutdown."""

    def __init__(
        self,
        config_path: str,
        config: Config,
        secrets: Secrets,
        backends: DeviceBackends = BUILTIN_BACKENDS,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.secrets = secrets
        self.backends = backends
        self.started_at = time.monotonic()
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._absent_ticks = 0
        self.notifier = Notifier()
        self.reporting = Reporting(self.notifier, started_at=self.uptime_s)
        self.kiosk = Kiosk(
            config=config,
            secrets=secrets,
            reporting=self.reporting,
            backends=backends,
            supervisor=self,
            config_path=config_path,
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        notifier, reporting, kiosk = self.notifier, self.reporting, self.kiosk
        notifier.status("starting")
        try:
            await kiosk.start()
        except BaseException:
            # A part that fails to build (a bad model file, exit 78) must not leave the
            # devices it opened before it open: close what exists, then fail.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(kiosk.stop(), SHUTDOWN_BUDGET_S)
            raise
        for sig, handler in (
            (signal.SIGTERM, self.request_stop),
            (signal.SIGINT, self.request_stop),
            (signal.SIGHUP, self.request_reload),
        ):
            loop.add_signal_handler(sig, handler)
        feeder = WatchdogFeeder(
            notifier,
            progress=self._audio_progress,
            stall_after_s=self.config.systemd.stall_after_s,
        )
        feeder.start()
        await self._wait_for_audio(READY_GRACE_S)
        notifier.ready(reporting.status_text())
        log.info("agentd %s ready", __version__, extra={"STAGE": "ready"})
        try:
            await self._stop.wait()
        finally:
            notifier.stopping()
            log.info("stopping", extra={"STAGE": "stopping"})
            await feeder.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(kiosk.stop(), SHUTDOWN_BUDGET_S)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return self.exit_code

    async def _wait_for_audio(self, grace_s: float) -> None:
        """READY=1 once the audio devices are open, or after `grace_s` in degraded mode.

        A kiosk whose USB mic is unplugged must still come up (and say so on MQTT and in
        STATUS=) rather than be killed by systemd's start timeout in a loop.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        links = self.reporting.links
        while loop.time() < deadline and not self._stop.is_set():
            if all(links[n] is LinkState.CONNECTED for n in ("capture", "playback")):
                return
            await asyncio.sleep(0.05)
        log.warning(
            "audio devices not open yet; running degraded: %s", self.reporting.status_text()
        )

    def _audio_progress(self) -> int:
        """The watchdog's progress counter: mic frames processed by the loop.

        While the capture device is absent (unplugged, in backoff) its thread is busy
        reopening it, not hung: count that as progress, so an unplugged mic leads to a
        reported fault and a reopen, not to a restart loop.
        """
        if self.reporting.links["capture"] is not LinkState.CONNECTED:
            self._absent_ticks += 1
        return self.kiosk.frames_processed() + self._absent_ticks

    def request_stop(self, exit_code: int = 0) -> None:
        self.exit_code = exit_code
        self._stop.set()

    def request_reload(self) -> None:
        asyncio.get_running_loop().create_task(self._reload_from_signal(), name="reload")

    async def _reload_from_signal(self) -> None:
        with contextlib.suppress(AgentdError):  # reload() logged and reported it already
            await self.reload()

    async def reload(self) -> str:
        """Re-read the config file; a bad file is reported and the running config kept."""
        reporting, kiosk, notifier = self.reporting, self.kiosk, self.notifier
        notifier.reloading()
        try:
            new_config = load_config(self.config_path)
            secrets = Secrets.load()
        except AgentdError as exc:
            log.error(
                "reload refused, keeping the running config: %s",
                exc,
                extra={"ERROR_KIND": "config_reload"},
            )
            reporting.fault(FaultRaised("config_reload", str(exc)))
            notifier.ready(reporting.status_text())
            raise
        old = self.config
        self.config, self.secrets = new_config, secrets
        kiosk.secrets = secrets
        await kiosk.apply_config(old, new_config)
        notifier.ready(reporting.status_text())
        log.info("configuration reloaded", extra={"STAGE": "reload"})
        return "reloaded"

    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at
