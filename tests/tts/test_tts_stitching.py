"""ElevenLabsTts against provider behaviour: stitching on the wire, one retry, causes.

Official SDK against the local emulator (tests/tts/conftest.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from agentd.errors import (
    TtsAuthError,
    TtsError,
    TtsQuotaExceeded,
    TtsRequestRejected,
    TtsTimeout,
)
from agentd.sim.elevenlabs_server import ElevenLabsEmulator
from agentd.tts.elevenlabs import ElevenLabsTts, _from_api_error
from agentd.tts.stitching import MAX_PREVIOUS_REQUEST_IDS, ReplyStitching

pytestmark = pytest.mark.timeout(30)

MakeTts = Callable[..., ElevenLabsTts]
CLAUSES = ["Good morning.", "Welcome to the office.", "The lift is on your left.", "Bye now."]


async def speak(tts: ElevenLabsTts, text: str, **kwargs: Any) -> bytes:
    async with contextlib.aclosing(tts.stream(text, **kwargs)) as stream:
        return b"".join([chunk async for chunk in stream])


async def test_clauses_of_one_reply_cite_up_to_three_earlier_request_ids(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    tts = make_tts()
    stitching = ReplyStitching()
    for index, clause in enumerate(CLAUSES):
        following = CLAUSES[index + 1] if index + 1 < len(CLAUSES) else ""
        await speak(tts, clause, stitching=stitching, next_text=following)
    issued = [r.request_id for r in emulator.requests]
    assert len(set(issued)) == 4
    sent = [r.previous_request_ids for r in emulator.requests]
    assert sent == [None, issued[:1], issued[:2], issued[:3]]
    assert MAX_PREVIOUS_REQUEST_IDS == 3
    assert [r.next_text for r in emulator.requests] == [*CLAUSES[1:], None]
    # ids override previous_text (SDK docstring), so only the first clause could carry it
    assert all(r.previous_text is None for r in emulator.requests)
    # a fifth clause cites the latest three, oldest first
    await speak(tts, "One more.", stitching=stitching)
    assert emulator.requests[-1].previous_request_ids == issued[1:4]


async def test_a_new_reply_starts_a_new_chain(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    tts = make_tts()
    first = ReplyStitching()
    await speak(tts, "First reply.", stitching=first)
    await speak(tts, "Second reply.", stitching=ReplyStitching())
    assert emulator.requests[-1].previous_request_ids is None
    assert emulator.requests[-1].previous_text is None


async def test_a_failed_clause_is_not_cited(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    tts = make_tts()
    stitching = ReplyStitching()
    await speak(tts, CLAUSES[0], stitching=stitching)
    emulator.faults.truncate_after_chunks, emulator.faults.remaining = 1, 1
    with pytest.raises(TtsError):
        await speak(tts, CLAUSES[1], stitching=stitching)
    await speak(tts, CLAUSES[2], stitching=stitching)
    assert emulator.requests[-1].previous_request_ids == [emulator.requests[0].request_id]


async def test_models_without_stitching_get_previous_text(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    tts = make_tts(model_id="eleven_v3")
    stitching = ReplyStitching()
    await speak(tts, CLAUSES[0], stitching=stitching)
    await speak(tts, CLAUSES[1], stitching=stitching)
    assert emulator.requests[-1].previous_request_ids is None
    assert emulator.requests[-1].previous_text == CLAUSES[0]


@pytest.mark.parametrize("fault", [{"error": "system_busy"}, {"status": 503}])
async def test_one_retry_of_a_busy_service_inside_the_budget(
    emulator: ElevenLabsEmulator, make_tts: MakeTts, fault: dict[str, Any]
) -> None:
    for key, value in fault.items():
        setattr(emulator.faults, key, value)
    emulator.faults.remaining = 1
    audio = await speak(make_tts(first_byte_timeout_s=2.0), "Hello there.")
    assert audio and [r.status for r in emulator.requests] == [fault.get("status", 429), 200]


async def test_no_second_retry(emulator: ElevenLabsEmulator, make_tts: MakeTts) -> None:
    emulator.faults.error = "system_busy"
    with pytest.raises(TtsError, match="system_busy") as info:
        await speak(make_tts(first_byte_timeout_s=2.0), "Hello there.")
    assert info.value.retryable and len(emulator.requests) == 2


async def test_no_retry_when_the_budget_is_spent(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    emulator.ttfb_ms = 250.0
    emulator.faults.status = 503
    started = time.monotonic()
    with pytest.raises(TtsError, match="no time to retry"):
        await speak(make_tts(first_byte_timeout_s=0.5), "Hello there.")
    assert time.monotonic() - started < 0.5 and len(emulator.requests) == 1


async def test_retry_after_that_does_not_fit_is_not_waited(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    emulator.faults.error, emulator.faults.retry_after_s = "system_busy", 30
    with pytest.raises(TtsError):
        await speak(make_tts(first_byte_timeout_s=2.0), "Hello there.")
    assert len(emulator.requests) == 1


async def test_concurrency_limit_is_not_retried(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    emulator.faults.error = "too_many_concurrent_requests"
    with pytest.raises(TtsError, match="too_many_concurrent_requests") as info:
        await speak(make_tts(), "Hello there.")
    assert info.value.retryable and len(emulator.requests) == 1


async def test_quota_and_key_are_different_causes(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    emulator.faults.error = "quota_exceeded"
    with pytest.raises(TtsQuotaExceeded, match="out of characters") as quota:
        await speak(make_tts(), "Hello there.")
    assert quota.value.error_kind == "tts_quota" and not quota.value.retryable
    emulator.faults.clear()
    with pytest.raises(TtsAuthError, match="elevenlabs_api_key") as key:
        await speak(make_tts(api_key="xi-canary-5e1d"), "Hello there.")
    assert key.value.error_kind == "tts_auth" and "xi-canary-5e1d" not in str(key.value)
    assert len(emulator.requests) == 2  # neither retried


async def test_pcm_44100_on_a_lower_plan_names_the_plan(
    emulator: ElevenLabsEmulator, make_tts: MakeTts, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentd.tts.elevenlabs"):
        tts = make_tts(44100)
    assert "Pro plan" in caplog.text
    with pytest.raises(TtsRequestRejected, match="subscription_required") as info:
        await speak(tts, "Hello there.")
    assert info.value.error_kind == "tts_rejected" and "rate_hz" in str(info.value)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agentd.tts.elevenlabs"):
        make_tts(48000)
    assert "Pro plan" not in caplog.text


def test_list_shaped_422_names_each_field() -> None:
    """The SDK's UnprocessableEntityError body is FastAPI's issue list (see the emulator test
    tests/sim/test_elevenlabs_server.py::test_validation_errors_are_list_shaped_422)."""
    from elevenlabs.errors import UnprocessableEntityError

    issues = [
        {"type": "missing", "loc": ["body", "text"], "msg": "Field required", "input": {}},
        {"type": "too_long", "loc": ["body", "next_request_ids"], "msg": "List too long"},
    ]
    error = _from_api_error(UnprocessableEntityError(body={"detail": issues}), "http://x")
    assert isinstance(error, TtsRequestRejected) and not error.retryable
    assert "body.text: Field required; body.next_request_ids: List too long" in str(error)


async def test_first_byte_deadline_covers_both_attempts(
    emulator: ElevenLabsEmulator, make_tts: MakeTts
) -> None:
    emulator.faults.error, emulator.faults.remaining = "system_busy", 1
    emulator.ttfb_ms = 400.0
    started = time.monotonic()
    with pytest.raises(TtsTimeout, match="2 attempts"):
        await speak(make_tts(first_byte_timeout_s=1.0), "Hello there.")
    assert time.monotonic() - started < 1.3
