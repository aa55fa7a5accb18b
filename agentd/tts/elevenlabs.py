"""ElevenLabs streaming TTS link: text in, raw S16_LE mono PCM chunks out as they arrive.

Uses the official SDK's async client (`AsyncElevenLabs`) over HTTP streaming
(`POST /v1/text-to-speech/{voice}/stream?output_format=pcm_<rate>`), one request per
clause. The SDK does not retry streaming calls (`core/http_client.py::stream`); this
link retries once what ElevenLabs says to retry (429 `system_busy`, 5xx, a refused
connection) if the first-byte budget still has room, and otherwise raises a `TtsError`
whose class names the cause (`TtsAuthError` wrong key, `TtsQuotaExceeded` out of
characters, `TtsRequestRejected` refused request); the fallback voice is the caller's.

Prosody across clauses: pass the reply's `ReplyStitching` (agentd.tts.stitching) to
every `stream()` of that reply and, when the next clause is known, its `next_text`.

Deadlines are ours, not httpx's: the first audio byte must arrive within
`first_byte_timeout_s` of the call, and no later gap may exceed `chunk_gap_timeout_s`.

A stream cut off mid-body (connection dropped) raises `TtsError(retryable=True)` after
the audio already received has been yielded: the caller has played part of the clause
and decides whether to apologise with the fallback voice. It never ends "cleanly" on a
truncation, because a silently shortened sentence is worse than a reported one.

Consumers should iterate inside `contextlib.aclosing(tts.stream(...))` so that a
cancelled or abandoned reply closes the HTTP stream immediately (an un-closed async
generator is only finalised whenever the loop gets round to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from agentd.connection_warmer import ConnectionWarmer
from agentd.errors import (
    ConfigError,
    SecretError,
    TtsAuthError,
    TtsError,
    TtsQuotaExceeded,
    TtsRequestRejected,
    TtsTimeout,
)
from agentd.tts.stitching import ReplyStitching

if TYPE_CHECKING:
    from agentd.config.sections_tts import TtsConfig

log = logging.getLogger(__name__)

# The raw PCM output formats ElevenLabs offers (SDK TextToSpeechStreamRequestOutputFormat).
PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
# "PCM with 44.1kHz sample rate requires you to be subscribed to Pro tier or above."
PRO_ONLY_RATES = (44100,)
# Models without request stitching (ElevenLabs docs, "Request stitching").
NO_STITCHING_MODELS = ("eleven_v3",)
# Retryable statuses, as the SDK's own `_should_retry` (core/http_client.py) classifies them.
_RETRYABLE_4XX = (408, 409, 429)
# ElevenLabs: "system_busy ... Generally, if you retry the request, it will succeed."
# One retry, this long after the refusal unless Retry-After says otherwise; only if it
# and a minimal attempt still fit first_byte_timeout_s.
RETRY_DELAY_S = 0.2
MIN_ATTEMPT_S = 0.2
# Safety net under our own deadlines, so a wedged socket can never hang a task forever.
_HTTP_BACKSTOP_S = 30.0
_MAX_DETAIL_CHARS = 200


class ElevenLabsTts:
    """One ElevenLabs voice at one PCM rate; `stream()` per clause, `aclose()` at shutdown."""

    def __init__(self, config: TtsConfig, api_key: str, rate_hz: int) -> None:
        if rate_hz not in PCM_RATES:
            raise ConfigError(
                "audio.playback.rate_hz",
                "ElevenLabs streams raw PCM only at its pcm_* rates (no resampling here)",
                rate_hz,
                ", ".join(map(str, PCM_RATES)) + " (use a plughw: device for other rates)",
            )
        if not api_key:
            raise SecretError("ElevenLabs API key is empty")
        if rate_hz in PRO_ONLY_RATES:
            log.warning(
                "tts: pcm_%d needs an ElevenLabs Pro plan or above; on a lower plan every "
                "clause is refused (HTTP 403) and the fallback voice speaks. "
                "audio.playback.rate_hz = 48000 or 24000 works on every plan.",
                rate_hz,
            )
        import httpx
        from elevenlabs.client import AsyncElevenLabs

        self._config = config
        self.rate_hz = rate_hz
        self.output_format = f"pcm_{rate_hz}"
        self.last_first_byte_ms: float | None = None  # of the latest stream(), for metrics
        backstop = max(config.first_byte_timeout_s, config.chunk_gap_timeout_s, _HTTP_BACKSTOP_S)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(backstop), follow_redirects=True)
        self._client = AsyncElevenLabs(
            api_key=api_key, base_url=config.base_url.rstrip("/"), httpx_client=self._http
        )
        self.warmer = ConnectionWarmer("tts", self._probe) if config.warm_connection else None

    def warm_up(self) -> None:
        """The visitor started speaking: get a connection ready for the reply's audio."""
        if self.warmer is not None:
            self.warmer.poke()

    async def probe(self) -> None:
        """One authenticated, unbilled request (GET /v1/models); a TtsError names the cause."""
        import httpx
        from elevenlabs.core.api_error import ApiError

        try:
            await self._probe()
        except ApiError as exc:
            raise _from_api_error(exc, self._config.base_url) from None
        except httpx.HTTPError as exc:
            raise TtsError(
                f"cannot reach {self._config.base_url}: {type(exc).__name__}: {exc}"
            ) from None

    async def _probe(self) -> None:
        # GET /v1/models: small, authenticated, not billed; same httpx pool as stream().
        await self._client.models.with_raw_response.list(request_options={"max_retries": 0})

    async def aclose(self) -> None:
        """Close pooled connections; idempotent."""
        if self.warmer is not None:
            await self.warmer.aclose()
        await self._http.aclose()

    async def stream(
        self,
        text: str,
        *,
        previous_text: str = "",
        next_text: str = "",
        stitching: ReplyStitching | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """Yield even-length PCM chunks for `text` as they arrive; raises TtsError/TtsTimeout.

        With `stitching` (one per reply), the request cites the reply's earlier clauses
        and, once the audio ended cleanly, this clause is recorded in it.
        """
        if not text.strip():
            return
        import httpx
        from elevenlabs.core.api_error import ApiError

        loop = asyncio.get_running_loop()
        started = loop.time()
        fields = self._context(previous_text, next_text, stitching)
        received = 0
        carry = b""
        try:
            async with contextlib.AsyncExitStack() as stack:
                response, chunks, chunk = await self._open(stack, text, fields, started)
                self.last_first_byte_ms = (loop.time() - started) * 1000
                while chunk is not None:
                    received += len(chunk)
                    data = carry + chunk
                    even = len(data) & ~1  # S16 samples must never be split across yields
                    carry = data[even:]
                    if even:
                        yield data[:even]
                    chunk = await self._next_chunk(chunks, received)
        except ApiError as exc:
            raise _from_api_error(exc, self._config.base_url) from None
        except (httpx.HTTPError, httpx.StreamError) as exc:
            raise TtsError(
                f"stream from {self._config.base_url} failed after {received} bytes: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if carry:
            log.warning("tts: dropped 1 stray byte at the end of a PCM stream (odd length)")
        if stitching is not None:
            stitching.record(text, response.headers.get("request-id"))

    def _context(
        self, previous_text: str, next_text: str, stitching: ReplyStitching | None
    ) -> dict[str, Any]:
        """The continuity fields of one request (ids override previous_text anyway)."""
        fields: dict[str, Any] = {"next_text": next_text or None}
        if stitching is None:
            fields["previous_text"] = previous_text or None
            return fields
        ids = stitching.previous_request_ids
        if ids and self._config.model_id not in NO_STITCHING_MODELS:
            fields["previous_request_ids"] = ids
        else:
            fields["previous_text"] = stitching.previous_text or previous_text or None
        return fields

    async def _open(
        self, stack: contextlib.AsyncExitStack, text: str, fields: dict[str, Any], started: float
    ) -> tuple[Any, AsyncIterator[bytes], bytes | None]:
        """(response, chunk iterator, first chunk) within the first-byte budget.

        One retry of a busy or failing service if the budget still has room for it.
        """
        import httpx
        from elevenlabs.core.api_error import ApiError

        loop = asyncio.get_running_loop()
        deadline = started + self._config.first_byte_timeout_s
        for attempt in (1, 2):
            try:
                async with asyncio.timeout_at(deadline):
                    async with contextlib.AsyncExitStack() as tries:
                        response = await tries.enter_async_context(self._request(text, fields))
                        _check_content_type(response.headers)
                        chunks: AsyncIterator[bytes] = response.data
                        chunk = await anext(chunks, None)
                        stack.push_async_exit(tries.pop_all())
                        return response, chunks, chunk
            except TimeoutError:
                raise TtsTimeout(
                    f"no audio within first_byte_timeout_s="
                    f"{self._config.first_byte_timeout_s} from {self._config.base_url}"
                    f" ({attempt} attempt{'s' if attempt > 1 else ''})"
                ) from None
            except ApiError as exc:
                if attempt == 2 or not _busy(exc):
                    raise
                wait_s = _retry_after_s(exc.headers) or RETRY_DELAY_S
                reason = f"HTTP {exc.status_code} {_detail(exc.body)}"
            except httpx.ConnectError as exc:
                if attempt == 2:
                    raise
                wait_s, reason = RETRY_DELAY_S, f"cannot connect ({exc})"
            if loop.time() + wait_s + MIN_ATTEMPT_S > deadline:
                log.warning("tts: no time left for a retry after %s", reason)
                raise TtsError(f"{reason} from {self._config.base_url}; no time to retry")
            log.info("tts: retrying in %.2f s after %s", wait_s, reason)
            await asyncio.sleep(wait_s)
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(self, text: str, fields: dict[str, Any]) -> Any:
        """The SDK's raw streaming call (an async context manager yielding the response)."""
        from elevenlabs.types import VoiceSettings

        cfg = self._config
        return self._client.text_to_speech.with_raw_response.stream(
            cfg.voice_id,
            text=text,
            model_id=cfg.model_id,
            output_format=self.output_format,  # type: ignore[arg-type]
            optimize_streaming_latency=cfg.optimize_streaming_latency,
            voice_settings=VoiceSettings(
                stability=cfg.stability, similarity_boost=cfg.similarity_boost, speed=cfg.speed
            ),
            request_options={"max_retries": 0},
            **fields,
        )

    async def _next_chunk(self, chunks: AsyncIterator[bytes], received: int) -> bytes | None:
        gap = self._config.chunk_gap_timeout_s
        try:
            async with asyncio.timeout(gap):
                return await anext(chunks, None)
        except TimeoutError:
            raise TtsTimeout(
                f"audio stalled for chunk_gap_timeout_s={gap} after {received} bytes"
            ) from None


def _check_content_type(headers: Mapping[str, str]) -> None:
    """A 200 that is not audio (captive portal, proxy page) must not be played as noise."""
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype.startswith(("text/", "application/json")):
        raise TtsError(f"expected PCM audio, got Content-Type {ctype!r}")


def _busy(exc: Any) -> bool:
    """Worth one more try: 429 `system_busy` (the service says so) or a 5xx."""
    status = exc.status_code
    if status is not None and status >= 500:
        return True
    return status == 429 and _status_code(exc.body) == "system_busy"


def _from_api_error(exc: Any, base_url: str) -> TtsError:
    """The TtsError naming the real cause: the key, the quota, the request, or the service."""
    status = exc.status_code
    code = _status_code(exc.body)
    message = f"HTTP {status} from {base_url}: {_detail(exc.body)}"
    if code == "quota_exceeded":
        return TtsQuotaExceeded(
            message + " (the ElevenLabs account is out of characters: top up or enable "
            "usage-based billing)"
        )
    if status == 401:
        return TtsAuthError(message + " (check elevenlabs_api_key)")
    if status == 403 and code == "subscription_required":
        return TtsRequestRejected(
            message + " (the plan lacks this output format: pick another audio.playback.rate_hz)"
        )
    if status == 403:
        return TtsAuthError(message + " (the key lacks the text_to_speech permission?)")
    retryable = status is None or status >= 500 or status in _RETRYABLE_4XX
    if not retryable:
        return TtsRequestRejected(message)
    return TtsError(message, retryable=True)


def _status_code(body: Any) -> str:
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail.get("status") or "") if isinstance(detail, dict) else ""


def _retry_after_s(headers: Any) -> float | None:
    value = (headers or {}).get("retry-after") or (headers or {}).get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _detail(body: Any) -> str:
    """ElevenLabs errors: {"detail": {"status", "message"}}, or a 422's list of issues."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        parts = [str(detail[k]) for k in ("status", "message") if detail.get(k)]
        text = ": ".join(parts) or str(detail)
    elif isinstance(detail, list):
        text = "; ".join(_issue(i) for i in detail)
    else:
        text = str(detail)
    return text[:_MAX_DETAIL_CHARS]


def _issue(issue: Any) -> str:
    if not isinstance(issue, dict):
        return str(issue)
    loc = ".".join(str(p) for p in issue.get("loc") or ())
    return f"{loc}: {issue.get('msg', '')}" if loc else str(issue.get("msg", issue))
