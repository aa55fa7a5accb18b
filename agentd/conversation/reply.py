"""One spoken reply: LLM tokens -> clauses -> TTS audio -> speaker, fully streamed.

The first clause goes to TTS as soon as the splitter releases it, while the model is
still writing; each clause's audio goes to the speaker chunk by chunk. The pipeline
remembers which audio bytes belong to which clause, so after a cancel or barge-in the
history keeps only what the visitor actually heard. Failures never leave silence: an
LLM failure appends the local "sorry" line, a TTS failure speaks the rest of the reply
with the local fallback voice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from agentd.conversation.ports import (
    ChatMessage,
    ClauseSplitter,
    FallbackVoice,
    LlmClient,
    Speaker,
    TtsClient,
)
from agentd.conversation.turn_record import TurnRecord
from agentd.errors import AgentdError, LlmError, TtsError
from agentd.events import FaultRaised, now_ms
from agentd.tts.speakable import SpeakableStream, speakable
from agentd.tts.stitching import ReplyStitching

log = logging.getLogger("agentd.conversation.reply")

MAX_AHEAD_S = 6.0  # synthesized-but-unplayed audio kept ahead of the speaker


@dataclass(slots=True)
class SpokenClause:
    text: str
    start_byte: int
    end_byte: int


@dataclass(slots=True)
class ReplyResult:
    full_text: str = ""
    new_messages: list[ChatMessage] = field(default_factory=list)
    error: AgentdError | None = None


class ReplyPipeline:
    """Runs one reply; create a new one per turn."""

    def __init__(
        self,
        *,
        llm: LlmClient,
        tts: TtsClient,
        fallback: FallbackVoice,
        speaker: Speaker,
        splitter: ClauseSplitter,
        report_fault: Callable[[FaultRaised], None],
        record: TurnRecord,
        bytes_per_s: float,
    ) -> None:
        self._llm = llm
        self._tts = tts
        self._fallback = fallback
        self._speaker = speaker
        self._splitter = splitter
        self._report_fault = report_fault
        self.record = record
        self._bytes_per_s = bytes_per_s
        self._clauses: list[SpokenClause] = []
        self._written = 0
        self._start_played = speaker.played_bytes()
        self._tts_failed = False
        # Prosody across this reply's clauses (request stitching); never shared by replies.
        self._stitching = ReplyStitching()
        self._next_text = ""  # the clause after the one being spoken, when already known
        self.discard = False  # set when the turn is merged into the next one: keep no history
        # A speculative reply (the visitor only paused): its audio is kept back until
        # release(), so nothing plays before the turn-end policy says the turn is over.
        self.speculative = False
        self._held: bytearray | None = None
        self._released = asyncio.Event()
        self._released.set()
        self.result = ReplyResult()

    # --- the pipeline ---------------------------------------------------------------

    async def run(self, messages: list[ChatMessage]) -> ReplyResult:
        """Speak the model's reply to `messages`; cancellation stops both streams."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        llm_task = asyncio.create_task(self._pump_llm(messages, queue), name="reply-llm")
        try:
            await self._speak_clauses(queue)
            await llm_task
            if not self._written:
                # The model said nothing speakable (empty reply, or only a tool call):
                # never leave the visitor in silence.
                self.record.nothing_to_say = True
                await self.speak_line("sorry_line")
        except LlmError as exc:
            await self._on_llm_error(exc)
        finally:
            if not llm_task.done():
                llm_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, AgentdError):
                    await llm_task
        return self.result

    async def speak_text(self, text: str) -> ReplyResult:
        """Announce fixed text (MQTT `say`): TTS with the fallback voice as a safety net."""
        for clause in self._split_all(text):
            await self._speak_one(clause, previous_text="")
        self.result.full_text = text
        return self.result

    async def speak_line(self, name: str) -> None:
        """Play a pre-rendered fallback line (sorry, not heard, offline)."""
        self._write(self._fallback.line(name))
        self.record.used_fallback = True

    def hold(self) -> None:
        """Keep this reply's audio back (speculation) until `release()`."""
        self.speculative = True
        self._held = bytearray()
        self._released.clear()

    def release(self) -> None:
        """The turn has ended: what was kept back plays now, the rest as it comes."""
        held, self._held = self._held, None
        self._released.set()
        if held:
            self._speaker.write(bytes(held))

    @property
    def held(self) -> bool:
        return self._held is not None

    async def wait_released(self) -> None:
        await self._released.wait()

    # --- LLM side -------------------------------------------------------------------

    async def _pump_llm(
        self, messages: list[ChatMessage], queue: asyncio.Queue[str | None]
    ) -> None:
        from agentd.llm.events import (
            LlmDone,
            RequestStarted,
            TextDelta,
            ToolCallStarted,
            UsageReported,
        )

        self.record.llm_request_ms = now_ms()
        parts: list[str] = []
        spoken = SpeakableStream()  # markup and control characters out, across deltas
        try:
            # aclosing: a cancelled reply closes the HTTP stream now, not at GC time.
            async with contextlib.aclosing(self._llm.stream_reply(messages)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        if not event.text:
                            continue
                        self.record.mark_first("llm_first_token_ms", now_ms())
                        parts.append(event.text)
                        for clause in self._splitter.feed(spoken.feed(event.text)):
                            queue.put_nowait(clause)
                    elif isinstance(event, ToolCallStarted):
                        self.record.tool_calls += 1
                    elif isinstance(event, RequestStarted):
                        self.record.llm_requests += 1
                    elif isinstance(event, UsageReported):
                        # Per request, as it comes: a reply cut short keeps what it used.
                        self.record.llm_usage_reports += 1
                        self.record.prompt_tokens += event.prompt_tokens
                        self.record.completion_tokens += event.completion_tokens
                    elif isinstance(event, LlmDone):
                        self.result.new_messages = list(event.new_messages)
            for clause in [*self._splitter.feed(spoken.flush()), *self._splitter.flush()]:
                queue.put_nowait(clause)
        finally:
            self.result.full_text = "".join(parts)
            queue.put_nowait(None)

    async def _on_llm_error(self, exc: LlmError) -> None:
        self.result.error = exc
        self._report_fault(
            FaultRaised(exc.error_kind, str(exc), link="llm", turn_id=self.record.turn_id)
        )
        await self.speak_line("sorry_line")

    # --- TTS side -------------------------------------------------------------------

    async def _speak_clauses(self, queue: asyncio.Queue[str | None]) -> None:
        previous = ""
        ahead: list[str | None] = []  # a clause taken early to be named as next_text
        while (clause := ahead.pop() if ahead else await queue.get()) is not None:
            text = speakable(clause)
            if not text:
                continue
            if not queue.empty():
                ahead.append(queue.get_nowait())
            self._next_text = speakable(ahead[0] or "") if ahead else ""
            await self._wait_for_room()
            await self._speak_one(text, previous_text=previous)
            previous = text

    async def _speak_one(self, text: str, *, previous_text: str) -> None:
        # Registered before streaming: a cancel mid-clause must still see its heard part.
        clause = SpokenClause(text, self._written, self._written)
        self._clauses.append(clause)
        if not self._tts_failed:
            try:
                await self._stream_tts(text, previous_text)
            except TtsError as exc:
                self._tts_failed = True
                self.result.error = exc
                self.record.used_fallback = True
                self._report_fault(
                    FaultRaised(exc.error_kind, str(exc), link="tts", turn_id=self.record.turn_id)
                )
                # The clause may be half spoken by the cloud voice; say it whole locally.
        if self._tts_failed:
            self._write(await self._fallback.render(text))

    async def _stream_tts(self, text: str, previous_text: str) -> None:
        self.record.mark_first("tts_request_ms", now_ms())
        self.record.tts_characters += len(text)
        stream = self._tts.stream(
            text,
            previous_text=previous_text,
            next_text=self._next_text,
            stitching=self._stitching,
        )
        async with contextlib.aclosing(stream) as chunks:
            async for chunk in chunks:
                if chunk:
                    self.record.mark_first("tts_first_byte_ms", now_ms())
                    self._write(chunk)

    async def _wait_for_room(self) -> None:
        """Backpressure: keep at most MAX_AHEAD_S of synthesized audio unplayed.

        TTS runs faster than real time; without this a long reply would be synthesized
        (and paid for) in full even if the visitor cancels after one sentence, and the
        device queue would fill.
        """
        limit = int(self._bytes_per_s * MAX_AHEAD_S)
        # The play position lives on the device thread: poll it, 20 times a second.
        while self._written - (self._speaker.played_bytes() - self._start_played) > limit:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    def _write(self, pcm: bytes) -> None:
        if not pcm:
            return
        if self._held is not None:
            self._held += pcm
        else:
            self._speaker.write(pcm)
        self._written += len(pcm)
        if self._clauses:
            self._clauses[-1].end_byte = self._written
        self.record.audio_out_bytes += len(pcm)

    def _split_all(self, text: str) -> list[str]:
        clauses = [*self._splitter.feed(text), *self._splitter.flush()]
        return [c for c in (speakable(c) for c in clauses) if c]

    # --- what was heard -------------------------------------------------------------

    def played_text(self) -> str:
        """The reply text the visitor heard: whole clauses, plus the heard part of the last."""
        heard = self._speaker.played_bytes() - self._start_played
        words: list[str] = []
        for clause in self._clauses:
            if clause.end_byte == clause.start_byte:
                break  # requested, nothing of it written yet
            if heard >= clause.end_byte:
                words.extend(clause.text.split())
            elif heard > clause.start_byte:
                share = (heard - clause.start_byte) / max(1, clause.end_byte - clause.start_byte)
                clause_words = clause.text.split()
                words.extend(clause_words[: int(len(clause_words) * share)])
                break
            else:
                break
        return " ".join(words)

    @property
    def bytes_written(self) -> int:
        return self._written
