"""All three cloud emulators on one private event loop in a background thread.

Used by the demo, the benchmarks, the end-to-end tests and `agentd emulators` (for
developing offline). The emulators run on their own loop so their work never shows
up as daemon overhead in the latency figures.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agentd.sim.background import BackgroundLoop
from agentd.sim.scenario import Scenario, load_scenario

T = TypeVar("T")
log = logging.getLogger("agentd.sim")
DEFAULT_SCENARIO = Path(__file__).with_name("scenarios") / "front-desk.toml"
EMULATOR_KEY = "emulator-key"  # the key every emulator accepts (not a secret)


@dataclass(frozen=True, slots=True)
class ServiceProfile:
    """Emulated cloud timings (ms); the latency benchmark's fixed profile by default."""

    stt_final_ms: float = 300.0
    llm_ttft_ms: float = 350.0
    llm_chunk_ms: float = 20.0
    tts_ttfb_ms: float = 150.0
    tts_chunk_ms: int = 100
    tts_pace: float = 0.0  # 0 = send audio as fast as synthesised


@dataclass(frozen=True, slots=True)
class StackRecords:
    """What the three emulators recorded, and the TTS pacing they used (for measuring)."""

    stt_sessions: list[Any]  # assemblyai_server.SessionRecord
    llm_requests: list[Any]  # openai_server.RecordedRequest
    tts_requests: list[Any]  # elevenlabs_server.TtsRequestRecord
    tts_ttfb_ms: float
    tts_chunk_ms: int
    tts_chunk_delay_ms: float
    tts_pace: float
    tts_voice: str


class EmulatorStack:
    """Start with `start()`, stop with `stop()`; URLs are valid in between."""

    def __init__(
        self,
        scenario: Scenario,
        profile: ServiceProfile | None = None,
        *,
        ports: tuple[int, int, int] = (0, 0, 0),
        api_key: str = EMULATOR_KEY,
        precise_timers: bool = False,
    ) -> None:
        from agentd.sim.assemblyai_server import AssemblyAiEmulator
        from agentd.sim.elevenlabs_server import ElevenLabsEmulator
        from agentd.sim.openai_server import OpenAiEmulator

        profile = profile or ServiceProfile()
        self.scenario = scenario
        self.profile = profile
        self.stt = AssemblyAiEmulator(
            scenario=scenario,
            api_key=api_key,
            final_delay_ms=int(profile.stt_final_ms),
            port=ports[0],
        )
        self.stt.final_from_speech_end = True
        self.llm = OpenAiEmulator(
            scenario,
            api_key=api_key,
            ttft_ms=profile.llm_ttft_ms,
            chunk_ms=profile.llm_chunk_ms,
            port=ports[1],
        )
        self.tts = ElevenLabsEmulator(
            api_key,
            ttfb_ms=profile.tts_ttfb_ms,
            chunk_ms=profile.tts_chunk_ms,
            pace=profile.tts_pace,
            port=ports[2],
        )
        self._background = BackgroundLoop("emulators", precise_timers=precise_timers)
        self._running = False

    @property
    def stt_url(self) -> str:
        return str(self.stt.url)

    @property
    def llm_url(self) -> str:
        return str(self.llm.base_url)

    @property
    def tts_url(self) -> str:
        return str(self.tts.base_url)

    def start(self) -> EmulatorStack:
        self._background.start()
        self._running = True
        self.call(self._start_all())
        return self

    async def _start_all(self) -> None:
        await self.stt.start()
        await self.llm.start()
        await self.tts.start()

    async def _stop_all(self) -> None:
        for emulator in (self.stt, self.llm, self.tts):
            try:
                await asyncio.wait_for(emulator.stop(), 3.0)
            except Exception as exc:  # shutting down: note it, go on with the others
                log.debug("emulator stop failed: %s", exc)

    def network_down(self) -> None:
        """All three services refuse connections (as when the kiosk's uplink is gone)."""
        self.call(self._stop_all())

    def network_up(self) -> None:
        """The services come back on the same ports."""
        self.call(self._start_all())

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        """Run a coroutine on the emulators' loop (e.g. to change faults) and wait."""
        return self._background.call(coro, timeout_s)

    def records(self) -> StackRecords:
        """A copy of what the emulators recorded so far, taken on their loop."""
        return self.call(self._records())

    async def _records(self) -> StackRecords:
        tts = self.tts
        return StackRecords(
            stt_sessions=list(self.stt.sessions),
            llm_requests=list(self.llm.requests),
            tts_requests=list(tts.requests),
            tts_ttfb_ms=tts.ttfb_ms,
            tts_chunk_ms=tts.chunk_ms,
            tts_chunk_delay_ms=tts.chunk_delay_ms,
            tts_pace=tts.pace,
            tts_voice=tts.espeak_voice,
        )

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self.call(self._stop_all())
        self._background.stop()

    def __enter__(self) -> EmulatorStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(scenario_path: str = "", host: str = "127.0.0.1") -> int:
    """`agentd emulators`: serve on fixed ports until Ctrl-C, for offline development."""
    if host != "127.0.0.1":
        print("agentd emulators: only 127.0.0.1 is supported")
        return 2
    scenario = load_scenario(scenario_path or DEFAULT_SCENARIO)
    stack = EmulatorStack(scenario, ports=(8701, 8702, 8703)).start()
    print(f"AssemblyAI v3:   stt.api_host = {stack.stt_url!r}")
    print(f"OpenAI chat:     llm.base_url = {stack.llm_url!r}")
    print(f"ElevenLabs TTS:  tts.base_url = {stack.tts_url!r}")
    print(f"API key for all three: {EMULATOR_KEY!r}  (Ctrl-C stops)")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    stack.stop()
    return 0
