"""ReplyPipeline alone: LLM deltas -> clauses -> TTS -> speaker, with fake parts."""

from __future__ import annotations

import asyncio

import pytest

from agentd.conversation import reply as reply_module
from agentd.conversation.reply import MAX_AHEAD_S, ReplyPipeline
from agentd.conversation.turn_record import TurnRecord, decide_outcome
from agentd.errors import LlmError, TtsError
from agentd.events import FaultRaised, Outcome
from agentd.llm.events import (
    LlmDone,
    RequestStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReported,
)
from agentd.tts.splitter import ClauseSplitter
from tests.conversation.fakes import (
    LINE_PCM,
    FakeFallbackVoice,
    FakeLlmClient,
    FakeSpeaker,
    FakeTtsClient,
    LlmStep,
    default_pcm,
    fallback_pcm,
)
from tests.conversation.rig import MIN_CLAUSE_CHARS, OUT_FORMAT, settle, until

MESSAGES: list[dict[str, object]] = [{"role": "user", "content": "hello"}]


class Pipe:
    def __init__(self, bytes_per_s: float = OUT_FORMAT.bytes_per_s) -> None:
        self.llm = FakeLlmClient()
        self.tts = FakeTtsClient()
        self.fallback = FakeFallbackVoice()
        self.speaker = FakeSpeaker()
        self.faults: list[FaultRaised] = []
        self.record = TurnRecord()
        self.reply = ReplyPipeline(
            llm=self.llm,
            tts=self.tts,
            fallback=self.fallback,
            speaker=self.speaker,
            splitter=ClauseSplitter(MIN_CLAUSE_CHARS),
            report_fault=self.faults.append,
            record=self.record,
            bytes_per_s=bytes_per_s,
        )

    def start(self) -> asyncio.Task[reply_module.ReplyResult]:
        return asyncio.create_task(self.reply.run(MESSAGES))


async def test_first_clause_goes_to_tts_before_the_model_finishes() -> None:
    pipe = Pipe()
    more = asyncio.Event()
    pipe.llm.script(
        TextDelta("Hello there, "),
        more,
        TextDelta("the museum opens at nine."),
        LlmDone("stop", 12, 9),
    )
    task = pipe.start()
    await until(lambda: len(pipe.tts.requests) == 1, "first TTS request")
    await settle()
    assert pipe.llm.finished == 0  # the model is still writing
    assert pipe.tts.requests[0].text == "Hello there,"
    assert bytes(pipe.speaker.written) == default_pcm("Hello there,")

    more.set()
    result = await task
    assert [r.text for r in pipe.tts.requests] == ["Hello there,", "the museum opens at nine."]
    assert pipe.tts.requests[1].previous_text == "Hello there,"
    assert pipe.tts.requests[0].next_text == ""  # not yet written when it was requested
    assert result.full_text == "Hello there, the museum opens at nine."
    assert (pipe.record.prompt_tokens, pipe.record.completion_tokens) == (12, 9)
    assert pipe.record.tts_characters == len("Hello there,the museum opens at nine.")
    assert pipe.record.llm_first_token_ms is not None
    assert pipe.record.tts_first_byte_ms is not None
    assert decide_outcome(pipe.record) is Outcome.OK
    assert pipe.faults == []


async def test_played_text_counts_only_heard_clauses() -> None:
    pipe = Pipe()
    first, second = "One two three four,", "five six seven eight."
    pipe.llm.script(TextDelta(f"{first} {second}"), LlmDone("stop", 0, 0))
    await pipe.start()
    one, two = len(default_pcm(first)), len(default_pcm(second))
    assert len(pipe.speaker.written) == one + two

    assert pipe.reply.played_text() == ""  # written is not heard
    pipe.speaker.play(one // 2)
    assert pipe.reply.played_text() == "One two"  # half the bytes: half the words
    pipe.speaker.play(one - one // 2)
    assert pipe.reply.played_text() == first
    pipe.speaker.play(two * 3 // 4)
    assert pipe.reply.played_text() == f"{first} five six seven"
    pipe.speaker.play_all()
    assert pipe.reply.played_text() == f"{first} {second}"


async def test_played_text_ignores_audio_played_before_the_reply() -> None:
    pipe = Pipe()
    pipe.speaker.write(b"\x09" * 1000)  # an earlier reply's tail
    pipe.speaker.play_all()
    pipe.reply = ReplyPipeline(
        llm=pipe.llm,
        tts=pipe.tts,
        fallback=pipe.fallback,
        speaker=pipe.speaker,
        splitter=ClauseSplitter(MIN_CLAUSE_CHARS),
        report_fault=pipe.faults.append,
        record=pipe.record,
        bytes_per_s=OUT_FORMAT.bytes_per_s,
    )
    pipe.llm.script(TextDelta("Alpha beta gamma delta."), LlmDone("stop", 0, 0))
    await pipe.start()
    assert pipe.reply.played_text() == ""
    pipe.speaker.play(len(default_pcm("Alpha beta gamma delta.")) // 2)
    assert pipe.reply.played_text() == "Alpha beta"


@pytest.fixture
def fast_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backpressure loop polls every 50 ms of wall clock: make each poll one loop turn."""
    real_sleep = asyncio.sleep

    async def one_turn(_delay: float) -> None:
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", one_turn)  # reply.py polls with asyncio.sleep


@pytest.mark.usefixtures("fast_poll")
async def test_backpressure_waits_for_the_speaker_and_not_longer() -> None:
    # 100 B/s: MAX_AHEAD_S (6 s) of room is 600 bytes; each clause below is 2,000.
    pipe = Pipe(bytes_per_s=100)
    limit = int(100 * MAX_AHEAD_S)
    clauses = ["First sentence here.", "Second sentence here.", "Third sentence here."]
    pipe.llm.script(TextDelta(" ".join(clauses)), LlmDone("stop", 0, 0))
    task = pipe.start()
    await until(lambda: len(pipe.tts.requests) == 1, "first clause requested")
    await settle(50)
    assert len(pipe.tts.requests) == 1  # held back: 2,000 bytes unplayed > 600
    assert not task.done()

    pipe.speaker.play(len(pipe.speaker.written) - limit)  # exactly the limit left unplayed
    await until(lambda: len(pipe.tts.requests) == 2, "second clause requested")
    await settle(50)
    assert len(pipe.tts.requests) == 2

    pipe.speaker.play_all()
    await until(lambda: len(pipe.tts.requests) == 3, "third clause requested")
    pipe.speaker.play_all()
    await task
    assert [r.text for r in pipe.tts.requests] == clauses


async def test_backpressure_does_not_hold_back_under_the_limit() -> None:
    # No fast_poll here: if the pipeline ever waited for room, this test would have to
    # wait 50 ms of wall clock per poll and `settle` would not be enough.
    pipe = Pipe()
    text = " ".join(f"Sentence number {i} is here." for i in range(20))
    pipe.llm.script(TextDelta(text), LlmDone("stop", 0, 0))
    task = pipe.start()
    await settle(100)
    assert task.done()
    assert len(pipe.tts.requests) == 20


async def test_empty_reply_plays_the_sorry_line() -> None:
    pipe = Pipe()
    pipe.llm.script(ToolCallStarted("c1", "call_staff", "{}"), LlmDone("tool_calls", 5, 0))
    result = await pipe.start()
    assert pipe.tts.requests == []
    assert pipe.fallback.lines == ["sorry_line"]
    assert bytes(pipe.speaker.written) == LINE_PCM
    assert pipe.record.nothing_to_say
    assert pipe.record.tool_calls == 1
    assert decide_outcome(pipe.record) is Outcome.EMPTY
    assert result.full_text == ""
    assert pipe.reply.played_text() == ""  # the line is not the model's text


async def test_markup_only_reply_counts_as_nothing_to_say() -> None:
    pipe = Pipe()
    pipe.llm.script(TextDelta("**  **"), TextDelta(" <break/> "), LlmDone("stop", 0, 0))
    await pipe.start()
    assert pipe.tts.requests == []
    assert pipe.fallback.lines == ["sorry_line"]
    assert decide_outcome(pipe.record) is Outcome.EMPTY


async def test_tts_failure_after_first_clause_speaks_the_rest_locally() -> None:
    pipe = Pipe()
    first, second, third = "Welcome to the museum,", "the cafe is upstairs.", "Enjoy it."
    pipe.llm.script(TextDelta(f"{first} {second} {third}"), LlmDone("stop", 0, 0))
    pipe.tts.script(default_pcm(first))
    pipe.tts.script(b"\x05" * 300, TtsError("socket closed"))
    await pipe.start()
    assert [r.text for r in pipe.tts.requests] == [first, second]  # not asked again
    assert pipe.fallback.rendered == [second, third]
    expected = default_pcm(first) + b"\x05" * 300 + fallback_pcm(second) + fallback_pcm(third)
    assert bytes(pipe.speaker.written) == expected
    assert [(f.link, f.error_kind) for f in pipe.faults] == [("tts", "tts")]
    assert pipe.faults[0].turn_id == pipe.record.turn_id
    assert decide_outcome(pipe.record) is Outcome.FALLBACK


async def test_llm_failure_mid_reply_appends_the_sorry_line() -> None:
    pipe = Pipe()
    pipe.llm.script(TextDelta("Let me see, "), LlmError("connection reset"))
    result = await pipe.start()
    assert [r.text for r in pipe.tts.requests] == ["Let me see,"]
    assert pipe.fallback.lines == ["sorry_line"]
    assert bytes(pipe.speaker.written) == default_pcm("Let me see,") + LINE_PCM
    assert [(f.link, f.error_kind) for f in pipe.faults] == [("llm", "llm")]
    assert isinstance(result.error, LlmError)
    assert not pipe.record.nothing_to_say
    assert decide_outcome(pipe.record) is Outcome.FALLBACK


async def test_cancel_closes_both_streams_and_keeps_the_heard_part() -> None:
    pipe = Pipe()
    stall_tts, stall_llm = asyncio.Event(), asyncio.Event()
    first = "Alpha beta gamma delta,"
    pipe.llm.script(TextDelta(f"{first} "), stall_llm, TextDelta("never said."))
    pipe.tts.script(default_pcm(first)[:1000], stall_tts, default_pcm(first)[1000:])
    task = pipe.start()
    await until(lambda: len(pipe.speaker.written) == 1000, "first audio written")
    pipe.speaker.play(500)  # about a fifth of the clause's 2,300 bytes
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pipe.llm.closed == 1
    assert pipe.tts.closed == 1
    heard = pipe.reply.played_text()
    assert heard and first.startswith(heard) and heard != first  # a part, not the clause


# --- what the reply cost: every request, every usage that came -----------------------


def tool_round_then(*second_round: LlmStep) -> tuple[LlmStep, ...]:
    """A first request that calls a tool (its usage reported), then a second request."""
    return (
        RequestStarted(),
        ToolCallStarted("c1", "opening_hours", "{}"),
        UsageReported(40, 6),
        ToolCallFinished("c1", "opening_hours", True, "{}"),
        RequestStarted(),
        *second_round,
    )


async def test_a_reply_counts_each_request_and_the_usage_each_reported() -> None:
    pipe = Pipe()
    pipe.llm.script(
        *tool_round_then(TextDelta("We open at nine."), UsageReported(60, 5)),
        LlmDone("stop", 100, 11),
    )
    await pipe.start()
    record = pipe.record
    assert (record.llm_requests, record.prompt_tokens, record.completion_tokens) == (2, 100, 11)
    metrics = record.metrics(OUT_FORMAT.bytes_per_s, 32_000.0)
    assert (metrics.llm_requests, metrics.llm_requests_unmetered) == (2, 0)
    assert (metrics.llm_prompt_tokens, metrics.llm_completion_tokens) == (100, 11)


async def test_a_reply_cut_short_keeps_what_its_finished_requests_used() -> None:
    """Cancelled in its second request: both requests count, the first one's usage came,
    the second one's never will (its usage chunk is the stream's last)."""
    pipe = Pipe()
    stall = asyncio.Event()
    pipe.llm.script(*tool_round_then(TextDelta("We open "), stall))
    task = pipe.start()
    await until(lambda: pipe.record.llm_requests == 2, "second request")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    metrics = pipe.record.metrics(OUT_FORMAT.bytes_per_s, 32_000.0)
    assert (metrics.llm_requests, metrics.llm_requests_unmetered) == (2, 1)
    assert (metrics.llm_prompt_tokens, metrics.llm_completion_tokens) == (40, 6)


async def test_requests_name_the_next_clause_and_stitch_within_one_reply_only() -> None:
    pipe = Pipe()
    clauses = ["The cafe is upstairs,", "the shop is downstairs.", "Lockers are by the door."]
    pipe.llm.script(TextDelta(" ".join(clauses)), LlmDone("stop", 0, 0))
    await pipe.start()
    requests = pipe.tts.requests
    assert [r.text for r in requests] == clauses
    assert [r.next_text for r in requests] == [clauses[1], clauses[2], ""]
    assert [r.previous_text for r in requests] == ["", clauses[0], clauses[1]]
    stitching = requests[0].stitching
    assert stitching is not None
    assert all(r.stitching is stitching for r in requests)
    assert [r.cited_ids for r in requests] == [[], ["req-1"], ["req-1", "req-2"]]

    second = Pipe()
    second.tts = pipe.tts  # the same TTS link, a new reply
    second.reply = ReplyPipeline(
        llm=second.llm,
        tts=pipe.tts,
        fallback=second.fallback,
        speaker=second.speaker,
        splitter=ClauseSplitter(MIN_CLAUSE_CHARS),
        report_fault=second.faults.append,
        record=second.record,
        bytes_per_s=OUT_FORMAT.bytes_per_s,
    )
    second.llm.script(TextDelta("Anything else?"), LlmDone("stop", 0, 0))
    await second.start()
    assert requests[-1].text == "Anything else?"
    assert requests[-1].stitching is not stitching
    assert requests[-1].cited_ids == []  # ids never cross replies
