"""Model-output fuzzing: whatever the model (or a broken server) sends, agentd speaks clean
text or a fallback, never crashes, and keeps memory bounded.

Layers: hypothesis over the text path the daemon runs on every delta (SpeakableStream ->
ClauseSplitter -> speakable sanitizer) and over ToolRegistry.execute; ChatLlm against
the OpenAI emulator for a huge reply (tracemalloc peak); and the whole daemon
(SimulatedKiosk) with the emulator's output faults, checking what reached the TTS.
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing
import tracemalloc
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentd.config._loader import build
from agentd.config.sections_llm import LlmConfig
from agentd.errors import LlmError
from agentd.llm import ChatLlm
from agentd.llm.events import LlmDone, TextDelta
from agentd.llm.tool_catalog import tools_from_config
from agentd.llm.tools import Tool, ToolRegistry
from agentd.sim.openai_server import OpenAiEmulator
from agentd.sim.speech import tools_available
from agentd.tts.speakable import MAX_CHARS, SpeakableStream, speakable
from agentd.tts.splitter import ClauseSplitter

pytestmark = pytest.mark.timeout(120)
FUZZ = settings(
    max_examples=500,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

MARKUP = [
    '<speak><break time="3s"/></speak>',
    "<phoneme alphabet='ipa' ph='x'>",
    "<!-- c -->",
    "<?xml version='1.0'?>",
    "**bold**",
    "# head\n",
    "`code`",
    "```py\n",
    "[l](http://x)",
    "| a | b |\n|---|---|\n",
    "\x1b[31m",
    "\x00",
    "\u202e",
    "\u200b",
    "\ufeff",
    "\U0001f600",
    "\ud7ff",
    "< >",
    "<<<>>>",
    "\r\n",
    "\t",
]
text_pieces = st.one_of(
    st.text(max_size=30),
    st.sampled_from(MARKUP),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.just("word " * 200),
)


def _unsafe(text: str) -> list[str]:
    """Characters that must never reach TTS: controls, format chars, markup brackets."""
    return [
        ch
        for ch in text
        if ch in "<>\n\r\t" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn")
    ]


def spoken_clauses(deltas: list[str], min_chars: int = 20) -> list[str]:
    """The reply pipeline's per-delta text path: SpeakableStream, the splitter, speakable()."""
    speak_filter = SpeakableStream()
    splitter = ClauseSplitter(min_chars)
    clauses: list[str] = []
    for delta in deltas:
        clauses += splitter.feed(speak_filter.feed(delta))
    clauses += splitter.feed(speak_filter.flush())
    clauses += splitter.flush()
    return [c for c in (speakable(c) for c in clauses) if c]


@FUZZ
@given(st.lists(text_pieces, max_size=30))
def test_text_path_never_passes_markup_or_controls(deltas: list[str]) -> None:
    for clause in spoken_clauses(deltas):
        assert not _unsafe(clause), (clause, _unsafe(clause))
        assert len(clause) <= MAX_CHARS
        assert clause == clause.strip()


@FUZZ
@given(
    st.lists(st.sampled_from(["Hello", " there", ",", " friend", ".", " Bye", "!"]), max_size=40)
)
def test_text_path_keeps_plain_words(deltas: list[str]) -> None:
    """Not vacuous: plain words survive, in order (the safety above is not 'say nothing')."""
    said = "".join(spoken_clauses(deltas))
    assert [c for c in said if c.isalpha()] == [c for c in "".join(deltas) if c.isalpha()]


# --- tools ----------------------------------------------------------------------------


async def _huge(_args: dict[str, Any]) -> Any:
    return {"rows": ["x" * 1000] * 5000}


async def _fails(_args: dict[str, Any]) -> Any:
    raise RuntimeError("database on fire " * 1000)


async def _hangs(_args: dict[str, Any]) -> Any:
    await asyncio.Event().wait()


ANY_OBJECT = {"type": "object"}
REGISTRY_TOOLS = [
    Tool("huge", "returns megabytes", ANY_OBJECT, _huge),
    Tool("fails", "raises", ANY_OBJECT, _fails),
    Tool("hangs", "never returns", ANY_OBJECT, _hangs, timeout_s=0.05),
    Tool(
        "day",
        "strict",
        {
            "type": "object",
            "properties": {"day": {"type": "string", "maxLength": 10}},
            "required": ["day"],
            "additionalProperties": False,
        },
        _huge,
    ),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
arguments = st.one_of(
    st.text(max_size=50),
    json_values.map(json.dumps),
    st.just('{"day": "tomor'),
    st.just("{" * 5000),
    st.just("[" * 100_000),
)


@FUZZ
@given(st.sampled_from(["huge", "fails", "day", "nope", "", "x" * 10_000]) | st.text(), arguments)
async def test_tool_calls_never_raise_and_stay_small(name: str, args: str) -> None:
    registry = ToolRegistry(REGISTRY_TOOLS)
    result = await registry.execute(name, args)
    decoded = json.loads(result.result_json)
    assert len(result.result_json) <= 20_000, "a tool result is capped before it reaches the model"
    if name not in registry.names:
        assert not result.ok and "unknown tool" in decoded["error"]


async def test_failing_and_hanging_tools_give_clear_errors() -> None:
    registry = ToolRegistry(REGISTRY_TOOLS)
    failed = await registry.execute("fails", "{}")
    hung = await registry.execute("hangs", "{}")
    huge = await registry.execute("huge", "{}")
    assert not failed.ok and "fails failed" in failed.result_json
    assert "fire" not in failed.result_json  # a crash's text is not fed back to the model
    assert not hung.ok and "timed out" in hung.result_json
    assert huge.ok and len(huge.result_json) <= 20_000


# --- ChatLlm against the emulator -------------------------------------------------------


def _llm_config(base_url: str) -> LlmConfig:
    return build(
        LlmConfig,
        {
            "base_url": base_url,
            "max_retries": 0,
            "chunk_gap_timeout_s": 2.0,
            "tools": [{"name": "opening_hours", "kind": "opening_hours"}],
        },
        "llm",
    )


async def _stream(llm: ChatLlm, text: str) -> tuple[str, LlmDone | None]:
    """The reply as the pipeline passes it on: ChatLlm's deltas through SpeakableStream.

    The spoken text grows as one buffer: the test's own copy of every delta would
    otherwise dominate the memory the huge-reply test measures.
    """
    said = io.StringIO()
    spoken = SpeakableStream()
    done = None
    async for event in llm.stream_reply([{"role": "user", "content": text}]):
        if isinstance(event, TextDelta):
            said.write(spoken.feed(event.text))
        elif isinstance(event, LlmDone):
            done = event
    said.write(spoken.flush())
    return said.getvalue(), done


HUGE_CHARS = 40_000  # ~10k SSE chunks; tracemalloc makes each one slow


def _serve_huge_reply(conn: Any) -> None:
    """Child process: an OpenAI emulator streaming a huge reply with control characters."""

    async def serve() -> None:
        emulator = OpenAiEmulator(api_key="k")
        await emulator.start()
        emulator.faults.huge_reply_chars = HUGE_CHARS
        emulator.faults.control_chars = True
        conn.send(emulator.base_url)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
        await emulator.stop()

    asyncio.run(serve())


async def test_huge_reply_streams_in_bounded_memory() -> None:
    # The emulator runs in its own process: tracemalloc counts every thread of this one, and
    # the server's buffers are the cloud's memory, not the kiosk's.
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve_huge_reply, args=(child,), daemon=True)
    server.start()
    try:
        base_url = await asyncio.to_thread(parent.recv)
        llm = ChatLlm(_llm_config(base_url), "k", ToolRegistry())
        try:
            # Once untraced first: the SDK's lazy imports and pydantic schema building on
            # first use (~1 MB with openai 3.x) are start-up cost, not growth with the reply.
            await _stream(llm, "talk forever")
            tracemalloc.start()
            said, done = await _stream(llm, "talk forever")
            _size, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            await llm.aclose()
    finally:
        parent.send("stop")
        await asyncio.to_thread(server.join, 10)
    assert done is not None and len(said) >= HUGE_CHARS * 0.95
    assert not [c for c in said if unicodedata.category(c) == "Cc"]
    # The text held a few times over (deltas, joined text, history message) plus the SDK's
    # per-chunk objects: linear in the reply, nowhere near the MBs a leak per chunk makes.
    assert peak < 60 * HUGE_CHARS, f"peak {peak / 1e6:.1f} MB"


@pytest.mark.parametrize(
    ("fault", "value"),
    [
        ("malformed_after_chunks", 3),
        ("drop_after_chunks", 4),
        ("bad_tool_arguments", True),
        ("unknown_tool_name", "rm_rf_everything"),
        ("empty_reply", True),
    ],
)
async def test_broken_model_output_is_an_llm_error_or_a_reply(fault: str, value: Any) -> None:
    from agentd.sim.scenario import scenario_from_dict

    scenario = scenario_from_dict(
        {
            "turn": [
                {
                    "visitor": "Open tomorrow?",
                    "reply": "Nine to five.",
                    "tool": "opening_hours",
                    "tool_arguments": {"day": "tomorrow"},
                }
            ]
        }
    )
    emulator = OpenAiEmulator(scenario, api_key="k")
    await emulator.start()
    setattr(emulator.faults, fault, value)
    llm = ChatLlm(
        _llm_config(emulator.base_url),
        "k",
        tools_from_config(_llm_config(emulator.base_url), lambda *_a: None),
    )
    try:
        said, done = await _stream(llm, "Open tomorrow?")
    except LlmError as exc:
        assert str(exc)  # a clear message, the reply pipeline turns it into the sorry line
        return
    finally:
        await llm.aclose()
        await emulator.stop()
    assert done is not None
    tool_results = [m for m in done.new_messages if m.get("role") == "tool"]
    if fault in ("bad_tool_arguments", "unknown_tool_name"):
        assert tool_results and "error" in tool_results[0]["content"]
        assert not _unsafe(said)


# --- the whole daemon -------------------------------------------------------------------

KIOSK_FAULTS: list[tuple[str, Any]] = [
    ("control_chars", True),
    ("unknown_tool_name", "shell"),
    ("bad_tool_arguments", True),
    ("malformed_after_chunks", 3),
]


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.skipif(not tools_available(), reason="espeak-ng and sox are needed")
async def test_daemon_speaks_only_clean_text_whatever_the_model_sends(tmp_path: Path) -> None:
    from agentd.sim.harness import SimulatedKiosk
    from agentd.sim.stack import ServiceProfile

    turns = [
        {
            "visitor": "Open on Saturday?",
            "reply": 'Ten <break time="2s"/> until **two**. <speak>Bye</speak>',
            "tool": "opening_hours",
            "tool_arguments": {"day": "saturday"},
            "pause_before_ms": 300,
        }
        for _ in KIOSK_FAULTS
    ]
    scenario = tmp_path / "fuzz.toml"
    scenario.write_text(_toml({"name": "fuzz", "tail_ms": 1000, "turn": turns}))
    profile = ServiceProfile(stt_final_ms=100, llm_ttft_ms=100, llm_chunk_ms=5, tts_ttfb_ms=50)
    kiosk = SimulatedKiosk(scenario, tmp_path, profile=profile)
    await kiosk.start()
    stack, mic = kiosk.stack, kiosk.mic
    try:
        seen = 0
        while not mic.finished.is_set():
            if len(mic.spans) > seen:
                seen = len(mic.spans)
                stack.llm.faults.reset()
                fault, value = KIOSK_FAULTS[seen - 1]
                setattr(stack.llm.faults, fault, value)
            await asyncio.sleep(0.02)
        await kiosk.wait_for(lambda: kiosk.conversation.state.value == "idle", 15)
        texts = [r.text for r in stack.tts.requests]
    finally:
        assert await kiosk.stop() == 0
    outcomes = [m.outcome for m in kiosk.observed.turns]
    assert len(outcomes) == len(KIOSK_FAULTS), outcomes
    assert "fallback" in outcomes  # the malformed stream became the sorry line
    assert texts, "the model's words did reach the TTS"
    for text in texts:
        assert not _unsafe(text), text
        assert "break" not in text and "speak>" not in text and "**" not in text
    assert any("Ten" in t for t in texts)


def _toml(data: dict[str, Any]) -> str:
    from agentd.bench.soak import scenario_toml

    return scenario_toml({"noise_db": -55.0, **data})
