"""Wire pieces of the ElevenLabs emulator: formats, plans, error bodies, validation.

Sources: the SDK's `text_to_speech/raw_client.py` docstrings and
`TextToSpeechStreamRequestOutputFormat`, ElevenLabs' help centre articles "API Error
Code 400 or 401" and "API Error Code 429"; the 422 `detail` list is FastAPI/pydantic's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

# The pcm_* output formats the SDK offers (TextToSpeechStreamRequestOutputFormat).
PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
PRO_ONLY_RATES = (44100,)  # "PCM with 44.1kHz sample rate requires ... Pro tier or above"
PRO_PLANS = ("pro", "scale", "business", "enterprise")
MAX_STITCHED_IDS = 3  # "A maximum of 3 request_ids can be sent" (SDK docstring)
# Named errors: (HTTP status, message), wording after ElevenLabs' help centre.
NAMED_ERRORS = {
    "system_busy": (
        429,
        "We are experiencing heavy traffic, please try again later or upgrade your plan.",
    ),
    "too_many_concurrent_requests": (
        429,
        "You have exceeded the concurrency limit of your subscription.",
    ),
    "quota_exceeded": (
        401,
        "This request exceeds your quota of 10000. You have 12 credits remaining, while 57 "
        "credits are required for this request.",
    ),
    "invalid_api_key": (401, "Invalid API key"),
}


def pcm_rate(output_format: str) -> int | None:
    codec, _, rate = output_format.partition("_")
    if codec != "pcm" or not rate.isdigit() or int(rate) not in PCM_RATES:
        return None
    return int(rate)


def error_response(
    status: int,
    code: str,
    message: str,
    retry_after_s: int | None = None,
    record: TtsRequestRecord | None = None,
) -> web.Response:
    """An error in ElevenLabs' shape: {"detail": {"status": ..., "message": ...}}."""
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else {}
    if record is not None:
        headers["request-id"] = record.request_id
    body = json.dumps({"detail": {"status": code, "message": message}})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def issue(kind: str, loc: list[str | int], msg: str, value: Any) -> dict[str, Any]:
    """One FastAPI/pydantic validation issue, the items of a 422's `detail` list."""
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


def invalid(issues: list[dict[str, Any]]) -> web.Response:
    return web.Response(
        status=422, text=json.dumps({"detail": issues}), content_type="application/json"
    )


def body_issues(body: dict[str, Any]) -> list[dict[str, Any]]:
    """What request validation rejects in a JSON body (the fields agentd sends)."""
    issues = []
    if "text" not in body:
        issues.append(issue("missing", ["body", "text"], "Field required", body))
    elif not isinstance(body["text"], str):
        issues.append(
            issue("string_type", ["body", "text"], "Input should be a valid string", body["text"])
        )
    for name in ("previous_text", "next_text", "model_id"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            issues.append(
                issue("string_type", ["body", name], "Input should be a valid string", value)
            )
    for name in ("previous_request_ids", "next_request_ids"):
        ids = body.get(name)
        if ids is None:
            continue
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            issues.append(issue("list_type", ["body", name], "Input should be a valid list", ids))
        elif len(ids) > MAX_STITCHED_IDS:
            # The SDK docstring gives the limit; the error's wording is pydantic's.
            issues.append(
                issue(
                    "too_long",
                    ["body", name],
                    f"List should have at most {MAX_STITCHED_IDS} items after validation, "
                    f"not {len(ids)}",
                    ids,
                )
            )
    return issues


@dataclass
class TtsRequestRecord:
    """One request as the emulator saw it (times are time.monotonic() seconds)."""

    arrived_s: float
    voice_id: str
    output_format: str
    text: str = ""
    model_id: str | None = None
    voice_settings: dict[str, Any] | None = None
    previous_text: str | None = None
    next_text: str | None = None
    previous_request_ids: list[str] | None = None
    next_request_ids: list[str] | None = None
    request_id: str = ""  # the request-id header this request was answered with
    optimize_streaming_latency: str | None = None
    status: int = 200
    bytes_sent: int = 0
    chunks_sent: int = 0
    first_chunk_s: float | None = None  # when the first audio chunk was written
    finished_s: float | None = None
    completed: bool = False  # the whole body went out
    disconnected: bool = False  # the client went away before the body was complete
    peer: Any = None  # the client's (host, port): which connection carried it
