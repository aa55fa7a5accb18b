"""Fixtures for the TTS tests: a real ElevenLabs emulator and real SDK clients against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agentd.config.sections_tts import TtsConfig
from agentd.sim.elevenlabs_server import ElevenLabsEmulator
from agentd.tts.elevenlabs import ElevenLabsTts

API_KEY = "test-key-0123456789"


@pytest.fixture
async def emulator() -> AsyncIterator[ElevenLabsEmulator]:
    emu = ElevenLabsEmulator(api_key=API_KEY)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


MakeTts = Callable[..., ElevenLabsTts]


@pytest.fixture
async def make_tts(emulator: ElevenLabsEmulator) -> AsyncIterator[MakeTts]:
    made: list[ElevenLabsTts] = []

    def make(rate_hz: int = 16000, api_key: str = API_KEY, **overrides: Any) -> ElevenLabsTts:
        settings: dict[str, Any] = {
            "base_url": emulator.base_url,
            "first_byte_timeout_s": 5.0,
            "chunk_gap_timeout_s": 5.0,
        }
        settings.update(overrides)
        tts = ElevenLabsTts(TtsConfig(**settings), api_key, rate_hz)
        made.append(tts)
        return tts

    yield make
    for tts in made:
        await tts.aclose()
