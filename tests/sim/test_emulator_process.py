"""EmulatorProcess: the emulator stack in a spawned child, its records fetched back."""

from __future__ import annotations

import time

import openai
import pytest

from agentd.sim.process import EmulatorProcess
from agentd.sim.stack import DEFAULT_SCENARIO, EMULATOR_KEY, ServiceProfile

pytestmark = pytest.mark.timeout(90)


def test_child_serves_records_and_stops() -> None:
    profile = ServiceProfile(llm_ttft_ms=30.0, llm_chunk_ms=1.0, tts_ttfb_ms=20.0)
    emulators = EmulatorProcess(DEFAULT_SCENARIO, profile).start()
    try:
        process = emulators._process
        assert process is not None and process.pid is not None
        started = time.monotonic()
        client = openai.OpenAI(base_url=emulators.llm_url, api_key=EMULATOR_KEY, max_retries=0)
        with client:
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Hello"}], stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text  # the front-desk scenario's first reply
        emulators.render(["Good morning."], 16000)
        records = emulators.records()
        assert len(records.llm_requests) == 1
        request = records.llm_requests[0]
        # The child's monotonic clock is the parent's: its timestamps compare directly.
        assert started <= request.received_at <= time.monotonic()
        assert request.sent_at[1] - request.received_at >= 0.030 - 1e-6
        assert records.tts_ttfb_ms == 20.0 and records.stt_sessions == []
        assert emulators.stt_url.startswith("ws://127.0.0.1:")
    finally:
        emulators.stop()
    assert not process.is_alive()
    emulators.stop()  # idempotent
    with pytest.raises(RuntimeError):
        emulators.records()
