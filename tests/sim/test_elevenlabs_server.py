"""The ElevenLabs emulator on the wire: auth, formats, chunking, faults, records, shutdown."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest

from agentd.sim.background import running_in_thread
from agentd.sim.elevenlabs_server import ElevenLabsEmulator

pytestmark = pytest.mark.timeout(30)

KEY = "sim-key"
BODY = {"text": "Hello there, visitor.", "model_id": "eleven_flash_v2_5"}


@pytest.fixture
async def emu() -> AsyncIterator[ElevenLabsEmulator]:
    emulator = ElevenLabsEmulator(api_key=KEY, chunk_ms=50)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


async def post(
    emu: ElevenLabsEmulator, fmt: str = "pcm_16000", key: str | None = KEY, body: object = BODY
) -> tuple[int, dict[str, str], list[bytes]]:
    headers = {"xi-api-key": key} if key is not None else {}
    url = f"{emu.base_url}/v1/text-to-speech/v1/stream?output_format={fmt}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as resp,
    ):
        chunks = [chunk async for chunk in resp.content.iter_any()]
        return resp.status, dict(resp.headers), chunks


async def test_streams_chunked_pcm_and_records_the_request(emu: ElevenLabsEmulator) -> None:
    status, headers, chunks = await post(emu)
    assert status == 200
    assert headers["Content-Type"] == "audio/pcm"
    assert headers["Transfer-Encoding"] == "chunked"
    pcm = b"".join(chunks)
    assert len(pcm) % 2 == 0 and len(pcm) > 16000  # > 0.5 s of speech
    rec = emu.requests[-1]
    assert (rec.voice_id, rec.text, rec.model_id, rec.output_format) == (
        "v1",
        BODY["text"],
        "eleven_flash_v2_5",
        "pcm_16000",
    )
    assert rec.completed and not rec.disconnected and rec.bytes_sent == len(pcm)
    assert rec.chunks_sent == -(-len(pcm) // 1600)  # 50 ms of 16 kHz S16 per chunk


@pytest.mark.parametrize("key", [None, "wrong"])
async def test_missing_or_wrong_key_is_401_json(emu: ElevenLabsEmulator, key: str | None) -> None:
    status, _, chunks = await post(emu, key=key)
    assert status == 401
    assert b'"detail": {"status": "invalid_api_key"' in b"".join(chunks)


async def test_mp3_and_unknown_formats_are_422_with_a_reason(emu: ElevenLabsEmulator) -> None:
    for fmt in ("mp3_44100_128", "pcm_12000", "wav"):
        status, _, chunks = await post(emu, fmt=fmt)
        assert status == 422
        assert fmt.encode() in b"".join(chunks)


async def test_bad_body_is_rejected(emu: ElevenLabsEmulator) -> None:
    status, _, _ = await post(emu, body=["not", "an", "object"])
    assert status == 422


async def test_faults_count_down_and_clear(emu: ElevenLabsEmulator) -> None:
    emu.faults.status = 429
    emu.faults.retry_after_s = 2
    emu.faults.remaining = 2
    first, headers, _ = await post(emu)
    second, _, _ = await post(emu)
    third, _, _ = await post(emu)
    assert (first, second, third) == (429, 429, 200)
    assert headers["Retry-After"] == "2"


async def test_ttfb_and_pacing(emu: ElevenLabsEmulator) -> None:
    emu.ttfb_ms = 200
    emu.pace = 0.5  # 50 ms chunks every 25 ms
    started = time.monotonic()
    _, _, chunks = await post(emu)
    elapsed = time.monotonic() - started
    audio_s = len(b"".join(chunks)) / 32000
    assert elapsed >= 0.2 + audio_s * 0.5 * 0.8


async def test_ttfb_is_timed_from_arrival_and_never_short(emu: ElevenLabsEmulator) -> None:
    """The first chunk leaves no sooner than arrival + TTFB (synthesis runs meanwhile)."""
    emu.ttfb_ms = 80
    await post(emu)
    record = emu.requests[-1]
    assert record.first_chunk_s is not None
    assert record.first_chunk_s - record.arrived_s >= 0.08 - 1e-6


async def test_models_listing_needs_the_key(emu: ElevenLabsEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{emu.base_url}/v1/models"
        async with session.get(url, headers={"xi-api-key": KEY}) as resp:
            models = await resp.json()
        async with session.get(url) as refused:
            assert refused.status == 401
    assert "eleven_flash_v2_5" in [m["model_id"] for m in models]
    assert len(emu.model_listings) == 1


async def test_stop_is_quick_even_with_a_stalled_stream(emu: ElevenLabsEmulator) -> None:
    emu.faults.stall_after_chunks = 1
    client = asyncio.create_task(post(emu))
    await emu.wait_until(lambda e: bool(e.requests) and e.requests[-1].chunks_sent == 1)
    started = time.monotonic()
    await emu.stop()
    assert time.monotonic() - started < 3.0
    with pytest.raises(aiohttp.ClientError):
        await client


def test_thread_runner_serves_the_sync_sdk() -> None:
    from elevenlabs.client import ElevenLabs

    before = threading.active_count()
    with running_in_thread(ElevenLabsEmulator(api_key=KEY, ttfb_ms=20)) as emu:
        client = ElevenLabs(api_key=KEY, base_url=emu.base_url)
        pcm = b"".join(
            client.text_to_speech.stream("v9", text="Good morning.", output_format="pcm_24000")
        )
        emu.wait_until_sync(lambda e: bool(e.requests) and e.requests[-1].completed)
        assert emu.requests[-1].voice_id == "v9"
        assert len(pcm) == emu.requests[-1].bytes_sent > 24000
        client._client_wrapper.httpx_client.httpx_client.close()
    assert threading.active_count() == before, "emulator thread joined"


# --- provider behaviour through the official async SDK ------------------------------


@pytest.fixture
async def sdk(emu: ElevenLabsEmulator) -> AsyncIterator[Any]:
    from elevenlabs.client import AsyncElevenLabs

    async with httpx.AsyncClient() as http:
        yield AsyncElevenLabs(api_key=KEY, base_url=emu.base_url, httpx_client=http)


async def sdk_stream(sdk: Any, fmt: str = "pcm_16000", **body: Any) -> tuple[dict[str, str], bytes]:
    """(response headers, audio) of one streamed clause."""
    call = sdk.text_to_speech.with_raw_response.stream(
        "v1", text=body.pop("text", "Good morning."), output_format=fmt, **body
    )
    async with call as response:
        audio = b"".join([chunk async for chunk in response.data])
        return dict(response.headers), audio


@pytest.mark.parametrize("rate_hz", [8000, 16000, 22050, 24000, 32000, 44100, 48000])
async def test_every_pcm_rate_streams_the_same_speech(
    emu: ElevenLabsEmulator, sdk: Any, rate_hz: int
) -> None:
    emu.plan = "pro"
    _, audio = await sdk_stream(sdk, f"pcm_{rate_hz}")
    _, reference = await sdk_stream(sdk, "pcm_16000")
    seconds, reference_s = len(audio) / 2 / rate_hz, len(reference) / 2 / 16000
    assert abs(seconds - reference_s) < 0.02 and seconds > 0.4


async def test_pcm_44100_needs_a_pro_plan(emu: ElevenLabsEmulator, sdk: Any) -> None:
    from elevenlabs.core.api_error import ApiError

    with pytest.raises(ApiError) as caught:
        await sdk_stream(sdk, "pcm_44100")
    assert caught.value.status_code == 403
    assert caught.value.body["detail"]["status"] == "subscription_required"
    assert "Pro tier" in caught.value.body["detail"]["message"]
    emu.plan = "pro"
    _, audio = await sdk_stream(sdk, "pcm_44100")
    assert len(audio) > 44100


@pytest.mark.parametrize(
    ("error", "status"),
    [("system_busy", 429), ("too_many_concurrent_requests", 429), ("quota_exceeded", 401)],
)
async def test_named_errors_have_the_documented_shape(
    emu: ElevenLabsEmulator, sdk: Any, error: str, status: int
) -> None:
    from elevenlabs.core.api_error import ApiError

    emu.faults.error, emu.faults.remaining = error, 1  # type: ignore[assignment]
    with pytest.raises(ApiError) as caught:
        await sdk_stream(sdk)
    assert caught.value.status_code == status
    detail = caught.value.body["detail"]
    assert detail["status"] == error and detail["message"]
    assert caught.value.headers["request-id"] == emu.requests[-1].request_id
    _, audio = await sdk_stream(sdk)  # the fault was for one request only
    assert audio


async def test_validation_errors_are_list_shaped_422(emu: ElevenLabsEmulator, sdk: Any) -> None:
    from elevenlabs.errors import UnprocessableEntityError

    with pytest.raises(UnprocessableEntityError) as caught:
        await sdk_stream(sdk, previous_request_ids=["a", "b", "c", "d"])
    (issue,) = caught.value.body["detail"]
    assert issue["loc"] == ["body", "previous_request_ids"] and issue["type"] == "too_long"
    status, _, chunks = await post(emu, body={"model_id": "eleven_flash_v2_5"})
    detail = json.loads(b"".join(chunks))["detail"]
    assert status == 422 and detail[0]["loc"] == ["body", "text"]
    assert detail[0]["type"] == "missing"


async def test_request_ids_and_stitching_fields_on_the_wire(
    emu: ElevenLabsEmulator, sdk: Any
) -> None:
    first, _ = await sdk_stream(sdk, text="First part.")
    second, _ = await sdk_stream(
        sdk,
        text="Second part.",
        previous_request_ids=[first["request-id"]],
        next_text="Third part.",
    )
    assert first["request-id"] != second["request-id"]
    assert [r.request_id for r in emu.requests] == [first["request-id"], second["request-id"]]
    rec = emu.requests[-1]
    assert rec.previous_request_ids == [first["request-id"]]
    assert rec.next_text == "Third part." and rec.next_request_ids is None
    assert rec.previous_text is None
