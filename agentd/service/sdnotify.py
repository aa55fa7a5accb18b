"""sd_notify(3) client and the progress-gated watchdog feeder.

Plain datagram socket code rather than `systemd.daemon.notify`: the protocol is one
sendto() of "KEY=VALUE\\n" lines, this keeps the hot path free of the C extension, lets
us send with MSG_DONTWAIT (a full receive queue must never block the event loop) and
works the same on machines where systemd-python is not built. Everything is a no-op
when $NOTIFY_SOCKET is unset (not started by systemd, or run from a shell).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

from agentd.logs import fields

log = logging.getLogger("agentd.service.sdnotify")

_MIN_TICK_S = 0.05  # sampling the progress counter faster than 20 Hz buys nothing


class Notifier:
    """Sends sd_notify messages to $NOTIFY_SOCKET; silently does nothing without it."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if raw.startswith("@"):
            # abstract namespace socket: leading NUL instead of '@' (sd_notify(3))
            self._address = b"\0" + raw[1:].encode()
        elif raw.startswith("/"):
            self._address = raw
        self._sock: socket.socket | None = None
        self._warned = False
        self._watchdog_usec = _own_watchdog_usec(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Half of WatchdogSec= (systemd's advice), or None when no watchdog is ours."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def notify(self, *lines: str) -> bool:
        """Send 'KEY=VALUE' lines as one datagram; False if not sent (never raises)."""
        if self._address is None:
            return False
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            if not self._warned:  # systemd gone or queue full: tell once, keep running
                self._warned = True
                log.warning(
                    "sd_notify to %s failed: %s",
                    os.fsdecode(self._address),
                    exc.strerror or exc,
                    extra=fields(error_kind="sd_notify"),
                )
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """READY=1: the audio devices are open and the daemon is serving."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", *_status(status))

    def reloading(self, status: str = "reloading configuration") -> bool:
        """RELOADING=1; send `ready()` when done. MONOTONIC_USEC is what notify-reload wants."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC: ask for more start/stop time (slow device open on boot)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status(text: str) -> tuple[str, ...]:
    return (f"STATUS={text}",) if text else ()


def _own_watchdog_usec(env: Mapping[str, str]) -> int | None:
    """WATCHDOG_USEC if the watchdog is meant for us (WATCHDOG_PID, as sd_watchdog_enabled)."""
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


class WatchdogFeeder:
    """Sends WATCHDOG=1 every `interval_s`, but only while `progress()` keeps advancing.

    Runs as a task on the daemon's event loop on purpose: if the loop itself hangs, the
    pings stop too. `progress` is the capture loop's frame counter (an int written by the
    ALSA thread, read here without a lock: int reads are atomic in CPython). When it has
    not moved for `stall_after_s` the feeder withholds pings, so systemd restarts us after
    WatchdogSec=; it logs once on stall (ERROR_KIND=watchdog_stall) and once on recovery.
    """

    def __init__(
        self,
        notifier: Notifier,
        progress: Callable[[], int],
        *,
        stall_after_s: float,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notifier = notifier
        self._progress = progress
        self._stall_after_s = stall_after_s
        self._interval_s = interval_s if interval_s is not None else notifier.watchdog_interval_s
        self._clock = clock
        self._last_value: int | None = None
        self._last_change_at = 0.0
        self._last_ping_at: float | None = None
        self._stalled = False
        self._task: asyncio.Task[None] | None = None
        self.pings_sent = 0

    @property
    def enabled(self) -> bool:
        return self._notifier.enabled and self._interval_s is not None

    @property
    def stalled(self) -> bool:
        return self._stalled

    @property
    def tick_s(self) -> float:
        """How often progress is sampled: fine enough for both the ping and stall periods."""
        interval = self._interval_s if self._interval_s is not None else self._stall_after_s
        return max(_MIN_TICK_S, min(interval, self._stall_after_s) / 2)

    def check(self) -> bool:
        """One step: sample progress, ping if due and not stalled. True if a ping was sent."""
        now = self._clock()
        value = self._progress()
        if self._last_value is None or value != self._last_value:
            self._last_value = value
            self._last_change_at = now
        silent_s = now - self._last_change_at
        if silent_s > self._stall_after_s:
            if not self._stalled:
                self._stalled = True
                log.error(
                    "audio loop made no progress for %.1f s (frames=%d): withholding watchdog "
                    "pings so systemd restarts agentd",
                    silent_s,
                    value,
                    extra=fields(error_kind="watchdog_stall", stage="audio"),
                )
            return False
        if self._stalled:
            self._stalled = False
            self._last_ping_at = None  # ping at once: systemd may be close to its deadline
            log.warning(
                "audio loop progressing again; watchdog pings resumed", extra=fields(stage="audio")
            )
        if not self.enabled or self._interval_s is None:
            return False
        if self._last_ping_at is not None and now - self._last_ping_at < self._interval_s:
            return False
        if self._notifier.watchdog():
            self._last_ping_at = now
            self.pings_sent += 1
            return True
        return False

    async def run(self) -> None:
        """Feed until cancelled; returns at once when there is no watchdog to feed."""
        if not self.enabled:
            return
        self._last_value = None
        while True:
            self.check()
            await asyncio.sleep(self.tick_s)

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="watchdog-feeder")
        return self._task

    async def stop(self) -> None:
        """Cancel the task and wait for it (idempotent)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # we were cancelled ourselves
                raise
