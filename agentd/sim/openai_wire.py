"""Wire pieces of the OpenAI emulator: chunk skeletons, error bodies, token counting.

Shapes follow the openai SDK's models (`types/chat/chat_completion_chunk.py`,
`_exceptions.py`) and OpenAI's error-code guide.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

WORD_PIECE_CHARS = 4  # long words are split like BPE tokens

# Model names that take only max_completion_tokens and the default temperature
# (OpenAI reasoning models guide: o1, o3, o4-mini, gpt-5 and their dated variants).
REASONING_MODEL = re.compile(r"^(gpt-5|o1|o3|o4)([-.].*)?$")


def chunk_base(body: dict[str, Any], default_model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": str(body.get("model") or default_model),
        "system_fingerprint": "fp_emulator",
    }


def call_head(index: int) -> dict[str, Any]:
    return {"index": index, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function"}


def prompt_filter_chunk() -> str:
    """Azure OpenAI's first chunk: no choices, only the prompt's content-filter verdict."""
    verdict = {"filtered": False, "severity": "safe"}
    filters = {k: verdict for k in ("hate", "self_harm", "sexual", "violence")}
    return json.dumps(
        {
            "id": "",
            "object": "",
            "created": 0,
            "model": "",
            "choices": [],
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filters}],
        }
    )


def request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def split_tokens(text: str) -> list[str]:
    """Token-like pieces: words with their leading space, long words cut in 4s."""
    pieces: list[str] = []
    for word in re.findall(r"\s*\S+|\s+$", text):
        pieces.extend(
            word[i : i + WORD_PIECE_CHARS + 1] for i in range(0, len(word), WORD_PIECE_CHARS + 1)
        )
    return pieces


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def usage(body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    # ~4 characters per token is OpenAI's own rule of thumb for English.
    prompt = sum(len(message_text(m)) for m in body.get("messages", []) if isinstance(m, dict)) // 4
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


# OpenAI's texts for the two kinds of 429
# (error-code guide, platform.openai.com/docs/guides/error-codes).
RATE_LIMIT_MESSAGE = (
    "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. "
    "Please try again in 20s."
)
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)


def error_response(
    status: int, message: str, code: str, *, kind: str = "", param: str | None = None
) -> web.Response:
    from aiohttp import web

    kind = kind or {400: "invalid_request_error", 401: "invalid_request_error"}.get(
        status, "server_error"
    )
    error = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(error, status=status, headers={"x-request-id": request_id()})


def model_refusal(body: dict[str, Any]) -> web.Response | None:
    """400 for parameters gpt-5/o-series models reject, worded as OpenAI words it."""
    if not REASONING_MODEL.match(str(body.get("model") or "")):
        return None
    if "max_tokens" in body:
        return error_response(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "unsupported_parameter",
            param="max_tokens",
        )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        return error_response(
            400,
            f"Unsupported value: 'temperature' does not support {temperature} with this "
            "model. Only the default (1) value is supported.",
            "unsupported_value",
            param="temperature",
        )
    return None
