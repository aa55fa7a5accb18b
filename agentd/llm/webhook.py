"""Webhook tools: POST the model's JSON arguments to a configured URL, return the answer.

The response body is read only up to RESULT_CAP_CHARS bytes, so a misbehaving endpoint
can neither stall the reply past `timeout_s` nor flood the model's context.
"""

from __future__ import annotations

import json
from typing import Any

from agentd.config.sections_llm import ToolConfig
from agentd.errors import ToolError
from agentd.llm.tools import RESULT_CAP_CHARS, Tool

# A webhook without a declared schema takes any JSON object.
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


def webhook_tool(config: ToolConfig) -> Tool:
    """A tool that POSTs its arguments to `config.url` within `config.timeout_s`."""
    url, timeout_s = config.url, config.timeout_s

    async def post(arguments: dict[str, Any]) -> Any:
        return await post_json(url, arguments, timeout_s)

    description = config.description or f"Ask the {config.name} service."
    return Tool(config.name, description, config.parameters or _ANY_OBJECT, post, timeout_s)


async def post_json(url: str, payload: dict[str, Any], timeout_s: float) -> Any:
    """POST `payload`; the JSON answer, or `{"text": ...}`; ToolError on any failure."""
    import httpx

    try:
        async with (
            httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
            client.stream("POST", url, json=payload) as response,
        ):
            body = await _read_capped(response)
            status = response.status_code
            content_type = response.headers.get("content-type", "")
    except httpx.TimeoutException:
        raise ToolError(f"service did not answer within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        # The URL may carry a token in its query: name the failure, not the URL.
        raise ToolError(f"service unreachable ({type(exc).__name__})") from None
    truncated = len(body) > RESULT_CAP_CHARS
    text = body[:RESULT_CAP_CHARS].decode("utf-8", "replace")
    if status >= 400:
        raise ToolError(f"service answered HTTP {status}: {text[:200]}")
    if "json" in content_type and not truncated:
        try:
            return json.loads(text)
        except ValueError:
            pass  # a service mislabelling text as JSON: hand the text over as is
    return {"text": text, "truncated": truncated} if truncated else {"text": text}


async def _read_capped(response: Any) -> bytes:
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) > RESULT_CAP_CHARS:
            break
    return bytes(body)
