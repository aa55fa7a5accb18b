"""One probe per cloud service, each through the daemon's own link code and SDK.

Each probe measures what an integrator on site needs (connect, first result, end),
checks the wire behaviour agentd relies on (docs/cloud-contract.md) and turns every
failure into a `ServiceReport` error with the daemon's `error_kind`: a probe never
raises, so one broken service does not hide the state of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from agentd.audio.format import AudioFormat
from agentd.checkcloud.report import ServiceReport
from agentd.errors import AgentdError, LlmError, LlmTimeout, TtsError
from agentd.events import FaultRaised, LinkChanged, LinkState, TranscriptPartial, TurnFinalized

if TYPE_CHECKING:
    from agentd.config import Config

log = logging.getLogger(__name__)

STT_PHRASE = "Hello, this is a check of the cloud link."
TTS_PHRASE = "Hello, the voice of this kiosk is working."
PROBE_TOOL_NAME = "agentd_check_time"
LLM_PROMPT = "What time is it in Berlin? Use the tool."
_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": PROBE_TOOL_NAME,
        "description": "The current time in a time zone. Always call it when asked the time.",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "description": "IANA zone"}},
            "required": ["timezone"],
        },
    },
}
_FEED_MS = 20  # audio is fed as the microphone would: 20 ms periods in real time
_TRAILING_SILENCE_MS = 300
_STT_SLACK_S = 5.0  # beyond connect + speech + final timeout: the session may be slow
_MIN_WORD_MATCH = 0.5  # share of the phrase's words a usable transcript contains
# espeak-ng speaks ~165 wpm; a real voice 130-200 wpm: outside 0.15-1.5 s per word the
# audio is not this clause at this rate (a wrong output_format, or silence/noise).
_SECONDS_PER_WORD = (0.15, 1.5)


async def check_stt(config: Config, api_key: str, phrase_pcm: bytes) -> ServiceReport:
    """Open one STT session, stream the phrase in real time, wait for its final transcript."""
    from agentd.stt.assemblyai import AssemblyAiStt

    report = ServiceReport("stt")
    rate_hz = config.audio.capture.rate_hz
    events: asyncio.Queue[object] = asyncio.Queue()
    stt = AssemblyAiStt(config.stt, api_key, rate_hz, events.put_nowait)
    loop = asyncio.get_running_loop()
    speech_s = AudioFormat(rate_hz).duration_ms(len(phrase_pcm)) / 1000
    budget_s = config.stt.connect_timeout_s + speech_s + config.stt.final_timeout_s + _STT_SLACK_S
    feeder: asyncio.Task[float] | None = None
    try:
        await stt.start()
        started = loop.time()
        stt.begin_utterance()
        feeder = asyncio.create_task(_feed(stt, phrase_pcm, rate_hz))
        async with asyncio.timeout(budget_s):
            final = await _await_final(events, report, started, feeder)
        if final is not None:
            report.total_ms = (loop.time() - feeder.result()) * 1000
            report.detail = f"transcript: {final.text!r}"
            if _word_match(STT_PHRASE, final.text) < _MIN_WORD_MATCH:
                report.differences.append(
                    f"the transcript shares few words with the phrase {STT_PHRASE!r}"
                )
    except TimeoutError:
        report.fail(f"no final transcript within {budget_s:.1f} s", "stt_timeout")
    except AgentdError as exc:
        report.fail(exc)
    finally:
        if feeder is not None:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, AgentdError):
                await feeder
        await stt.close()
    return report


async def _feed(stt: Any, pcm: bytes, rate_hz: int) -> float:
    """Feed `pcm` plus a little silence at real-time pace; returns when speech ended."""
    loop = asyncio.get_running_loop()
    fmt = AudioFormat(rate_hz)
    step = fmt.bytes_for_ms(_FEED_MS)
    audio = pcm + bytes(fmt.bytes_for_ms(_TRAILING_SILENCE_MS))
    start = loop.time()
    for index, offset in enumerate(range(0, len(audio), step)):
        # deadlines, not relative sleeps: never faster than real time (AssemblyAI 3007)
        delay = start + index * _FEED_MS / 1000 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        stt.feed(audio[offset : offset + step])
    speech_end = start + fmt.duration_ms(len(pcm)) / 1000
    stt.end_utterance()
    return speech_end


async def _await_final(
    events: asyncio.Queue[object], report: ServiceReport, started: float, feeder: Any
) -> TurnFinalized | None:
    loop = asyncio.get_running_loop()
    while True:
        event = await events.get()
        now_ms = (loop.time() - started) * 1000
        if isinstance(event, LinkChanged) and event.state is LinkState.CONNECTED:
            report.connect_ms = report.connect_ms or now_ms
        elif isinstance(event, TranscriptPartial) and event.text and report.first_ms is None:
            report.first_ms = now_ms
        elif isinstance(event, FaultRaised):
            report.fail(f"{event.message}", event.error_kind)
            return None
        elif isinstance(event, TurnFinalized) and event.text.strip():
            await feeder  # the speech-end time
            return event


def _word_match(expected: str, heard: str) -> float:
    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z']+", text.lower()))

    wanted = words(expected)
    return len(wanted & words(heard)) / max(1, len(wanted))


async def check_llm(config: Config, api_key: str) -> ServiceReport:
    """GET /models, then one streamed request with a tool, as the daemon shapes it."""
    import openai

    from agentd.llm.client import build_request
    from agentd.llm.failures import map_error

    cfg = config.llm
    report = ServiceReport("llm")
    client = openai.AsyncOpenAI(
        base_url=cfg.base_url,
        api_key=api_key,
        max_retries=0,
        timeout=openai.Timeout(cfg.request_timeout_s, connect=cfg.connect_timeout_s),
    )
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        try:
            await client.models.with_raw_response.list()
            report.connect_ms = (loop.time() - started) * 1000
        except openai.NotFoundError:
            report.differences.append("GET /models is missing: llm.warm_connection cannot warm")
        messages = [
            {"role": "system", "content": "You are a test harness. Call tools when asked."},
            {"role": "user", "content": LLM_PROMPT},
        ]
        request = build_request(cfg, messages, [_PROBE_TOOL], "auto")
        started = loop.time()
        async with asyncio.timeout(cfg.request_timeout_s):
            stream = await client.chat.completions.create(**request)
            chunks = [(loop.time() - started, chunk) async for chunk in stream]
        _judge_llm(report, cfg, chunks)
    except TimeoutError:
        report.fail(
            LlmTimeout(f"no complete reply within request_timeout_s={cfg.request_timeout_s:g}")
        )
    except openai.OpenAIError as exc:
        report.fail(map_error(exc))
    except AgentdError as exc:
        report.fail(exc)
    finally:
        await client.close()
    return report


def _judge_llm(report: ServiceReport, cfg: Any, chunks: list[tuple[float, Any]]) -> None:
    """Latencies and contract checks of one streamed reply."""
    from agentd.llm.stream import ToolCallAccumulator

    calls = ToolCallAccumulator()
    text, finish, usage, first_s = "", None, None, None
    carrying = 0  # chunks with text or tool-call fragments
    for at_s, chunk in chunks:
        usage = getattr(chunk, "usage", None) or usage
        for choice in chunk.choices or ():
            delta = choice.delta
            if delta.content or delta.tool_calls:
                carrying += 1
                first_s = at_s if first_s is None else first_s
            text += delta.content or ""
            for fragment in delta.tool_calls or ():
                calls.add(fragment)
            finish = choice.finish_reason or finish
    if chunks:
        report.total_ms = chunks[-1][0] * 1000
    if first_s is None:
        report.fail(LlmError("the reply had no text and no tool call"))
        return
    report.first_ms = first_s * 1000
    if finish is None:
        report.fail(LlmError("stream ended without a finish_reason (reply cut off)"))
    if first_s > cfg.first_token_timeout_s:
        report.differences.append(
            f"first token after {first_s:.1f} s, beyond llm.first_token_timeout_s="
            f"{cfg.first_token_timeout_s:g}: the daemon would give up and apologise"
        )
    if chunks and not chunks[0][1].choices:
        report.differences.append("first chunk has empty `choices` (Azure-style; handled)")
    if carrying == 1:
        report.differences.append(
            "the whole reply came in one chunk (Ollama with tools does this; nothing is "
            "spoken before the model has finished)"
        )
    if usage is None:
        report.differences.append("no usage chunk despite stream_options.include_usage")
    _judge_tool_calls(report, calls, text)


def _judge_tool_calls(report: ServiceReport, calls: Any, text: str) -> None:
    pending = calls.calls()
    if not pending:
        report.detail = f"reply: {text[:80]!r}"
        report.differences.append(
            f"the model answered without calling the offered tool {PROBE_TOOL_NAME!r}"
        )
        return
    call = pending[0]
    try:
        arguments = json.loads(call.arguments_json or "{}")
    except ValueError:
        report.fail(LlmError(f"tool call arguments are not JSON: {call.arguments_json[:80]!r}"))
        return
    report.detail = f"tool call {call.name}({json.dumps(arguments)[:80]})"
    if call.name != PROBE_TOOL_NAME:
        report.differences.append(f"the model called an unknown tool {call.name!r}")


async def check_tts(config: Config, api_key: str) -> ServiceReport:
    """GET /v1/models, then one clause at the configured rate, with stitching."""
    from agentd.tts.elevenlabs import ElevenLabsTts
    from agentd.tts.stitching import ReplyStitching

    report = ServiceReport("tts")
    rate_hz = config.audio.playback.rate_hz
    loop = asyncio.get_running_loop()
    try:
        tts = ElevenLabsTts(config.tts, api_key, rate_hz)
    except AgentdError as exc:
        report.fail(exc)
        return report
    try:
        started = loop.time()
        await tts.probe()
        report.connect_ms = (loop.time() - started) * 1000
        stitching = ReplyStitching()
        started = loop.time()
        async with contextlib.aclosing(tts.stream(TTS_PHRASE, stitching=stitching)) as stream:
            pcm = b"".join([chunk async for chunk in stream])
        report.total_ms = (loop.time() - started) * 1000
        report.first_ms = tts.last_first_byte_ms
        seconds = AudioFormat(rate_hz).duration_ms(len(pcm)) / 1000
        report.detail = f"{seconds:.2f} s of pcm_{rate_hz}"
        words = len(TTS_PHRASE.split())
        low, high = (words * s for s in _SECONDS_PER_WORD)
        if not low <= seconds <= high:
            report.fail(
                TtsError(f"{seconds:.2f} s of audio for {words} words: not pcm_{rate_hz} speech")
            )
        if not stitching.previous_request_ids:
            report.differences.append(
                "no request-id response header: request stitching (prosody across clauses) "
                "is unavailable"
            )
    except AgentdError as exc:
        report.fail(exc)
    finally:
        await tts.aclose()
    return report
