"""Held turns: the turn-end policy's hooks in the turn state machine (issue 12).

A visitor who pauses mid-sentence is waited for (`turn_end.py` says how long); the reply
may be prepared meanwhile and held unheard; when the pause outlasts the wait the turn
ends and the held reply plays, and when the visitor goes on it is dropped without a
sound and the whole turn is answered once. The optional audio turn model may move the
wait of an ambiguous pause (`turn_audio.py`)."""

from __future__ import annotations

import logging

from agentd.audio.format import AudioChunk
from agentd.conversation.conversation_base import ConversationBase
from agentd.conversation.turn_end import PendingTurn
from agentd.conversation.turn_record import TurnRecord
from agentd.events import AgentState, Say, TurnModelAnswered, now_ms
from agentd.logs import fields, log_transcript

log = logging.getLogger("agentd.turn")


class HeldTurns(ConversationBase):
    """See the module docstring."""

    def _hold_turn(self, record: TurnRecord, text: str, deadline_ms: float) -> None:
        """The visitor paused mid-sentence: wait, maybe preparing the reply unheard."""
        voice_end_ms = record.speech_end_ms or now_ms()
        self._pending = PendingTurn(record, text, deadline_ms, last_voiced_ms=voice_end_ms)
        log.debug("turn held open until +%.0f ms", deadline_ms - now_ms())
        if self.parts.turn_end.speculate:
            self._reply_user_text = text
            self._replies.answer(record, text, held=True)
        self._set_state(AgentState.LISTENING)
        turn_audio = self.parts.turn_audio
        if turn_audio is not None and self.parts.turn_end.asks_model(text):
            request = turn_audio.ask(self._turn_start_ms or voice_end_ms, voice_end_ms)
            self._model_question = (request, voice_end_ms)

    def _on_turn_model_answered(self, answer: TurnModelAnswered) -> None:
        """The audio turn model judged the pause: the held turn's wait may move (bounded)."""
        pending, question = self._pending, self._model_question
        if pending is None or question is None or answer.request_id != question[0]:
            return  # the turn already ended, or the visitor went on: a stale answer
        self._model_question = None
        voice_end = question[1]
        policy = self.parts.turn_end
        words_wait = policy.wait_ms(pending.text)
        wait = policy.model_wait_ms(pending.text, answer.complete_probability)
        pending.deadline_ms = voice_end + wait  # 0: ends at the next mic period
        log.info(  # one line per ambiguous pause: the evidence for judging the model
            "turn model: p(complete)=%.2f; wait %.0f -> %.0f ms",
            answer.complete_probability,
            words_wait,
            wait,
            extra=fields(
                turn_id=pending.record.turn_id,
                stage="turn_model",
                probability=round(answer.complete_probability, 3),
                latency_ms=round(answer.inference_ms),
            ),
        )

    def _check_pending(self, chunk: AudioChunk, *, voiced: bool) -> None:
        """Each mic period: the pause outlasted the policy's wait -> the turn has ended."""
        pending = self._pending
        if pending is None:
            return
        end_ms = chunk.at_ms + chunk.duration_ms
        if voiced:  # maybe the visitor going on: the gate confirms it (SpeechStarted)
            pending.last_voiced_ms = end_ms
        if not self.parts.turn_end.ended(pending.deadline_ms, end_ms, pending.last_voiced_ms):
            return
        self._pending = None
        self.parts.recorder.save(pending.record.turn_id)
        reply = self._replies.current
        if reply is None or not reply.held:
            self._cancel("new turn")
            self._answer(pending.record, pending.text)
            return
        if self.engagement is not None and self.engagement.on_turn(pending.text, now_ms()):
            # The limits refuse the turn, as _answer would: the prepared reply goes unheard
            # (dropped directly, so its end does not end the conversation before the line).
            reply.discard = True
            self._replies.cancel("conversation limit")
            self._on_say(Say(self.engagement.config.limit_line, "limit"))
            return
        log_transcript(
            log, "visitor", pending.text, pending.record.turn_id, enabled=self.log_transcripts
        )
        self._reporter.transcript("visitor", pending.text, pending.record.turn_id)
        reply.release()
        self._set_state(AgentState.THINKING)

    def _resume_pending(self) -> None:
        """The visitor went on: drop the unheard reply, keep every word for the whole turn."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        self._carry_text = pending.text
        self._replies.supersede()
        if self.parts.turn_audio is not None:
            self.parts.turn_audio.forget()  # its answer about this pause no longer matters
        self._cancel("visitor went on", keep_state=True)
