"""The turn state machine: idle -> listening -> thinking -> speaking, on one asyncio loop.

Every input reaches `Conversation` on the loop thread: mic chunks (through the inbox),
gate and barge-in facts, STT transcripts, and the command events every source posts
(buttons, MQTT, the barge-in policy, mute, shutdown). One handler table maps each event
type to its handler. The conversation owns the AgentState, starts and cancels replies,
and reports state, faults and per-turn metrics through its `Reporter`. Cancellation
always goes through `_cancel`, so every path stops the LLM stream, the TTS stream and
the speaker the same way and keeps only the heard text in the history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from agentd.audio.format import AudioChunk
from agentd.conversation.engagement import Engagement
from agentd.conversation.interruption import Interruption
from agentd.conversation.parts import ConversationParts
from agentd.conversation.ports import GateEvent, Reporter
from agentd.conversation.replies import Replies, ReplyFactory
from agentd.conversation.reply import ReplyPipeline
from agentd.conversation.turn_end import PendingTurn
from agentd.conversation.turn_record import TurnRecord
from agentd.errors import AgentdError
from agentd.events import (
    AgentState,
    BargeIn,
    BargeInDismissed,
    BargeInSuspected,
    ButtonPressed,
    ButtonReleased,
    CallStaff,
    CancelReply,
    FalseBargeIn,
    FaultRaised,
    FirstAudioPlayed,
    ResetConversation,
    Say,
    SetMuted,
    SetVolume,
    SpeechEnded,
    SpeechStarted,
    StartListening,
    StopListening,
    ToggleMute,
    TranscriptPartial,
    TurnFinalized,
    TurnModelAnswered,
    VoicedAudio,
    now_ms,
)
from agentd.gpio.presence import PresenceChanged
from agentd.logs import fields, log_transcript

log = logging.getLogger("agentd.turn")

E = TypeVar("E")
Handler = Callable[[object], None]


def _entry(kind: type[E], handler: Callable[[E], None]) -> tuple[type, Handler]:
    """One row of the handler table; the TypeVar ties the handler to its event type."""
    return kind, cast(Handler, handler)


class Conversation:
    """Owns the conversation state; see the module docstring."""

    def __init__(
        self,
        *,
        parts: ConversationParts,
        reporter: Reporter,
        log_transcripts: bool,
        reply_factory: ReplyFactory | None = None,
        engagement: Engagement | None = None,
    ) -> None:
        self.parts = parts
        self._reporter = reporter
        self._replies = Replies(
            parts=lambda: self.parts,
            reporter=reporter,
            on_ended=self._reply_ended,
            factory=reply_factory or ReplyPipeline,
        )
        self.log_transcripts = log_transcripts
        self.state = AgentState.IDLE
        self.muted = False
        self._ptt_active = False
        self._listening: TurnRecord | None = None  # the visitor turn being heard
        self._interruption = Interruption()
        self._reply_user_text = ""  # what the reply in flight answers
        self._carry_text = ""  # a turn cut short because the visitor went on talking
        # Turn-end policy (turn_end.py): a turn held open while the visitor pauses, the
        # utterance whose final is still due, and whether the visitor spoke again since.
        self._pending: PendingTurn | None = None
        self._endpointed: TurnRecord | None = None
        self._resumed = False
        self._ptt_turn = False
        # The audio turn model (turn_audio.py): when the turn began (its first part, if
        # the visitor paused and went on), and the open question (its id, voice end).
        self._turn_start_ms = 0.0
        self._model_question: tuple[int, float] | None = None
        self.frames_processed = 0
        self.engagement = engagement  # None: every turn the gate opens is answered
        if engagement is not None:
            engagement.on_end = self.end_conversation
            engagement.on_greet = self.greet
        # Diagnostics hooks (agentd.diagnostics): while `audio_tap` is set the mic goes to
        # it instead of the turn (the self-test's seconds); `event_observer` sees every
        # event handled (turn capture's timeline). Both None in normal running.
        self.audio_tap: Callable[[AudioChunk], None] | None = None
        self.event_observer: Callable[[object], None] | None = None
        self._handlers: dict[type, Handler] = dict(
            (
                _entry(VoicedAudio, self._on_voiced_audio),
                _entry(SpeechStarted, self._on_speech_started),
                _entry(SpeechEnded, self._on_speech_ended),
                _entry(TranscriptPartial, self._on_partial),
                _entry(TurnFinalized, self._on_turn_finalized),
                _entry(TurnModelAnswered, self._on_turn_model_answered),
                _entry(BargeInSuspected, self._on_barge_in_suspected),
                _entry(BargeInDismissed, self._on_barge_in_dismissed),
                _entry(BargeIn, self._on_barge_in),
                _entry(FalseBargeIn, self._on_false_barge_in),
                _entry(FirstAudioPlayed, self._on_first_audio),
                _entry(FaultRaised, self._on_link_fault),
                _entry(CancelReply, self._on_cancel),
                _entry(StartListening, self._on_start_listening),
                _entry(StopListening, self._on_stop_listening),
                _entry(SetMuted, self._on_set_muted),
                _entry(ToggleMute, self._on_toggle_mute),
                _entry(SetVolume, self._on_set_volume),
                _entry(Say, self._on_say),
                _entry(ResetConversation, self._on_reset),
                _entry(CallStaff, self._on_call_staff),
                _entry(ButtonPressed, self._on_button_pressed),
                _entry(ButtonReleased, lambda _event: None),  # its command came with it
                _entry(PresenceChanged, self._on_presence),
            )
        )

    # --- audio path (hot: one call per capture period) ---------------------------------

    def on_audio(self, chunk: AudioChunk) -> None:
        """One capture period of mono PCM; runs on the loop, must stay cheap."""
        self.frames_processed += 1
        if self.audio_tap is not None:
            self.audio_tap(chunk)
            return
        if self.muted:
            return
        parts = self.parts
        guard = self._interruption
        guard.remember(chunk)
        if self._ptt_active:
            self._to_stt(chunk.pcm)
            # Press-to-start: the visitor's own pause ends the turn.
            ended = parts.talk_mode == "press" and any(
                isinstance(e, SpeechEnded) for e in parts.gate.process(chunk)
            )
            if ended:
                self._stop_push_to_talk()
            return
        if parts.turn_audio is not None:  # the audio turn model hears the turn from here
            parts.turn_audio.remember(chunk)
        feeding = guard.direct_feed  # before the detector: a barge-in now replays this chunk
        ringing = guard.ringing(chunk.at_ms)
        # the agent's own voice may still ring in the room: keep the gate deaf to it
        gate_events: Sequence[GateEvent] = () if ringing else parts.gate.process(chunk)
        if self._pending is not None:  # after the gate: this chunk's own voice counts
            self._check_pending(chunk, voiced=not ringing and parts.gate.last_voiced)
        admitted = gate_events
        if self.engagement is not None:  # near-field, wake word, conversation window
            idle = self.state is AgentState.IDLE
            admitted = self.engagement.front_end(chunk, gate_events, idle)
        if parts.barge_in is not None:
            # Every chunk, not only while speaking: the detector tracks the noise floor
            # and the echo path continuously and arms itself from the played reference.
            for fact in parts.barge_in.process(chunk, parts.gate.last_voiced):
                self.handle(fact)
        if ringing:
            return
        if guard.direct_feed:
            if feeding:
                self._to_stt(chunk.pcm)
            for event in gate_events:
                if isinstance(event, SpeechEnded):
                    guard.direct_feed = False
                    self.handle(event)
            return
        if self.state is AgentState.SPEAKING:
            return  # our own voice: the barge-in detector decides, not the gate
        for event in admitted:
            self.handle(event)

    def _to_stt(self, pcm: bytes) -> None:
        """Raw audio to STT (pre-roll, push-to-talk, barge-in replay)."""
        self.parts.stt.feed(pcm)
        self._heard(pcm)

    def _heard(self, pcm: bytes) -> None:
        """Account audio the cloud hears: debug recording and the turn's audio metric."""
        self.parts.recorder.add(pcm)
        if self._listening is not None:
            self._listening.audio_in_bytes += len(pcm)

    # --- event dispatch ---------------------------------------------------------------

    def handle(self, event: object) -> None:
        """Route one event by the handler table; never raises (bad events are logged)."""
        handler = self._handlers.get(type(event))
        if self.event_observer is not None:
            try:
                self.event_observer(event)
            except Exception:  # a diagnostics bug must not stop the conversation
                log.exception("event observer failed")
        if handler is None:
            log.warning("no handler for %s", type(event).__name__)
            return
        try:
            handler(event)
        except AgentdError as exc:
            self._reporter.fault(FaultRaised(exc.error_kind, str(exc)))
        except Exception:  # task boundary: a bug must not kill the audio path
            log.exception("event handler failed for %s", type(event).__name__)

    # --- listening --------------------------------------------------------------------

    def _on_voiced_audio(self, audio: VoicedAudio) -> None:
        self._heard(self.parts.stt.send_gated(audio))

    def _on_speech_started(self, event: SpeechStarted) -> None:
        if self._endpointed is not None:
            self._resumed = True  # before that utterance's final: the visitor went on
        if self._pending is not None:
            self._resume_pending()
        elif self.state is AgentState.THINKING and self._replies.in_flight:
            # The visitor goes on talking: drop the half-made reply and answer the whole
            # thing once they finish (the first part is carried into the next turn).
            self._carry_text = self._reply_user_text
            if self._replies.current is not None:
                self._replies.current.discard = True  # its user text lives on in the carried turn
            self._cancel("visitor continued", keep_state=True)  # straight on to listening
        if not (self._carry_text or self._resumed):
            self._turn_start_ms = event.at_ms  # a new turn, not the rest of a paused one
        self._begin_listening(event.at_ms)
        if event.preroll:
            self._to_stt(event.preroll)

    def _begin_listening(self, speech_start_ms: float, *, barge_ins: int = 0) -> None:
        self._listening = TurnRecord(speech_start_ms=speech_start_ms, barge_ins=barge_ins)
        self.parts.stt.begin_utterance()
        self._warm_connections()
        self._set_state(AgentState.LISTENING)

    def _on_speech_ended(self, event: SpeechEnded) -> None:
        record = self._listening
        if record is None:
            return
        record.speech_end_ms = event.voice_end_ms or event.at_ms
        if event.too_short:
            log.debug("utterance too short (%.0f ms), ignored", event.duration_ms)
        record.endpoint_ms = event.at_ms
        self._endpointed = record
        self.parts.stt.end_utterance()
        self._warm_connections()  # a long utterance may have outlived the warm one

    def _warm_connections(self) -> None:
        """LLM and TTS connections ready before the turn needs them (connection_warmer)."""
        self.parts.llm.warm_up()
        self.parts.tts.warm_up()

    def _on_start_listening(self, command: StartListening) -> None:
        """Push-to-talk: open a turn regardless of the VAD (press mode toggles)."""
        if self._ptt_active and self.parts.talk_mode == "press":
            self._stop_push_to_talk()
            return
        self._cancel(f"push-to-talk ({command.source})")
        if self.engagement is not None:
            self.engagement.on_button(command.at_ms)
        self._ptt_active = self._ptt_turn = True
        self._begin_listening(command.at_ms)

    def _on_stop_listening(self, _command: StopListening) -> None:
        self._stop_push_to_talk()

    def _stop_push_to_talk(self) -> None:
        if not self._ptt_active:
            return
        self._ptt_active = False
        if self._listening is not None:
            self._listening.speech_end_ms = self._listening.endpoint_ms = now_ms()
        self.parts.stt.end_utterance()

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

    def _on_turn_finalized(self, event: TurnFinalized) -> None:
        text = event.text.strip()
        recorder = self.parts.recorder
        resumed, self._resumed, self._endpointed = self._resumed, False, None
        ptt_turn, self._ptt_turn = self._ptt_turn, False
        if self.muted:
            recorder.discard()
            return  # a turn cut by mute: the visitor asked not to be listened to
        if self._carry_text:
            # The visitor went on talking while we thought: answer everything at once. A
            # continuation without words (a cough) still leaves the question to answer.
            text = f"{self._carry_text} {text}".strip()
            self._carry_text = ""
        if resumed and self.parts.turn_end.adaptive:
            self._carry_text = text  # the visitor already went on: one turn, answered later
            return
        self._interruption.direct_feed = False  # the visitor's turn is over
        record = self._listening or TurnRecord()
        self._listening = None
        record.final_ms = event.at_ms
        if not text:
            recorder.discard()
            if self.engagement is not None and record.speech_start_ms is not None:
                self.engagement.on_empty_turn()
            self._set_state(AgentState.IDLE)
            return
        if record.speech_end_ms is None and not self._ptt_active:
            # The STT final beat our own endpoint: the gate still knows when the voice ended.
            record.speech_end_ms = self.parts.gate.voice_end_ms
        self._cancel("new turn")
        deadline = self.parts.turn_end.deadline_ms(text, record.speech_end_ms or event.at_ms)
        if deadline is not None and not ptt_turn and deadline > now_ms():
            self._hold_turn(record, text, deadline)  # the recording goes on with the turn
            return
        recorder.save(record.turn_id)
        self._answer(record, text)

    def _answer(self, record: TurnRecord, text: str) -> None:
        """The visitor's turn has ended: answer it (or the engagement limits refuse it)."""
        if self.engagement is not None and self.engagement.on_turn(text, now_ms()):
            self._on_say(Say(self.engagement.config.limit_line, "limit"))
            return
        log_transcript(log, "visitor", text, record.turn_id, enabled=self.log_transcripts)
        self._reporter.transcript("visitor", text, record.turn_id)
        log.info("turn started", extra=fields(turn_id=record.turn_id, stage="stt"))
        self._start_reply(record, text)

    # --- the turn-end policy's hooks (turn_end.py) --------------------------------------

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
            voice_end = record.speech_end_ms or now_ms()
            request = turn_audio.ask(self._turn_start_ms or voice_end, voice_end)
            self._model_question = (request, voice_end)

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
        if self._replies.current is not None:
            self._replies.current.discard = True
        if self.parts.turn_audio is not None:
            self.parts.turn_audio.forget()  # its answer about this pause no longer matters
        self._cancel("visitor went on", keep_state=True)

    # --- replying (the task itself lives in `replies`) ---------------------------------

    def _start_reply(self, record: TurnRecord, user_text: str) -> None:
        self._reply_user_text = user_text
        self._replies.answer(record, user_text)
        self._set_state(AgentState.THINKING)

    def _on_say(self, command: Say) -> None:
        """Announce text now (MQTT `say`), cancelling any reply in flight."""
        self._cancel(f"say ({command.source})")
        self._replies.announce(command.text)

    def _on_first_audio(self, event: FirstAudioPlayed) -> None:
        """The device started sounding new audio (bridged from the playback thread)."""
        reply = self._replies.current
        if reply is None or not reply.bytes_written:
            return
        reply.record.mark_first("first_audio_ms", event.at_ms)
        if self.state is not AgentState.SPEAKING and not self._interruption.held:
            self._set_state(AgentState.SPEAKING)
            if self.parts.barge_in is not None:
                self.parts.barge_in.reset()

    def _reply_ended(self) -> None:
        self._interruption.release()
        if self.state in (AgentState.THINKING, AgentState.SPEAKING):
            self._set_state(AgentState.IDLE)
        if self.engagement is not None:
            self.engagement.reply_finished(now_ms())

    def _on_cancel(self, command: CancelReply) -> None:
        self._cancel(command.source)

    def _cancel(self, reason: str, *, keep_state: bool = False) -> bool:
        """Stop the reply in flight: LLM + TTS streams cancelled, speaker flushed."""
        self._interruption.held = False
        self._pending = None  # a held turn goes with its reply
        if not self._replies.cancel(reason):
            return False
        if self.engagement is not None:
            # A cancelled reply is over too: a goodbye or a reached limit ends the
            # conversation now, otherwise the follow-up window starts.
            self.engagement.reply_finished(now_ms())
        if not keep_state and self.state in (AgentState.THINKING, AgentState.SPEAKING):
            self._set_state(AgentState.IDLE)
        return True

    async def shutdown(self) -> None:
        """Cancel the reply in flight (as any CancelReply would) and wait for it to end."""
        task = self._replies.task
        self.handle(CancelReply("shutdown"))
        await self._replies.wait_cancelled(task)

    @property
    def reply_in_flight(self) -> bool:
        return self._replies.in_flight

    @property
    def speculations_dropped(self) -> int:
        """Speculative replies dropped unheard because the visitor went on."""
        return self._replies.speculations_dropped

    @property
    def turns_completed(self) -> int:
        return self._replies.turns_completed

    @property
    def reply_factory(self) -> ReplyFactory:
        return self._replies.factory

    @reply_factory.setter
    def reply_factory(self, factory: ReplyFactory) -> None:
        self._replies.factory = factory

    @property
    def log_transcripts(self) -> bool:
        return self._replies.log_transcripts

    @log_transcripts.setter
    def log_transcripts(self, enabled: bool) -> None:
        self._replies.log_transcripts = enabled

    # --- barge-in (the interruption policy) --------------------------------------------

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

    # --- commands, faults, state --------------------------------------------------------

    def _on_set_muted(self, command: SetMuted) -> None:
        self._set_muted(command.muted)

    def _on_toggle_mute(self, _command: ToggleMute) -> None:
        self._set_muted(not self.muted)

    def _set_muted(self, muted: bool) -> None:
        was_muted, self.muted = self.muted, muted
        self.parts.gate.set_muted(muted)  # an open utterance is dropped, not finished
        if muted and not was_muted:
            self._cancel("muted")
            self._carry_text = ""  # nothing said before the mute is answered after it
            self._ptt_active = False
            self._interruption.release()
            if self._listening is not None:
                # Whatever the visitor said so far is not sent on: close the STT turn and
                # ignore its transcript (see _on_turn_finalized).
                self._listening = None
                self.parts.stt.end_utterance()
            self._set_state(AgentState.MUTED)
        elif self.state is AgentState.MUTED:
            self._set_state(AgentState.IDLE)

    def _on_set_volume(self, command: SetVolume) -> None:
        self.parts.speaker.set_volume(command.level)

    def _on_reset(self, command: ResetConversation) -> None:
        """Forget the conversation: the reply in flight leaves nothing in the history."""
        if self._replies.current is not None:
            self._replies.current.discard = True
        self._cancel(f"reset ({command.source})")
        self._carry_text = ""
        self.parts.history.reset()

    def _on_button_pressed(self, fact: ButtonPressed) -> None:
        """Report the press; the command it stands for was posted right behind it."""
        self._reporter.event("button", {"button": fact.button, "long_press": fact.long_press})

    def _on_presence(self, fact: PresenceChanged) -> None:
        if self.engagement is not None:
            self.engagement.on_presence(fact.present, fact.at_ms)

    def greet(self, text: str) -> None:
        """Someone arrived (presence): say the greeting, as an announcement."""
        self._on_say(Say(text, "presence"))

    def end_conversation(self, reason: str) -> None:
        """The engagement ended: forget the visitor, close the STT session (privacy, cost)."""
        if reason == "left" and self._replies.current is not None:
            self._replies.current.discard = True  # nobody is there to hear the rest
            self._cancel("visitor left")
        self._carry_text = ""
        self.parts.history.reset()
        self.parts.stt.end_session()
        if self.parts.tool_limits is not None:
            self.parts.tool_limits.new_conversation()

    def _on_call_staff(self, command: CallStaff) -> None:
        self._reporter.call_staff(command.reason, command.source)

    def _on_link_fault(self, fault: FaultRaised) -> None:
        if self.muted and fault.error_kind == "stt_timeout":
            # The turn was cut by mute on purpose: no transcript is expected, no fault.
            log.debug("stt: no final for a muted turn (expected)")
            return
        self._reporter.fault(fault)
        if fault.link == "stt":
            self._endpointed, self._resumed = None, False  # no final will come
        if fault.link == "stt" and self.state is AgentState.LISTENING:
            # The visitor spoke but no transcript will come: say so rather than go silent.
            self._listening = None
            self._carry_text = ""  # the apology ends that exchange; nothing may leak later
            self._set_state(AgentState.IDLE)
            self._replies.say_line(
                "sorry_line" if fault.error_kind != "stt_timeout" else "not_heard_line"
            )

    def forget_heard(self) -> None:
        """Drop the utterance the front end has open, without a turn (no events)."""
        self.parts.gate.reset()
        if self.engagement is not None:
            self.engagement.gate_reset()

    def _set_state(self, state: AgentState) -> None:
        if self.muted and state is not AgentState.MUTED:
            state = AgentState.MUTED
        if state is self.state:
            return
        if self.state is AgentState.SPEAKING and self._interruption.agent_stopped(now_ms()):
            self.forget_heard()  # whatever it heard while we spoke was us
        self.state = state
        self._reporter.state_changed(state)
