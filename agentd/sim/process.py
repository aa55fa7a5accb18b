"""The emulator stack in a child process, for measurements the emulators must not skew.

In a thread, the emulators share the daemon's interpreter and GIL: each of their wake-ups
waits for the daemon's Python to yield and vice versa, which a real cloud never does.
The latency benchmark therefore runs them here, in a spawned process, and fetches what
they recorded (the same record dataclasses, pickled) once the turns are done. The
monotonic clock is system-wide, so their timestamps compare directly with the daemon's.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentd.sim.stack import EMULATOR_KEY, EmulatorStack, ServiceProfile, StackRecords

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

START_TIMEOUT_S = 60.0  # a spawned interpreter importing aiohttp/websockets on a Pi
CALL_TIMEOUT_S = 120.0  # rendering every reply with espeak-ng before a benchmark


@dataclass(frozen=True, slots=True)
class _Urls:
    stt: str
    llm: str
    tts: str


class EmulatorProcess:
    """EmulatorStack's URLs and records, served from a child process."""

    def __init__(
        self,
        scenario_path: str | Path,
        profile: ServiceProfile | None = None,
        *,
        api_key: str = EMULATOR_KEY,
    ) -> None:
        self._args = (str(scenario_path), profile or ServiceProfile(), api_key)
        self._conn: Connection | None = None
        self._process: Any = None
        self._urls: _Urls | None = None

    def start(self) -> EmulatorProcess:
        context = multiprocessing.get_context("spawn")  # no inherited threads or loops
        ours, theirs = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(theirs, *self._args), name="agentd-emulators", daemon=True
        )
        self._process.start()
        theirs.close()
        self._conn = ours
        if not ours.poll(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"emulator process did not start within {START_TIMEOUT_S:g} s")
        self._urls = ours.recv()
        return self

    @property
    def stt_url(self) -> str:
        return self._require_urls().stt

    @property
    def llm_url(self) -> str:
        return self._require_urls().llm

    @property
    def tts_url(self) -> str:
        return self._require_urls().tts

    def _require_urls(self) -> _Urls:
        if self._urls is None:
            raise RuntimeError("EmulatorProcess.start() first")
        return self._urls

    def render(self, texts: list[str], rate_hz: int) -> None:
        """Pre-render TTS texts in the emulators' speech cache (no synthesis in a turn)."""
        self._call("render", (texts, rate_hz))

    def records(self) -> StackRecords:
        """What the emulators recorded so far."""
        result: StackRecords = self._call("records", None)
        return result

    def _call(self, command: str, argument: Any) -> Any:
        conn = self._conn
        if conn is None:
            raise RuntimeError("EmulatorProcess is not running")
        conn.send((command, argument))
        if not conn.poll(CALL_TIMEOUT_S):
            raise TimeoutError(f"emulator process: no answer to {command!r}")
        ok, value = conn.recv()
        if not ok:
            raise RuntimeError(f"emulator process: {command!r} failed: {value}")
        return value

    def stop(self) -> None:
        """Stop the emulators and the process; idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.send(("stop", None))
                conn.poll(10.0)
            except (OSError, EOFError):
                pass  # the child is already gone
            conn.close()
        if self._process is not None:
            self._process.join(10.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5.0)
            self._process = None


def _serve(conn: Connection, scenario_path: str, profile: ServiceProfile, api_key: str) -> None:
    """The child: run the stack, answer commands until "stop" or the parent goes away."""
    from agentd.sim.scenario import load_scenario
    from agentd.sim.speech import render_speech

    scenario = load_scenario(scenario_path)
    stack = EmulatorStack(scenario, profile, api_key=api_key, precise_timers=True).start()
    try:
        conn.send(_Urls(stack.stt_url, stack.llm_url, stack.tts_url))
        while True:
            try:
                command, argument = conn.recv()
            except EOFError:
                return
            if command == "stop":
                return
            try:
                if command == "render":
                    texts, rate_hz = argument
                    for text in texts:  # same positional key as the emulator's own call
                        render_speech(text, rate_hz, stack.tts.espeak_voice)
                    conn.send((True, None))
                elif command == "records":
                    conn.send((True, stack.records()))
                else:
                    conn.send((False, f"unknown command {command!r}"))
            except Exception as exc:  # reported to the parent, which raises it
                conn.send((False, f"{type(exc).__name__}: {exc}"))
    finally:
        stack.stop()
        conn.close()
