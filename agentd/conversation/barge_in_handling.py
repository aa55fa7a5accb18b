"""Barge-in in the turn state machine: pause on a suspicion, hold on a confirmation, cancel
when STT hears words, resume on a false alarm (a cough must not leave the visitor in
silence). The detection itself is `agentd.audio.barge_in`; the hold/replay bookkeeping
is `interruption.py`."""

from __future__ import annotations

import logging

from agentd.conversation.conversation_base import ConversationBase
from agentd.events import (
    AgentState,
    BargeIn,
    BargeInDismissed,
    BargeInSuspected,
    FalseBargeIn,
    TranscriptPartial,
)
from agentd.logs import fields

log = logging.getLogger("agentd.turn")


class BargeInHandling(ConversationBase):
    """See the module docstring."""

    def _on_partial(self, event: TranscriptPartial) -> None:
        """STT heard words: a held reply was a real interruption, drop it."""
        if not event.text.strip():
            return
        if self.parts.barge_in is not None:
            self.parts.barge_in.note_words()
        if self._interruption.held:
            self._interruption.held = False
            if self._replies.current is not None:
                self._replies.current.record.barge_in_confirmed = True
            self._cancel("barge-in confirmed by words", keep_state=True)

    def _on_barge_in_suspected(self, _event: BargeInSuspected) -> None:
        if self.state is AgentState.SPEAKING:
            self.parts.speaker.pause()  # silence within a period; cancel only if confirmed

    def _on_barge_in_dismissed(self, _event: BargeInDismissed) -> None:
        if self.state is AgentState.SPEAKING and not self._interruption.held:
            self.parts.speaker.resume()

    def _on_barge_in(self, event: BargeIn) -> None:
        """Confirmed visitor speech over the reply: hold the reply, listen to the visitor.

        The reply stays paused (not cancelled) until STT hears words, which cancels it,
        or until the detector calls it a false barge-in, which resumes it: a cough must
        not leave the visitor in silence.
        """
        reply, guard = self._replies.current, self._interruption
        if reply is None or guard.held:
            return
        detect_ms = round(event.at_ms - event.onset_ms)
        log.info("barge-in", extra=fields(stage="barge_in", latency_ms=detect_ms))
        self._reporter.event("barge_in", {"onset_to_detect_ms": detect_ms})
        self.parts.speaker.pause()
        guard.hold()
        reply.record.barge_ins += 1
        self._begin_listening(event.onset_ms, barge_ins=1)
        for pcm in guard.replay_from(event.onset_ms):
            self._to_stt(pcm)

    def _on_false_barge_in(self, _event: FalseBargeIn) -> None:
        guard = self._interruption
        if not guard.held or not self._replies.in_flight:
            return
        log.info("false barge-in: resuming the reply", extra=fields(stage="barge_in"))
        guard.release()
        self._listening = None
        self.parts.stt.end_utterance()
        self.parts.speaker.resume()
        self._set_state(AgentState.SPEAKING)
