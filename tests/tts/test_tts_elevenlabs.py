"""ElevenLabsTts: the official SDK against the local emulator, real espeak-ng speech."""

from __future__ import annotations

import array
import asyncio
import contextlib
import math
import time
from collections.abc import Callable

import pytest

from agentd.config.sections_tts import TtsConfig
from agentd.errors import ConfigError, SecretError, TtsError, TtsTimeout
from agentd.sim.elevenlabs_server import ElevenLabsEmulator
from agentd.tts.elevenlabs import ElevenLabsTts

pytestmark = pytest.mark.timeout(30)

API_KEY = "test-key-0123456789"  # the emulator fixture's key (conftest.py)
MakeTts = Callable[..., ElevenLabsTts]

SENTENCE = "Welcome to the front desk. The meeting room is on the second floor, next to the lift."
ESPEAK_WPM = 165  # agentd.sim.speech default, used by the emulator


def rms(pcm: bytes) -> float:
    samples = array.array("h", pcm)
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


async def collect(tts: ElevenLabsTts, text: str, **kwargs: str) -> list[bytes]:
    chunks: list[bytes] = []
    async with contextlib.aclosing(tts.stream(text, **kwargs)) as stream:
        async for chunk in stream:
            chunks.append(chunk)
    return chunks


@pytest.mark.parametrize("rate_hz", [8000, 16000, 22050, 24000, 32000, 44100, 48000])
async def test_stream_is_speech_at_the_requested_rate(
    emulator: ElevenLabsEmulator, make_tts: MakeTts, rate_hz: int
) -> None:
    emulator.plan = "pro"  # pcm_44100 needs it
    chunks = await collect(make_tts(rate_hz), SENTENCE)
    pcm = b"".join(chunks)

    assert len(chunks) > 3, "audio must arrive in several chunks, not one blob"
    assert all(len(c) % 2 == 0 and c for c in chunks)
    assert emulator.requests[-1].output_format == f"pcm_{rate_hz}"
    # Words at the espeak rate give the expected length; a wrong sample rate would be off
    # by 1.4x or more and fail the +-30% band.
    expected_s = len(SENTENCE.split()) / ESPEAK_WPM * 60
    actual_s = len(pcm) / 2 / rate_hz
    assert expected_s * 0.7 <= actual_s <= expected_s * 1.3, (actual_s, expected_s)
    assert rms(pcm) > 500, "speech, not silence"
    assert len(pcm) == emulator.requests[-1].bytes_sent


async def test_request_carries_voice_model_settings_and_context(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    tts = make_tts(voice_id="voice-42", model_id="eleven_turbo_v2_5", stability=0.3, speed=1.1)
    await collect(tts, "Second part.", previous_text="First part.", next_text="Third part.")

    rec = emulator.requests[-1]
    assert (rec.voice_id, rec.model_id, rec.text) == (
        "voice-42",
        "eleven_turbo_v2_5",
        "Second part.",
    )
    assert rec.previous_text == "First part." and rec.next_text == "Third part."
    assert rec.voice_settings == {"stability": 0.3, "similarity_boost": 0.75, "speed": 1.1}
    assert rec.optimize_streaming_latency == "3"


async def test_blank_text_sends_nothing(emulator: ElevenLabsEmulator, make_tts: MakeTts) -> None:
    assert await collect(make_tts(), "   ") == []
    assert emulator.requests == []


async def test_injected_ttfb_delays_first_chunk(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    emulator.ttfb_ms = 400
    tts = make_tts()
    started = time.monotonic()
    async with contextlib.aclosing(tts.stream("Hello there.")) as stream:
        await anext(stream)
        first_s = time.monotonic() - started
    assert first_s >= 0.38
    assert tts.last_first_byte_ms is not None and tts.last_first_byte_ms >= 380


async def test_paced_chunks_arrive_over_time(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    emulator.chunk_delay_ms = 60
    arrivals: list[float] = []
    async with contextlib.aclosing(make_tts().stream("One two three four.")) as stream:
        async for _ in stream:
            arrivals.append(time.monotonic())
    sent = emulator.requests[-1].chunks_sent
    assert arrivals[-1] - arrivals[0] >= (sent - 1) * 0.06 * 0.9


async def test_first_byte_timeout(emulator: ElevenLabsEmulator, make_tts: MakeTts) -> None:
    emulator.ttfb_ms = 3000
    started = time.monotonic()
    with pytest.raises(TtsTimeout, match=r"first_byte_timeout_s=0\.3") as info:
        await collect(make_tts(first_byte_timeout_s=0.3), "Hello.")
    assert time.monotonic() - started < 2.0
    assert info.value.retryable
    await emulator.wait_until(lambda e: e.requests[-1].disconnected)


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (422, False)]
)
async def test_http_errors_map_to_tts_error(
    emulator: ElevenLabsEmulator, make_tts: MakeTts, status: int, retryable: bool
) -> None:
    emulator.faults.status = status
    with pytest.raises(TtsError) as info:
        await collect(make_tts(), "Hello.")
    assert not isinstance(info.value, TtsTimeout)
    assert info.value.retryable is retryable
    assert f"HTTP {status}" in str(info.value) and "injected_fault" in str(info.value)


async def test_bad_api_key_is_not_retryable_and_not_logged(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    wrong = "wrong-key-abcdef"
    with pytest.raises(TtsError) as info:
        await collect(make_tts(api_key=wrong), "Hello.")
    assert info.value.retryable is False
    assert "HTTP 401" in str(info.value) and "invalid_api_key" in str(info.value)
    assert wrong not in str(info.value) and API_KEY not in str(info.value)


async def test_stall_mid_stream_times_out(emulator: ElevenLabsEmulator, make_tts: MakeTts) -> None:
    emulator.faults.stall_after_chunks = 2
    chunks: list[bytes] = []
    with pytest.raises(TtsTimeout, match=r"chunk_gap_timeout_s=0\.3"):
        async with contextlib.aclosing(
            make_tts(chunk_gap_timeout_s=0.3).stream(SENTENCE)
        ) as stream:
            async for chunk in stream:
                chunks.append(chunk)
    assert chunks, "the audio before the stall was delivered"
    await emulator.wait_until(lambda e: e.requests[-1].disconnected)


async def test_truncated_stream_raises_after_partial_audio(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    emulator.faults.truncate_after_chunks = 3
    chunks: list[bytes] = []
    with pytest.raises(TtsError, match="failed after") as info:
        async with contextlib.aclosing(make_tts().stream(SENTENCE)) as stream:
            async for chunk in stream:
                chunks.append(chunk)
    assert info.value.retryable
    received = len(b"".join(chunks))
    assert 0 < received <= emulator.requests[-1].bytes_sent


async def test_odd_sized_chunks_are_realigned(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    emulator.faults.malformed = "odd_bytes"
    chunks = await collect(make_tts(), SENTENCE)
    sent = emulator.requests[-1].bytes_sent
    assert sent % 2 == 1, "the fault really sent an odd total"
    assert all(len(c) % 2 == 0 for c in chunks)
    assert len(b"".join(chunks)) == sent - 1


async def test_non_audio_200_is_an_error(emulator: ElevenLabsEmulator, make_tts: MakeTts) -> None:
    emulator.faults.malformed = "not_audio"
    with pytest.raises(TtsError, match="text/html"):
        await collect(make_tts(), "Hello.")


async def test_cancelling_the_consumer_closes_the_http_stream(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    emulator.pace = 1.0  # real time: the body would take seconds
    first = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(make_tts().stream(SENTENCE)) as stream:
            async for _ in stream:
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await emulator.wait_until(lambda e: e.requests[-1].disconnected, timeout_s=2.0)
    assert not emulator.requests[-1].completed


async def test_unreachable_server_is_retryable(emulator: ElevenLabsEmulator) -> None:
    url = emulator.base_url
    await emulator.stop()
    tts = ElevenLabsTts(TtsConfig(base_url=url), API_KEY, 16000)
    try:
        with pytest.raises(TtsError) as info:
            await collect(tts, "Hello.")
        assert info.value.retryable
    finally:
        await tts.aclose()


async def test_warm_up_leaves_a_connection_the_first_clause_then_uses(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    tts = make_tts()
    assert tts.warmer is not None
    tts.warm_up()
    await tts.warmer.settled()
    assert len(emulator.model_listings) == 1 and tts.warmer.failures == 0
    assert b"".join(await collect(tts, "Hello there."))
    assert emulator.requests[0].peer == emulator.model_listings[0]


async def test_warm_up_failure_is_silent_and_can_be_switched_off(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    refused = make_tts(api_key="wrong-key")
    assert refused.warmer is not None
    refused.warm_up()
    await refused.warmer.settled()
    assert refused.warmer.failures == 1 and not emulator.model_listings
    off = make_tts(warm_connection=False)
    off.warm_up()
    assert off.warmer is None and not emulator.model_listings


def test_unsupported_rate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"audio\.playback\.rate_hz.*11025"):
        ElevenLabsTts(TtsConfig(), API_KEY, 11025)


def test_empty_api_key_is_a_secret_error() -> None:
    with pytest.raises(SecretError):
        ElevenLabsTts(TtsConfig(), "", 16000)
