"""The turn state machine: idle -> listening -> thinking -> speaking, on one asyncio loop.

Every input reaches `Conversation` on the loop thread: mic chunks (through the inbox),
gate and barge-in facts, STT transcripts, and the command events every source posts
(buttons, MQTT, the barge-in policy, mute, shutdown). One handler table maps each event
type to its handler. The conversation owns the AgentState, starts and cancels replies,
and reports state, faults and per-turn metrics through its `Reporter`. Cancellation
always goes through `_cancel`, so every path stops the LLM stream, the TTS stream and
the speaker the same way and keeps only the heard text in the history.

By concern, its handlers live in mixins over one state (conversation_base.py): barge-in
(barge_in_handling.py), held turns of the turn-end policy (held_turns.py) and operator
commands (operator_commands.py); this module keeps the audio path, dispatch, listening,
replying and state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from agentd.audio.format import AudioChunk
from agentd.conversation.barge_in_handling import BargeInHandling
from agentd.conversation.engagement import Engagement
from agentd.conversation.held_turns import HeldTurns
from agentd.conversation.interruption import Interruption
from agentd.conversation.operator_commands import OperatorCommands
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


class Conversation(HeldTurns, BargeInHandling, OperatorCommands):
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
            self._replies.supersede()
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

    # --- replying (the task itself lives in `replies`) ---------------------------------

    def _start_reply(self, record: TurnRecord, user_text: str) -> None:
        self._reply_user_text = user_text
        self._replies.answer(record, user_text)
        self._set_state(AgentState.THINKING)

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
    def replies_superseded(self) -> int:
        """Replies dropped unheard because the visitor went on (speculative or not)."""
        return self._replies.replies_superseded

    @property
    def llm_requests_wasted(self) -> int:
        """LLM requests of replies dropped unheard (superseded, refused by the limits)."""
        return self._replies.llm_requests_wasted

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

    # --- commands, faults, state --------------------------------------------------------

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
