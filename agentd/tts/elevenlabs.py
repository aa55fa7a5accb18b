"""ElevenLabs streaming TTS link: text in, raw S16_LE mono PCM chunks out as they arrive.

Uses the official SDK's async client (`AsyncElevenLabs`) over HTTP streaming
(`POST /v1/text-to-speech/{voice}/stream?output_format=pcm_<rate>`), one request per
clause. The SDK does not retry streaming calls (`core/http_client.py::stream`), so every
failure surfaces here at once and becomes a `TtsError` with the right `retryable` flag;
retry policy and the fallback voice belong to the caller.

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
from agentd.errors import ConfigError, SecretError, TtsError, TtsTimeout

if TYPE_CHECKING:
    from agentd.config.sections_tts import TtsConfig

log = logging.getLogger(__name__)

# The raw PCM output formats ElevenLabs offers (API reference, `output_format`); 48 kHz
# is not among them, so a 48 kHz-only speaker needs an ALSA `plughw:`/`plug` device.
PCM_RATES = (16000, 22050, 24000, 44100)
# Retryable statuses, as the SDK's own `_should_retry` (core/http_client.py) classifies them.
_RETRYABLE_4XX = (408, 409, 429)
_AUTH_STATUSES = (401, 403)
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

    async def _probe(self) -> None:
        # GET /v1/models: small, authenticated, not billed; same httpx pool as stream().
        await self._client.models.with_raw_response.list(request_options={"max_retries": 0})

    async def aclose(self) -> None:
        """Close pooled connections; idempotent."""
        if self.warmer is not None:
            await self.warmer.aclose()
        await self._http.aclose()

    async def stream(
        self, text: str, *, previous_text: str = "", next_text: str = ""
    ) -> AsyncGenerator[bytes, None]:
        """Yield even-length PCM chunks for `text` as they arrive; raises TtsError/TtsTimeout."""
        if not text.strip():
            return
        import httpx
        from elevenlabs.core.api_error import ApiError

        loop = asyncio.get_running_loop()
        started = loop.time()
        first_deadline = started + self._config.first_byte_timeout_s
        received = 0
        carry = b""
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    async with asyncio.timeout_at(first_deadline):
                        response = await stack.enter_async_context(
                            self._request(text, previous_text, next_text)
                        )
                        _check_content_type(response.headers)
                        chunks: AsyncIterator[bytes] = response.data
                        chunk = await anext(chunks, None)
                    self.last_first_byte_ms = (loop.time() - started) * 1000
                except TimeoutError:
                    raise TtsTimeout(
                        f"no audio within first_byte_timeout_s="
                        f"{self._config.first_byte_timeout_s} from {self._config.base_url}"
                    ) from None
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

    def _request(self, text: str, previous_text: str, next_text: str) -> Any:
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
            previous_text=previous_text or None,
            next_text=next_text or None,
            request_options={"max_retries": 0},
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


def _from_api_error(exc: Any, base_url: str) -> TtsError:
    status = exc.status_code
    detail = _detail(exc.body)
    message = f"HTTP {status} from {base_url}: {detail}"
    if status in _AUTH_STATUSES:
        return TtsError(message + " (check the ElevenLabs API key)", retryable=False)
    retryable = status is None or status >= 500 or status in _RETRYABLE_4XX
    return TtsError(message, retryable=retryable)


def _detail(body: Any) -> str:
    """ElevenLabs errors look like {"detail": {"status": ..., "message": ...}}."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        parts = [str(detail[k]) for k in ("status", "message") if detail.get(k)]
        text = ": ".join(parts) or str(detail)
    else:
        text = str(detail)
    return text[:_MAX_DETAIL_CHARS]
