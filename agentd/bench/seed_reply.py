"""The seed design's reply strategy, kept only as the latency benchmark's baseline.

The seed design did one step after the other: wait for the model's whole reply, send
the whole text to TTS in one request, wait for the whole audio, then play it. This
subclass of the production `ReplyPipeline` does exactly that and nothing else, so the
two strategies share the same LLM/TTS clients, history, fallback and bookkeeping and
differ only in when audio can start. Never used by the daemon itself:
`agentd bench latency` installs it through `Conversation.reply_factory`.
"""

from __future__ import annotations

import asyncio
import contextlib

from agentd.conversation.ports import ChatMessage
from agentd.conversation.reply import ReplyPipeline, ReplyResult
from agentd.errors import LlmError
from agentd.events import now_ms
from agentd.tts.speakable import speakable


class SeedReplyPipeline(ReplyPipeline):
    """Whole LLM reply -> one TTS request for all of it -> whole audio -> speaker."""

    async def run(self, messages: list[ChatMessage]) -> ReplyResult:
        unused: asyncio.Queue[str | None] = asyncio.Queue()  # the clauses are not used
        try:
            await self._pump_llm(messages, unused)
        except LlmError as exc:
            await self._on_llm_error(exc)
            return self.result
        text = speakable(self.result.full_text)
        if text:
            await self._speak_one(text, previous_text="")
        if not self.bytes_written:
            self.record.nothing_to_say = True
            await self.speak_line("sorry_line")
        return self.result

    async def _stream_tts(self, text: str, previous_text: str) -> None:
        """Collect the whole synthesis first; only then hand it to the speaker."""
        self.record.mark_first("tts_request_ms", now_ms())
        self.record.tts_characters += len(text)
        audio = bytearray()
        stream = self._tts.stream(text, previous_text=previous_text)
        async with contextlib.aclosing(stream) as chunks:
            async for chunk in chunks:
                if chunk:
                    self.record.mark_first("tts_first_byte_ms", now_ms())
                    audio += chunk
        self._write(bytes(audio))
