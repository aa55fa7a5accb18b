"""Notifier and WatchdogFeeder against a real AF_UNIX datagram socket bound by the test."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentd.service.sdnotify import Notifier, WatchdogFeeder

pytestmark = pytest.mark.timeout(30)


class NotifySocket:
    """What systemd does: bind a datagram socket and read "KEY=VALUE" messages."""

    def __init__(self, address: str | bytes, env_value: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.env_value = env_value

    def env(self, **extra: str) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.env_value, **extra}

    def recv(self, timeout_s: float = 5.0) -> dict[str, str]:
        self.sock.settimeout(timeout_s)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    async def arecv(self, timeout_s: float = 5.0) -> dict[str, str]:
        return await asyncio.to_thread(self.recv, timeout_s)

    def pending(self) -> list[dict[str, str]]:
        self.sock.setblocking(False)
        out = []
        try:
            while True:
                data = self.sock.recv(4096).decode()
                out.append(dict(line.split("=", 1) for line in data.split("\n") if line))
        except BlockingIOError:
            return out
        finally:
            self.sock.setblocking(True)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    path = str(tmp_path / "notify")
    ns = NotifySocket(path, path)
    yield ns
    ns.sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    name = f"agentd-test-{uuid.uuid4().hex}"
    ns = NotifySocket(b"\0" + name.encode(), "@" + name)
    yield ns
    ns.sock.close()


def test_ready_status_stopping_reloading(notify_socket: NotifySocket) -> None:
    n = Notifier(notify_socket.env())
    assert n.enabled
    assert n.ready("listening on hw:1,0")
    assert notify_socket.recv() == {"READY": "1", "STATUS": "listening on hw:1,0"}
    assert n.status("idle\nwith a newline")
    assert notify_socket.recv() == {"STATUS": "idle with a newline"}  # one message, one line
    assert n.reloading()
    msg = notify_socket.recv()
    assert msg["RELOADING"] == "1"
    assert int(msg["MONOTONIC_USEC"]) > 0
    assert n.ready()
    assert notify_socket.recv() == {"READY": "1"}
    assert n.extend_timeout(2.5)
    assert notify_socket.recv() == {"EXTEND_TIMEOUT_USEC": "2500000"}
    assert n.watchdog()
    assert notify_socket.recv() == {"WATCHDOG": "1"}
    assert n.stopping()
    assert notify_socket.recv() == {"STOPPING": "1", "STATUS": "stopping"}
    n.close()
    n.close()  # idempotent


def test_abstract_socket(abstract_socket: NotifySocket) -> None:
    n = Notifier(abstract_socket.env())
    assert n.ready("up")
    assert abstract_socket.recv() == {"READY": "1", "STATUS": "up"}
    n.close()


def test_noop_without_notify_socket() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.watchdog_interval_s is None
    assert not n.ready("x")
    assert not n.watchdog()
    assert not n.stopping()
    feeder = WatchdogFeeder(n, lambda: 0, stall_after_s=1.0)
    assert not feeder.enabled


def test_watchdog_interval_from_env(notify_socket: NotifySocket) -> None:
    mine = str(os.getpid())
    assert Notifier(notify_socket.env(WATCHDOG_USEC="20000000")).watchdog_interval_s == 10.0
    assert (
        Notifier(notify_socket.env(WATCHDOG_USEC="20000000", WATCHDOG_PID=mine)).watchdog_interval_s
        == 10.0
    )
    # the watchdog belongs to another process (we are a child): not ours to feed
    other = notify_socket.env(WATCHDOG_USEC="20000000", WATCHDOG_PID=str(os.getpid() + 1))
    assert Notifier(other).watchdog_interval_s is None
    assert Notifier(notify_socket.env(WATCHDOG_USEC="garbage")).watchdog_interval_s is None
    assert Notifier(notify_socket.env(WATCHDOG_USEC="0")).watchdog_interval_s is None


def test_send_failure_is_reported_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with caplog.at_level(logging.WARNING, logger="agentd.service.sdnotify"):
        assert not n.ready()
        assert not n.watchdog()
    assert len([r for r in caplog.records if "sd_notify" in r.getMessage()]) == 1
    n.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_feeder_withholds_pings_while_progress_stalls(
    notify_socket: NotifySocket, caplog: pytest.LogCaptureFixture
) -> None:
    """Deterministic clock: pings every interval while frames advance, none when stuck."""
    frames = [0]
    clock = Clock()
    n = Notifier(notify_socket.env(WATCHDOG_USEC="2000000"))  # interval 1 s
    feeder = WatchdogFeeder(n, lambda: frames[0], stall_after_s=0.5, clock=clock)
    assert feeder.enabled
    assert feeder.tick_s == 0.25

    sent = []
    with caplog.at_level(logging.INFO, logger="agentd.service.sdnotify"):
        for _ in range(12):  # 3 s of healthy capture
            frames[0] += 1
            sent.append(feeder.check())
            clock.now += 0.25
        assert sum(sent) == 3  # one ping per 1 s interval
        assert len(notify_socket.pending()) == 3

        frozen = []
        for _ in range(12):  # capture loop hung: counter frozen for 3 s
            frozen.append(feeder.check())
            clock.now += 0.25
        assert feeder.stalled
        # a ping may still go out while the last frame is < stall_after_s old, never after
        assert sum(frozen[:2]) <= 1
        assert sum(frozen[2:]) == 0
        assert len(notify_socket.pending()) == sum(frozen)

        frames[0] += 1  # recovers: ping at once
        assert feeder.check()
        assert not feeder.stalled
    assert notify_socket.pending() == [{"WATCHDOG": "1"}]
    stalls = [r for r in caplog.records if getattr(r, "ERROR_KIND", None) == "watchdog_stall"]
    assert len(stalls) == 1, "the stall is logged once, not on every tick"
    assert len([r for r in caplog.records if "resumed" in r.getMessage()]) == 1
    n.close()


async def test_feeder_task_on_the_loop(notify_socket: NotifySocket) -> None:
    """Real task and real time: pings arrive, stop when frames stop, resume after."""
    frames = [0]
    stop_frames = asyncio.Event()

    async def capture() -> None:  # stands in for the ALSA thread's frame counter
        while not stop_frames.is_set():
            frames[0] += 1
            await asyncio.sleep(0.01)

    n = Notifier(notify_socket.env(WATCHDOG_USEC="200000"))  # ping every 0.1 s
    feeder = WatchdogFeeder(n, lambda: frames[0], stall_after_s=0.3)
    producer = asyncio.create_task(capture())
    task = feeder.start()
    assert feeder.start() is task  # idempotent
    try:
        for _ in range(3):
            assert await notify_socket.arecv() == {"WATCHDOG": "1"}
        stop_frames.set()
        await producer
        while not feeder.stalled:  # the feeder notices within stall_after_s + one tick
            await asyncio.sleep(0.05)
        notify_socket.pending()  # drop pings sent before it noticed
        with pytest.raises(TimeoutError):
            await notify_socket.arecv(timeout_s=0.5)  # five intervals, not one ping
        stop_frames.clear()
        producer = asyncio.create_task(capture())
        assert await notify_socket.arecv() == {"WATCHDOG": "1"}
    finally:
        stop_frames.set()
        await producer
        await feeder.stop()
        await feeder.stop()
        n.close()
    assert task.done()


async def test_feeder_run_returns_without_watchdog(notify_socket: NotifySocket) -> None:
    feeder = WatchdogFeeder(Notifier(notify_socket.env()), lambda: 0, stall_after_s=1.0)
    assert not feeder.enabled
    await asyncio.wait_for(feeder.run(), timeout=1.0)
