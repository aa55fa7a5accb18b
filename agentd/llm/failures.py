"""What an OpenAI SDK failure means for agentd: its error class, and whether to retry.

The SDK runs with `max_retries=0`: its own retry loop honours a Retry-After of up to
120 s (`openai/_base_client.py::_calculate_retry_timeout`, `_constants.py`
MAX_RETRY_AFTER_DELAY) in silence, which a visitor at a kiosk would hear as a dead
device. `ChatLlm` retries itself, only while its first-token deadline allows.
"""

from __future__ import annotations

import math
import random
from typing import Any

from agentd.errors import (
    LlmAuthError,
    LlmError,
    LlmQuotaExceeded,
    LlmRateLimited,
    LlmRequestRejected,
    LlmTimeout,
)

# The SDK's own backoff schedule (openai/_constants.py INITIAL_RETRY_DELAY, MAX_RETRY_DELAY),
# used when the server sends no Retry-After.
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
_MAX_MESSAGE_CHARS = 200


def map_error(exc: Exception) -> LlmError:
    """The agentd error for an SDK exception; never includes the API key."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return LlmTimeout("request timed out (connect or read)")
    if isinstance(exc, openai.APIConnectionError):
        return LlmError(f"cannot reach the server ({exc.__cause__ or exc})")
    if isinstance(exc, openai.APIStatusError):
        return _from_status(exc)
    if isinstance(exc, openai.APIError):
        return LlmError(f"error in stream: {_short(exc)}")
    return LlmError(f"{type(exc).__name__}: {exc}")


def _from_status(exc: Any) -> LlmError:
    status = int(exc.status_code)
    code = str(getattr(exc, "code", None) or "")
    if status == 429 and code == "insufficient_quota":
        # OpenAI's error-code guide: out of credit; waiting does not help, billing does.
        return LlmQuotaExceeded(
            "account out of credit (HTTP 429 insufficient_quota): check the plan and "
            "billing of this API key's organisation"
        )
    if status == 429:
        wait_s = retry_after_s(exc.response.headers)
        hint = f", retry-after {wait_s:g} s" if wait_s is not None else ""
        return LlmRateLimited(
            f"rate limited (HTTP 429 {code or 'no code'}{hint}): {_short(exc)}",
            retry_after_s=wait_s,
        )
    if status in (401, 403):
        # The provider's message may quote part of the key: do not repeat it.
        return LlmAuthError(f"credentials refused (HTTP {status} {code}): check openai_api_key")
    if 400 <= status < 500 and status not in (408, 409):
        param = getattr(exc, "param", None)
        what = f"HTTP {status} {code}" + (f", param {param}" if param else "")
        return LlmRequestRejected(f"request rejected ({what}): {_short(exc)}")
    return LlmError(f"server error (HTTP {status}): {_short(exc)}")


def retry_wait_s(error: LlmError, attempt: int) -> float:
    """How long to wait before retry number `attempt + 1`: Retry-After, else backoff."""
    if isinstance(error, LlmRateLimited) and error.retry_after_s is not None:
        return error.retry_after_s
    delay = min(INITIAL_RETRY_DELAY_S * 2.0**attempt, MAX_RETRY_DELAY_S)
    return delay * (1 - 0.25 * random.random())  # the SDK's 0-25 % jitter


def _short(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc)[:_MAX_MESSAGE_CHARS]


def retry_after_s(headers: Any) -> float | None:
    """Retry-After (ms variant first, as the SDK reads it) in seconds, or None."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None
