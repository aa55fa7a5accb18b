"""A real Mosquitto broker for tests: free loopback port, generated config, clean teardown.

    with Mosquitto(tmp_path) as broker:          # plain listener only
        client.connect(broker.host, broker.port)

    broker = Mosquitto(tmp_path, tls=True, users={"kiosk1": "pw"}, acl=ACL_TEXT)
    broker.start(); broker.tls_port; broker.ca_file; broker.kill(); broker.restart()

TLS uses a throwaway CA from `trustme` (server cert for 127.0.0.1 and localhost);
`client_cert("name")` issues a client certificate from the same CA. Users go through
`mosquitto_passwd -b`. Persistence is on (in tmp) so a stop/restart keeps retained
messages and persistent sessions, like a production broker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 10.0  # mosquitto starts in ~20 ms; CI machines under load need slack
_POLL_S = 0.02


def free_port() -> int:
    """A loopback port that is free right now (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float = READY_TIMEOUT_S, *, up: bool = True) -> None:
    """Block until a TCP connect to the port succeeds (or fails, with up=False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(_POLL_S)
    raise TimeoutError(f"port {port} not {'up' if up else 'down'} after {timeout_s}s")


class Mosquitto:
    """One broker process; start/stop/kill/restart keep the same ports and config."""

    def __init__(
        self,
        workdir: Path,
        *,
        tls: bool = False,
        require_certificate: bool = False,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        allow_anonymous: bool | None = None,
        persistence: bool = True,
        autosave_s: int = 0,
    ) -> None:
        self.workdir = Path(workdir) / f"mosquitto-{os.getpid()}-{id(self):x}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = free_port()
        self.tls_port: int | None = free_port() if tls else None
        self.ca_file: Path | None = None
        self._ca = None
        self._users = users or {}
        self._acl = acl
        self._require_cert = require_certificate
        self._allow_anonymous = (not self._users) if allow_anonymous is None else allow_anonymous
        self._persistence = persistence
        self._autosave_s = autosave_s  # >0: sessions survive even a SIGKILL of the broker
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = self.workdir / "mosquitto.log"
        self.conf_file = self.workdir / "mosquitto.conf"
        self._write_config()

    # --- config --------------------------------------------------------------------

    def _write_config(self) -> None:
        lines = [
            "per_listener_settings false",
            f"allow_anonymous {'true' if self._allow_anonymous else 'false'}",
            f"persistence {'true' if self._persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            # 0 = save on shutdown only (tests restart via stop()); a test that kills the
            # broker and needs its observers' sessions back saves every few seconds.
            f"autosave_interval {self._autosave_s}",
            f"log_dest file {self.log_file}",
            "log_type all",
            "user root",  # do not drop privileges: the files live in the test's tmp dir
            "set_tcp_nodelay true",  # else Nagle + delayed ACK add ~40 ms per round trip
            f"listener {self.port} {HOST}",
        ]
        if self._users:
            pw = self.workdir / "passwd"
            pw.write_text("")
            for user, password in self._users.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD, "-b", str(pw), user, password],
                    check=True,
                    capture_output=True,
                )
            lines.insert(0, f"password_file {pw}")
        if self._acl is not None:
            acl = self.workdir / "acl"
            acl.write_text(self._acl)
            lines.insert(0, f"acl_file {acl}")
        if self.tls_port is not None:
            lines += self._tls_lines()
        self.conf_file.write_text("\n".join(lines) + "\n")

    def _tls_lines(self) -> list[str]:
        import trustme

        self._ca = trustme.CA()
        server = self._ca.issue_cert(HOST, "localhost")
        self.ca_file = self.workdir / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        cert, key = self.workdir / "server.pem", self.workdir / "server.key"
        server.cert_chain_pems[0].write_to_path(str(cert))
        server.private_key_pem.write_to_path(str(key))
        return [
            f"listener {self.tls_port} {HOST}",
            f"cafile {self.ca_file}",
            f"certfile {cert}",
            f"keyfile {key}",
            f"require_certificate {'true' if self._require_cert else 'false'}",
        ]

    def client_cert(self, name: str) -> tuple[Path, Path]:
        """Issue a client certificate (cert file, key file) signed by the test CA."""
        if self._ca is None:
            raise RuntimeError("broker was created without tls=True")
        issued = self._ca.issue_cert(f"{name}.client.test")
        cert, key = self.workdir / f"{name}.pem", self.workdir / f"{name}.key"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return cert, key

    # --- process -------------------------------------------------------------------

    def start(self) -> Mosquitto:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_port(self.port)
            if self.tls_port is not None:
                wait_port(self.tls_port)
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"mosquitto did not start:\n{self.log()}") from None
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (graceful: persistence is saved) and wait until the port is closed."""
        self._signal(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without saving anything."""
        self._signal(signal.SIGKILL, 10.0)

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()

    def _signal(self, sig: signal.Signals, timeout_s: float) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        wait_port(self.port, up=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
