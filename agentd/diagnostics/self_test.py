"""The audio self-test: play a sweep, record the room, report and recommend.

With a visitor's level (spoken when `agentd test-hardware` asks, or given) it also
calibrates the near-field gate (agentd.diagnostics.near_field_check); with a mic array
it records the mics too, for the gate's channel agreement (agreement_check). One implementation
for `agentd test-hardware` (devices opened by the CLI) and MQTT `cmd/self_test` (the
running kiosk's devices, mic taken from the conversation for the test's two seconds).
`run_self_test` records (a `DeviceProbe`, device_probe.py), analyses (probe.py) and
recommends (advice.py); `SelfTestService` is the daemon's side: refusal while a visitor
is talking, one test at a time, the last result kept for `health` and written to the
journal (journal.py). The result is a `SelfTestReport` (report.py). Callers import all of
these from here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from agentd.config import Config
from agentd.diagnostics import probe as p
from agentd.diagnostics.advice import DEAD_MIC_DBFS, recommend
from agentd.diagnostics.device_probe import Attach, DeviceProbe, OnChunk, Prompt
from agentd.diagnostics.journal import log_report
from agentd.diagnostics.near_field_check import check_near_field, near_field_advice
from agentd.diagnostics.report import Recommendation, SelfTestReport
from agentd.errors import CommandError
from agentd.events import AgentState

__all__ = [
    "Attach",
    "DeviceProbe",
    "OnChunk",
    "Prompt",
    "Recommendation",
    "SelfTestReport",
    "SelfTestService",
    "log_report",
    "recommend",
    "run_self_test",
]

TIMEOUT_S = 10.0  # the bound on one self-test, devices included
BUSY_STATES = (AgentState.LISTENING, AgentState.THINKING, AgentState.SPEAKING)


async def run_self_test(
    probe: DeviceProbe,
    config: Config,
    *,
    voice_ms: float = 0.0,
    prompt: Prompt | None = None,
    visitor_level_dbfs: float | None = None,
) -> SelfTestReport:
    """Record and analyse within TIMEOUT_S (plus `voice_ms` when the operator is asked
    to speak); a device failure is a report, not a raise. Near-field advice never makes
    the test fail: it is tuning, not a broken device."""
    started, wall = time.monotonic(), time.time()
    limit_s = TIMEOUT_S + voice_ms / 1000.0
    try:
        async with asyncio.timeout(limit_s):
            recording = await probe.record(voice_ms, prompt)
        measurement = await asyncio.to_thread(
            p.analyse, recording, config.audio.vad, config.audio.capture.period_ms
        )
        near = await asyncio.to_thread(check_near_field, recording, config, visitor_level_dbfs)
    except TimeoutError:
        return _failed(wall, started, f"no result within {limit_s:.0f} s (is the mic running?)")
    except Exception as exc:  # device errors come as plain exceptions from ALSA
        return _failed(wall, started, f"{type(exc).__name__}: {exc}")
    advice = tuple(recommend(measurement, config))
    ok = not any(r.key.startswith("audio.capture") for r in advice)
    if measurement.mic_peak_dbfs > DEAD_MIC_DBFS:  # a dead mic has no room to calibrate on
        advice += tuple(Recommendation(k, a) for k, a in near_field_advice(near, config))
    duration = (time.monotonic() - started) * 1000.0
    return SelfTestReport(ok, wall, duration, measurement, advice, near_field=near)


def _failed(wall: float, started: float, error: str) -> SelfTestReport:
    return SelfTestReport(False, wall, (time.monotonic() - started) * 1000.0, None, (), error)


class SelfTestService:
    """The daemon's self-test: refused while a visitor talks, one at a time, remembered."""

    def __init__(
        self,
        *,
        state: Callable[[], AgentState | None],
        probe: Callable[[], DeviceProbe],
        config: Callable[[], Config],
    ) -> None:
        self._state = state
        self._probe = probe
        self._config = config
        self.running = False
        self.last: SelfTestReport | None = None

    async def run(self, visitor_level_dbfs: float | None = None) -> SelfTestReport:
        """Raises CommandError (naming why) when it must not run now. A visitor's level
        (dBFS) calibrates the near-field gate (nobody is asked to speak remotely)."""
        state = self._state()
        if state in BUSY_STATES and state is not None:
            raise CommandError(
                "busy", f"a visitor is talking (state {state.value}); try again when idle"
            )
        if self.running:
            raise CommandError("busy", "a self-test is already running")
        self.running = True
        try:
            report = await run_self_test(
                self._probe(), self._config(), visitor_level_dbfs=visitor_level_dbfs
            )
        finally:
            self.running = False
        self.last = report
        log_report(report)
        return report

    def health(self) -> dict[str, object] | None:
        return self.last.summary() if self.last is not None else None
