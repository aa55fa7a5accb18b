"""The reply pipeline stitches its clauses on the wire (ElevenLabs emulator, real SDK).

A scripted model streams three sentences; the pipeline speaks them through the real
`ElevenLabsTts`. The emulator must see each clause cite the earlier clauses' request
ids and name the clause after it when that one was already known.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from agentd.conversation.reply import ReplyPipeline
from agentd.conversation.turn_record import TurnRecord
from agentd.events import FaultRaised
from agentd.llm.events import LlmDone, TextDelta
from agentd.sim.elevenlabs_server import ElevenLabsEmulator
from agentd.tts.elevenlabs import ElevenLabsTts
from agentd.tts.splitter import ClauseSplitter

pytestmark = pytest.mark.timeout(30)

# Leading spaces: the splitter releases a sentence when it sees what follows it.
SENTENCES = ["Good morning and welcome.", " The lift is on your left.", " Have a nice day."]


class ScriptedLlm:
    """Streams the sentences; all before any audio is done, so next_text is known."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate

    async def stream_reply(self, messages: list[dict[str, Any]]) -> AsyncGenerator[Any, None]:
        for index, sentence in enumerate(SENTENCES):
            if index == 1 and self.gate is not None:
                yield TextDelta(" ")  # releases the first sentence...
                await self.gate.wait()  # ...while the second one is still being written
            yield TextDelta(sentence)
        yield LlmDone("stop", 0, 0, [])


class Speaker:
    def __init__(self) -> None:
        self.written = 0

    def write(self, pcm: bytes) -> None:
        self.written += len(pcm)

    def played_bytes(self) -> int:
        return self.written  # plays instantly: no backpressure in this test


class Fallback:
    def line(self, name: str) -> bytes:
        raise AssertionError(f"fallback line {name} not expected")

    async def render(self, text: str) -> bytes:
        raise AssertionError("fallback voice not expected")


def pipeline(llm: Any, tts: ElevenLabsTts, faults: list[FaultRaised]) -> ReplyPipeline:
    return ReplyPipeline(
        llm=llm,
        tts=tts,
        fallback=Fallback(),
        speaker=Speaker(),
        splitter=ClauseSplitter(min_chars=5),
        report_fault=faults.append,
        record=TurnRecord(),
        bytes_per_s=32000.0,
    )


async def test_each_clause_cites_the_earlier_ones_and_names_the_next(
    emulator: ElevenLabsEmulator, make_tts: Any
) -> None:
    faults: list[FaultRaised] = []
    await pipeline(ScriptedLlm(), make_tts(), faults).run([])
    assert not faults
    texts = [r.text for r in emulator.requests]
    assert texts == [s.strip() for s in SENTENCES]
    ids = [r.request_id for r in emulator.requests]
    assert [r.previous_request_ids for r in emulator.requests] == [None, ids[:1], ids[:2]]
    assert [r.next_text for r in emulator.requests] == [texts[1], texts[2], None]


async def test_next_text_only_when_already_known_and_replies_do_not_share_ids(
    emulator: ElevenLabsEmulator, make_tts: Any
) -> None:
    gate = asyncio.Event()
    tts = make_tts()
    faults: list[FaultRaised] = []
    reply = asyncio.create_task(pipeline(ScriptedLlm(gate), tts, faults).run([]))
    await emulator.wait_until(lambda e: len(e.requests) == 1 and e.requests[0].completed)
    gate.set()
    await reply
    assert emulator.requests[0].next_text is None  # the model had not written it yet
    first_reply_ids = {r.request_id for r in emulator.requests}
    await pipeline(ScriptedLlm(), tts, faults).run([])
    second = emulator.requests[3:]
    assert second[0].previous_request_ids is None
    cited = {i for r in second for i in r.previous_request_ids or []}
    assert cited and not cited & first_reply_ids
