"""SimulatedKiosk: the real daemon, simulated mic/speaker, and the three emulators.

One process, the daemon on the caller's asyncio loop exactly as `agentd run` builds it
(Daemon -> Kiosk -> Conversation, real SDKs over real sockets), the emulators on
their own loop in a thread (or, for the latency benchmark, in a child process). Used by
`agentd demo`, the benchmarks, the soak and the end-to-end tests, so they all exercise
the same code path as production.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentd.config.example import TOOLS_EXAMPLE
from agentd.conversation.turns import Conversation
from agentd.events import TurnMetrics
from agentd.service.composition import BUILTIN_BACKENDS
from agentd.service.kiosk import Kiosk
from agentd.sim.devices import with_sim
from agentd.sim.mic import SimMic
from agentd.sim.process import EmulatorProcess
from agentd.sim.scenario import Scenario, load_scenario
from agentd.sim.speaker import SimSpeaker
from agentd.sim.stack import EMULATOR_KEY, EmulatorStack, ServiceProfile

SECRET_ENV = ("ASSEMBLYAI_API_KEY", "OPENAI_API_KEY", "ELEVENLABS_API_KEY")


def kiosk_config_toml(
    stack: EmulatorStack | EmulatorProcess,
    scenario_path: str,
    out_dir: Path,
    *,
    realtime: bool = True,
) -> str:
    """The config the simulated kiosk runs with (the harness layers extra TOML on top)."""
    return f"""
[logging]
backend = "stderr"
level = "warning"

[systemd]
state_dir = {json.dumps(str(out_dir / "state"))}

[audio.capture]
backend = "sim"
period_ms = 20

[audio.playback]
backend = "sim"

[audio.sim]
scenario = {json.dumps(scenario_path)}
speaker_wav = {json.dumps(str(out_dir / "conversation.wav"))}
realtime = {"true" if realtime else "false"}

[audio.vad]
stop_unvoiced_frames = 12
hangover_ms = 0

[stt]
api_host = {json.dumps(stack.stt_url)}

[llm]
base_url = {json.dumps(stack.llm_url)}
model = "emulated-gpt"

{TOOLS_EXAMPLE}
[tts]
base_url = {json.dumps(stack.tts_url)}
"""


@dataclass
class Observed:
    """What the runtime reported: dialogue, metrics, faults, events, states.

    `records` holds every per-turn record in order; `turns` the answered ones, without
    the `superseded` records of replies dropped unheard because the visitor went on (a
    visitor turn is answered once, whatever it cost on the way).
    """

    lines: list[tuple[str, str]] = field(default_factory=list)
    records: list[TurnMetrics] = field(default_factory=list)
    turns: list[TurnMetrics] = field(default_factory=list)
    faults: list[Any] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "transcript":
            self.lines.append(payload)
        elif kind == "turn":
            self.records.append(payload)
            if payload.outcome != "superseded":
                self.turns.append(payload)
        elif kind == "fault":
            self.faults.append(payload)
        elif kind == "state":
            self.states.append(str(payload.value))
        elif kind.startswith("event/"):
            self.events.append((kind[len("event/") :], payload))


class SimulatedKiosk:
    """Build with a scenario, `async with kiosk.running(): ...` or `await kiosk.run_scenario()`."""

    def __init__(
        self,
        scenario: Scenario | str | Path,
        out_dir: str | Path,
        *,
        profile: ServiceProfile | None = None,
        extra_toml: str = "",
        realtime: bool = True,
        api_key: str = EMULATOR_KEY,
        emulator_process: bool = False,
    ) -> None:
        if isinstance(scenario, Scenario):
            raise TypeError("pass the scenario file path: the daemon loads it from its config")
        self.scenario_path = str(Path(scenario).resolve())
        self.scenario = load_scenario(self.scenario_path)
        self.out = Path(out_dir).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.profile = profile or ServiceProfile()
        self.extra_toml = extra_toml
        self.realtime = realtime
        self.api_key = api_key
        # In a child process (the latency bench) the emulators cannot skew the daemon's
        # figures, but only their records() are reachable; in a thread (tests, demo,
        # soak) their fault switches are too.
        self.emulator_process = emulator_process
        self.stack: Any = None  # EmulatorStack, or EmulatorProcess
        self.daemon: Any = None
        self.observed = Observed()
        self._task: asyncio.Task[int] | None = None

    def start_emulators(self) -> Any:
        if self.emulator_process:
            self.stack = EmulatorProcess(
                self.scenario_path, self.profile, api_key=self.api_key
            ).start()
        else:
            self.stack = EmulatorStack(self.scenario, self.profile, api_key=self.api_key).start()
        return self.stack

    def write_config(self) -> Path:
        stack = self.stack or self.start_emulators()
        base = self.out / "kiosk-base.toml"
        base.write_text(
            kiosk_config_toml(stack, self.scenario_path, self.out, realtime=self.realtime)
        )
        # The caller's TOML is layered over the base with `include`, so it may set any key,
        # including tables the base already declares.
        path = self.out / "kiosk.toml"
        path.write_text(f'include = ["{base.name}"]\n{self.extra_toml}\n')
        return path

    async def start(self, *, set_env_keys: bool = True) -> Kiosk:
        """Start emulators (if needed) and the daemon; returns the Kiosk once it runs."""
        from agentd.config import load_config
        from agentd.secrets import Secrets
        from agentd.service.lifecycle import Daemon

        config_path = self.write_config()
        if set_env_keys:
            for name in SECRET_ENV:
                os.environ[name] = self.api_key
        config = load_config(config_path)
        self.daemon = Daemon(str(config_path), config, Secrets.load(), with_sim(BUILTIN_BACKENDS))
        self._task = asyncio.create_task(self.daemon.run(), name="daemon")
        while self.daemon.kiosk.conversation is None:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the daemon stopped during start-up")
            await asyncio.sleep(0.02)
        kiosk: Kiosk = self.daemon.kiosk
        kiosk.reporting.observers.append(self.observed)
        return kiosk

    @property
    def service(self) -> Kiosk:
        """The running kiosk (devices, conversation, reporting), once start() returned."""
        if self.daemon is None:
            raise RuntimeError("start() first")
        kiosk: Kiosk = self.daemon.kiosk
        return kiosk

    @property
    def conversation(self) -> Conversation:
        conversation = self.service.conversation
        if conversation is None:
            raise RuntimeError("start() first")
        return conversation

    @property
    def mic(self) -> SimMic:
        """The simulated mic (the kiosk runs the sim backend)."""
        audio = self.service.audio
        if audio is None or not isinstance(audio.capture, SimMic):
            raise RuntimeError("the kiosk does not run the simulated mic")
        return audio.capture

    @property
    def speaker(self) -> SimSpeaker:
        """The simulated speaker (the kiosk runs the sim backend)."""
        audio = self.service.audio
        if audio is None or not isinstance(audio.playback, SimSpeaker):
            raise RuntimeError("the kiosk does not run the simulated speaker")
        return audio.playback

    async def wait_scenario_done(self, timeout_s: float | None = None) -> None:
        """Until the simulated mic has played the whole scenario (or the daemon ended)."""
        if self._task is None:
            raise RuntimeError("start() first")
        mic = self.mic
        finished = asyncio.ensure_future(asyncio.to_thread(mic.finished.wait, timeout_s))
        await asyncio.wait({self._task, finished}, return_when=asyncio.FIRST_COMPLETED)
        if not finished.done():
            mic.finished.set()  # release the waiting thread
            await finished

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
        """Poll `predicate` each 20 ms (state lives on this loop, so this is cheap)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            if loop.time() > deadline:
                raise TimeoutError(f"condition not met within {timeout_s} s")
            if self._task is not None and self._task.done():
                raise RuntimeError("the daemon stopped")
            await asyncio.sleep(0.02)

    async def stop(self) -> int:
        code = 0
        try:
            if self._task is not None:
                task, self._task = self._task, None
                self.daemon.request_stop()
                code = int(await task)  # re-raises the daemon's start-up error
        finally:
            if self.stack is not None:
                await asyncio.to_thread(self.stack.stop)
                self.stack = None
        return code

    async def run_scenario(self, timeout_s: float | None = None) -> int:
        await self.start()
        try:
            await self.wait_scenario_done(timeout_s)
            await asyncio.sleep(0.3)
        finally:
            code = await self.stop()
        return code
