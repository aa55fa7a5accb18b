"""`agentd run` as a real subprocess against the emulator stack, the way systemd runs it.

    scenario = write_scenario(tmp_path / "s.toml", [{"visitor": "Hi", "reply": "Hello"}])
    with DaemonProcess(tmp_path, scenario, watchdog_usec=1_000_000) as daemon:
        daemon.notify.wait_for("READY")
        daemon.wait_output("agentd", "ready")
        code, took_s = daemon.terminate()

The emulators (AssemblyAI/OpenAI/ElevenLabs) run in the test process on their own loop
(`daemon.stack`, whose `.stt/.llm/.tts` fault knobs stay usable); the daemon gets a
kiosk config built from the harness's (`agentd.sim.harness.kiosk_config_toml`) with
per-test `overrides`, and an environment holding only what the test chose: NOTIFY_SOCKET
bound by a `NotifyListener`, WATCHDOG_USEC, CREDENTIALS_DIRECTORY or key variables,
JOURNAL_STREAM... Inherited secrets and systemd variables are removed first, so a
developer's shell never leaks into what a test asserts. stdout/stderr are captured by
reader threads and can be awaited line by line; `close()` kills whatever is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from agentd.secrets import SECRET_NAMES
from agentd.sim.harness import kiosk_config_toml
from agentd.sim.scenario import load_scenario
from agentd.sim.stack import EMULATOR_KEY, EmulatorStack, ServiceProfile

# Variables systemd (or a developer's shell) may have set that change the daemon's behaviour.
SCRUBBED_ENV = frozenset(
    {name.upper() for name in SECRET_NAMES}
    | {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"}
    | {"CREDENTIALS_DIRECTORY", "LISTEN_FDS", "LISTEN_PID", "INVOCATION_ID"}
)
AGENTD = (sys.executable, "-m", "agentd")  # the venv's interpreter: same as the console script
START_TIMEOUT_S = 20.0  # import + STT connect + espeak renders: ~2 s idle, far more under load
STOP_TIMEOUT_S = 10.0  # for close(): the 2 s contract is asserted by the tests themselves


def write_scenario(
    path: Path,
    turns: Sequence[Mapping[str, Any]],
    *,
    tail_ms: int = 60_000,
    faults: Sequence[Mapping[str, Any]] = (),
    noise_db: float = -60.0,
) -> Path:
    """A scenario file; the long default tail keeps the mic delivering frames afterwards."""
    data: dict[str, Any] = {"name": path.stem, "noise_db": noise_db, "tail_ms": tail_ms}
    data["turn"] = [dict(t) for t in turns]
    if faults:
        data["fault"] = [dict(f) for f in faults]
    path.write_text(dump_toml(data))
    load_scenario(path)  # a broken scenario fails here, not as a daemon exit later
    return path


def dump_toml(data: Mapping[str, Any]) -> str:
    """Minimal TOML writer for config dicts: scalars, inline arrays, tables, arrays of tables."""
    lines: list[str] = []
    _dump_table(data, "", lines)
    return "\n".join(lines) + "\n"


def _dump_table(data: Mapping[str, Any], path: str, lines: list[str]) -> None:
    def is_table_array(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    for key, value in data.items():
        if not isinstance(value, dict) and not is_table_array(value):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        sub = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            lines.append(f"\n[{sub}]")
            _dump_table(value, sub, lines)
        elif is_table_array(value):
            for item in value:
                lines.append(f"\n[[{sub}]]")
                _dump_table(item, sub, lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into `base` (in place): nested tables merge, values replace."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value
    return base


@dataclass(frozen=True, slots=True)
class Notification:
    at: float  # time.monotonic() when received
    fields: dict[str, str]


class NotifyListener:
    """What systemd does for Type=notify: a bound datagram socket, read by a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[Notification] = []
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-listener", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            parsed = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self._cond:
                self.messages.append(Notification(time.monotonic(), parsed))
                self._cond.notify_all()

    def with_key(self, key: str, since: float = 0.0) -> list[Notification]:
        with self._cond:
            return [m for m in self.messages if key in m.fields and m.at >= since]

    def wait_for(
        self,
        key: str,
        *,
        since: float = 0.0,
        count: int = 1,
        timeout_s: float = START_TIMEOUT_S,
        alive: Callable[[], bool] | None = None,
    ) -> list[Notification]:
        """Until `count` messages carrying `key` arrived after `since`; TimeoutError if not."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [m for m in self.messages if key in m.fields and m.at >= since]
                if len(found) >= count:
                    return found
                if alive is not None and not alive():
                    raise RuntimeError(f"daemon exited while waiting for {key}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)}/{count} {key} messages in {timeout_s} s")
                self._cond.wait(min(left, 0.2))

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2.0)
        self.sock.close()
        self.path.unlink(missing_ok=True)


class _OutputReader:
    """Collects one pipe's lines on a thread so the child never blocks on a full pipe."""

    def __init__(self, pipe: IO[bytes], name: str) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self._pipe = pipe
        self._thread = threading.Thread(target=self._read, name=f"daemon-{name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in iter(self._pipe.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace"))
                self.cond.notify_all()
        self._pipe.close()

    @property
    def text(self) -> str:
        with self.cond:
            return "".join(self.lines)

    def join(self) -> None:
        self._thread.join(5.0)


class DaemonProcess:
    """One `agentd run` child process plus its emulators, notify socket and output."""

    def __init__(
        self,
        workdir: Path,
        scenario_path: Path,
        *,
        overrides: Mapping[str, Any] | None = None,
        profile: ServiceProfile | None = None,
        api_key: str = EMULATOR_KEY,
        credentials: Mapping[str, str] | None = None,
        notify: bool = True,
        watchdog_usec: int | None = None,
        env: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        """`credentials` (name -> value) go to a CREDENTIALS_DIRECTORY; without them the
        three API keys are passed as environment variables set to `api_key`. `wrapper` is
        prepended to the command line (e.g. strace); `pid` is still the daemon's own."""
        self.workdir = workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cwd = self.workdir / "cwd"
        self.cwd.mkdir(exist_ok=True)
        self.config_path = self.workdir / "agentd.toml"
        self.scenario_path = scenario_path.resolve()
        self.overrides = dict(overrides or {})
        self.profile = profile
        self.api_key = api_key
        self.credentials = dict(credentials) if credentials is not None else None
        self.want_notify = notify
        self.watchdog_usec = watchdog_usec
        self.extra_env = dict(env or {})
        self.wrapper = list(wrapper)
        self.stack: EmulatorStack | None = None
        self.notify: NotifyListener = None  # type: ignore[assignment]  # set by start()
        self.config: dict[str, Any] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout: _OutputReader = None  # type: ignore[assignment]
        self.stderr: _OutputReader = None  # type: ignore[assignment]
        self.started_at = 0.0  # wall clock (time.time()) just before the spawn
        self._daemon_pid: int | None = None

    # --- set-up -------------------------------------------------------------------------

    def start(self) -> DaemonProcess:
        scenario = load_scenario(self.scenario_path)
        self.stack = EmulatorStack(scenario, self.profile, api_key=self.api_key).start()
        out = self.workdir / "out"  # the harness config's speaker_wav lives here
        out.mkdir(exist_ok=True)
        base = tomllib.loads(kiosk_config_toml(self.stack, str(self.scenario_path), out))
        merge(base, {"logging": {"backend": "stderr", "level": "info"}})
        self.config = merge(base, self.overrides)
        self.write_config()
        if self.want_notify:
            self.notify = NotifyListener(self.workdir / "notify.sock")
        env = self.environment()
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [
                *self.wrapper,
                sys.executable,
                "-m",
                "agentd",
                "run",
                "--config",
                str(self.config_path),
            ],
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stdout = _OutputReader(self.proc.stdout, "stdout")  # type: ignore[arg-type]
        self.stderr = _OutputReader(self.proc.stderr, "stderr")  # type: ignore[arg-type]
        return self

    def write_config(self, config: Mapping[str, Any] | None = None, *, text: str = "") -> None:
        """(Re)write the config file: `config` dict, raw `text`, or the current `self.config`."""
        self.config_path.write_text(text or dump_toml(config or self.config))

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env["PYTHONUNBUFFERED"] = "1"  # stdout lines arrive when printed
        if self.credentials is not None:
            cred_dir = self.workdir / "credentials"
            cred_dir.mkdir(mode=0o700, exist_ok=True)
            for name, value in self.credentials.items():
                path = cred_dir / name
                path.write_text(value)
                path.chmod(0o400)
            env["CREDENTIALS_DIRECTORY"] = str(cred_dir)
        else:
            for name in ("assemblyai_api_key", "openai_api_key", "elevenlabs_api_key"):
                env[name.upper()] = self.api_key
        if self.want_notify:
            env["NOTIFY_SOCKET"] = str(self.notify.path)
        if self.watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        env.update(self.extra_env)
        return env

    # --- observing ----------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The daemon's pid (found among the wrapper's descendants by its command line)."""
        assert self.proc is not None, "start() first"
        if not self.wrapper:
            return self.proc.pid
        if self._daemon_pid is None:
            deadline = time.monotonic() + START_TIMEOUT_S
            while (found := _find_daemon(self.proc.pid, self.config_path)) is None:
                if time.monotonic() > deadline or not self.alive():
                    raise TimeoutError("the wrapped daemon did not start")
                time.sleep(0.02)
            self._daemon_pid = found
        return self._daemon_pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def mark(self, stream: str = "stderr") -> int:
        """Lines printed so far: pass as `since=` to wait only for what comes next."""
        reader = self.stderr if stream == "stderr" else self.stdout
        with reader.cond:
            return len(reader.lines)

    def wait_output(
        self,
        *needles: str,
        stream: str = "stderr",
        since: int = 0,
        timeout_s: float = START_TIMEOUT_S,
    ) -> str:
        """Until a line (from line `since` on) contains all `needles`; returns that line."""
        reader = self.stderr if stream == "stderr" else self.stdout
        deadline = time.monotonic() + timeout_s
        with reader.cond:
            seen = since
            while True:
                for line in reader.lines[seen:]:
                    if all(n in line for n in needles):
                        return line
                seen = len(reader.lines)
                if not self.alive():
                    raise RuntimeError(
                        f"daemon exited ({self.returncode()}) before printing {needles}:\n"
                        + "".join(reader.lines[-30:])
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no line with {needles} in {timeout_s} s")
                reader.cond.wait(min(left, 0.2))

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> Notification:
        """READY=1 on the notify socket (needs notify=True)."""
        return self.notify.wait_for("READY", timeout_s=timeout_s, alive=self.alive)[0]

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    # --- stopping -----------------------------------------------------------------------

    def send_signal(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> tuple[int, float]:
        """SIGTERM the daemon; (exit code, seconds until the process was gone)."""
        assert self.proc is not None, "start() first"
        pid = self.pid
        sent = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        took = time.monotonic() - sent
        self.stdout.join()
        self.stderr.join()
        return code, took

    def close(self) -> None:
        """Kill anything left, stop the emulators, close the socket (idempotent)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
            self.stdout.join()
            self.stderr.join()
        if self.stack is not None:
            self.stack.stop()
            self.stack = None
        if self.notify is not None:
            self.notify.close()

    def __enter__(self) -> DaemonProcess:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _find_daemon(root: int, config_path: Path) -> int | None:
    """The descendant of `root` running `agentd run --config <config_path>`, once it execs."""
    wanted = [*AGENTD[1:], "run", "--config", str(config_path)]
    todo = [root]
    while todo:
        pid = todo.pop(0)
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        if argv[1 : 1 + len(wanted)] == wanted:
            return pid
        todo += [int(c) for c in children]
    return None
