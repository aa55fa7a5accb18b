"""A real systemd-journald for tests, shared safely between concurrent test processes.

libsystemd's sd_journal_send() always writes to /run/systemd/journal/socket, so the
journald under test has to listen there. The helper:

- reuses a journald that already answers on that socket (the host's, or one another
  test process started), otherwise starts /lib/systemd/systemd-journald itself (root);
- holds a shared flock on a lock file while in use; whoever releases last and finds the
  pid file of a helper-started journald stops it, so no process outlives the tests and a
  system journald (no pid file) is never touched;
- finds records with `journalctl -o json` and field matches; `wait_for()` follows the
  journal (`journalctl -f`), so it waits for the event instead of sleeping.

Records are told apart by a unique field value per test (a uuid4 TURN_ID), so tests
sharing one journald do not see each other's records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

JOURNALD = Path("/lib/systemd/systemd-journald")
SOCKET = Path("/run/systemd/journal/socket")
START_LOCK = Path("/run/systemd/journal/agentd-tests.start.lock")
USERS_LOCK = Path("/run/systemd/journal/agentd-tests.users.lock")
PIDFILE = Path("/run/systemd/journal/agentd-tests.pid")
START_TIMEOUT_S = 10.0  # journald opens its sockets in well under a second


def available() -> str | None:
    """None if a journald can be used here, else the reason (for pytest.skip)."""
    if not shutil.which("journalctl"):
        return "journalctl not installed"
    if _alive():
        return None
    if not JOURNALD.exists():
        return f"{JOURNALD} not installed"
    if os.geteuid() != 0:
        return "starting systemd-journald needs root"
    return None


def _alive() -> bool:
    """True if something accepts native journal datagrams on the socket."""
    if not SOCKET.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(str(SOCKET))
        except OSError:
            return False
    return True


def _helper_pid() -> int | None:
    try:
        pid = int(PIDFILE.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if cmdline.startswith(str(JOURNALD).encode()) else None


def _start() -> None:
    SOCKET.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SYSTEMD_LOG_TARGET="console", SYSTEMD_LOG_LEVEL="warning")
    proc = subprocess.Popen(
        [str(JOURNALD)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives this test process if another one still uses it
    )
    PIDFILE.write_text(str(proc.pid))
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _alive():  # no readiness signal without socket activation: poll the socket
        if proc.poll() is not None:
            raise RuntimeError(f"systemd-journald exited with {proc.returncode} at start")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("systemd-journald did not open its socket in time")
        time.sleep(0.02)


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if we are the parent
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    PIDFILE.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path, how: int) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, how)
        yield fd
    finally:
        os.close(fd)  # also drops the lock


@contextlib.contextmanager
def running() -> Iterator[None]:
    """Context manager: a journald listens on /run/systemd/journal/socket inside it.

    START_LOCK (exclusive, held briefly) serialises "start if dead" against "stop if last";
    USERS_LOCK is held shared for the whole use, so the last user can tell it is last.
    """
    reason = available()
    if reason:
        raise RuntimeError(reason)
    SOCKET.parent.mkdir(parents=True, exist_ok=True)
    users = os.open(USERS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with _locked(START_LOCK, fcntl.LOCK_EX):
            if not _alive():
                _start()
            fcntl.flock(users, fcntl.LOCK_SH)
        yield
    finally:
        with _locked(START_LOCK, fcntl.LOCK_EX):
            fcntl.flock(users, fcntl.LOCK_UN)
            with contextlib.suppress(BlockingIOError):
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else using it
                pid = _helper_pid()
                if pid is not None:
                    _stop(pid)
        os.close(users)


def query(*matches: str) -> list[dict[str, Any]]:
    """All records matching `FIELD=value` terms (ANDed), as journalctl's JSON objects."""
    out = subprocess.run(
        ["journalctl", "--no-pager", "-o", "json", "--all", *matches],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_for(*matches: str, count: int = 1, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Follow the journal until `count` records match; raises TimeoutError otherwise."""
    cmd = ["journalctl", "--no-pager", "-o", "json", "--all", "-f", "-n", "all", *matches]
    records: list[dict[str, Any]] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        buf = b""
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            try:
                while len(records) < count:
                    left = deadline - time.monotonic()
                    if left <= 0 or not sel.select(left):
                        raise TimeoutError(f"{len(records)}/{count} records for {matches}")
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    records += [json.loads(line) for line in lines if line.strip()]
            finally:
                proc.terminate()
    if len(records) < count:
        raise TimeoutError(f"journalctl exited with {len(records)}/{count} records")
    return records
