"""The one reply in flight: answer a turn, announce text, play a local line; cancel it.

At most one reply runs at a time, as one asyncio task around a `ReplyPipeline`. This
module starts it, keeps what the visitor heard in the history when it ends (or is
cancelled), reports the turn's metrics once, and tells the turn state machine when the
reply is over. Cancelling flushes the speaker at once - queued audio and the device
buffer - before the task even sees its CancelledError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine

from agentd.conversation.parts import ConversationParts
from agentd.conversation.ports import Reporter
from agentd.conversation.reply import ReplyPipeline
from agentd.conversation.turn_record import TurnRecord
from agentd.logs import fields, log_transcript

log = logging.getLogger("agentd.turn")

ReplyFactory = Callable[..., ReplyPipeline]  # the bench swaps in its seed design


class Replies:
    """Owns the reply task; see the module docstring. Loop thread only."""

    def __init__(
        self,
        *,
        parts: Callable[[], ConversationParts],  # current parts: a reload swaps them
        reporter: Reporter,
        on_ended: Callable[[], None],
        factory: ReplyFactory = ReplyPipeline,
    ) -> None:
        self._parts = parts
        self._reporter = reporter
        self._on_ended = on_ended
        self.factory = factory
        self.log_transcripts = False
        self.current: ReplyPipeline | None = None
        self._task: asyncio.Task[None] | None = None
        self.turns_completed = 0  # replies to visitor turns that were not dropped unheard
        self.speculations_dropped = 0  # speculative replies the visitor never heard
        self.replies_superseded = 0  # replies dropped unheard because the visitor went on
        # LLM requests of replies agentd dropped unheard on its own (superseded, or a
        # prepared reply the conversation limits refused): paid for, never heard.
        self.llm_requests_wasted = 0

    @property
    def in_flight(self) -> bool:
        return self._task is not None

    def answer(self, record: TurnRecord, user_text: str, *, held: bool = False) -> None:
        """Answer one visitor turn; the history keeps what was heard of the reply.

        `held`: a speculative answer (the visitor only paused); its audio waits for
        `current.release()`, and it adds nothing to the history until then.
        """
        history = self._parts().history
        messages = history.messages_for_request(user_text)
        reply = self._new(record)
        if held:
            reply.hold()

        async def run() -> None:
            try:
                result = await reply.run(messages)
                await reply.wait_released()
                await self._wait_played(reply)
                heard = reply.played_text()
                history.commit_turn(user_text, result.new_messages, heard)
                log_transcript(log, "agent", heard, record.turn_id, enabled=self.log_transcripts)
                self._reporter.transcript("agent", heard, record.turn_id)
            except asyncio.CancelledError:
                if not reply.discard:
                    history.commit_turn(
                        user_text, reply.result.new_messages, reply.played_text(), interrupted=True
                    )
                raise
            finally:
                self._finish_turn(reply)

        self._launch(run(), reply)

    def announce(self, text: str) -> None:
        """Speak fixed text (MQTT `say`): TTS, the local voice if TTS fails; not a turn."""
        reply = self._new(TurnRecord())

        async def run() -> None:
            await reply.speak_text(text)
            await self._wait_played(reply)

        self._launch(run(), reply)

    def say_line(self, name: str) -> None:
        """Play a pre-rendered local line unless a reply runs; not a turn of its own."""
        if self._task is not None:
            return
        reply = self._new(TurnRecord())

        async def run() -> None:
            await reply.speak_line(name)
            await self._wait_played(reply)

        self._launch(run(), reply)

    def supersede(self) -> None:
        """The visitor went on before a sound of the reply played: mark it to be dropped
        unheard (no history: its user text lives on in the carried turn) and reported as
        `superseded`. The caller cancels it."""
        reply = self.current
        if reply is not None:
            reply.discard = True
            reply.record.superseded = True

    def cancel(self, reason: str) -> bool:
        """Stop the reply in flight: speaker flushed now, LLM and TTS streams cancelled."""
        task, reply = self._task, self.current
        if task is None:
            return False
        log.info("reply cancelled: %s", reason, extra=fields(stage="cancel"))
        self._parts().speaker.cancel()
        if reply is not None and reply.record.cancelled_by is None:
            reply.record.cancelled_by = reason
        task.cancel()
        self._task = self.current = None
        return True

    async def wait_cancelled(self, task: asyncio.Task[None] | None) -> None:
        """Wait until a cancelled reply task has finished its clean-up."""
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def _new(self, record: TurnRecord) -> ReplyPipeline:
        parts = self._parts()
        return self.factory(
            llm=parts.llm,
            tts=parts.tts,
            fallback=parts.fallback,
            speaker=parts.speaker,
            splitter=parts.new_splitter(),
            report_fault=self._reporter.fault,
            record=record,
            bytes_per_s=parts.out_format.bytes_per_s,
        )

    def _launch(self, coro: Coroutine[object, object, None], reply: ReplyPipeline) -> None:
        self.current = reply
        self._task = asyncio.get_running_loop().create_task(coro, name="reply")
        self._task.add_done_callback(self._done)

    async def _wait_played(self, reply: ReplyPipeline) -> None:
        """Return once the speaker has played everything this reply wrote."""
        if reply.bytes_written:
            await self._parts().speaker.wait_idle()

    def _finish_turn(self, reply: ReplyPipeline) -> None:
        """Count the reply and report its record; a reply dropped unheard is reported too
        (its requests were paid for), but it is no turn completed."""
        record = reply.record
        if reply.discard:
            self.llm_requests_wasted += record.llm_requests
            self.speculations_dropped += reply.speculative
            self.replies_superseded += record.superseded
        else:
            self.turns_completed += 1
        parts = self._parts()
        metrics = record.metrics(parts.out_format.bytes_per_s, parts.in_format.bytes_per_s)
        self._reporter.turn_finished(metrics)

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = self.current = None
            self._on_ended()
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("reply failed: %s", exc, exc_info=exc, extra=fields(error_kind="internal"))
