"""The turn state machine: idle -> listening -> thinking -> speaking, on one asyncio loop.

Every input reaches `Orchestrator` on the loop thread: mic frames (bridged from the
capture thread), STT transcripts, button presses and remote commands. It owns the
AgentState, starts and cancels replies, and reports state, faults and per-turn
metrics through the `Reporter`. Cancellation (button, barge-in, MQTT, shutdown) always
goes through `cancel_reply`, so every path stops the LLM stream, the TTS stream and the
speaker the same way and keeps only the heard text in the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from agentd.audio.barge_in import BargeInDismissed, BargeInSuspected, FalseBargeIn
from agentd.errors import AgentdError
from agentd.events import (
    AgentState,
    BargeIn,
    ButtonPressed,
    ButtonReleased,
    CancelReply,
    FaultRaised,
    SetMuted,
    SpeechEnded,
    SpeechStarted,
    StaffCalled,
    StartListening,
    StopListening,
    TranscriptPartial,
    TurnFinalized,
    TurnMetrics,
    VoicedAudio,
    now_ms,
)
from agentd.logs import fields, log_transcript
from agentd.reply import ReplyPipeline
from agentd.turn_clock import TurnClock

log = logging.getLogger("agentd.turn")

RECENT_AUDIO_MS = 600  # mic audio kept to replay the onset of a barge-in to STT
# After the agent stops talking, its voice still rings in the room (device buffer plus
# reverberation, ~100-250 ms): the gate must not open a "visitor" turn on it, or the agent
# would answer itself. The gate is reset and deaf for this long.
ECHO_TAIL_GUARD_MS = 250


class Reporter(Protocol):
    """Where the orchestrator's facts go (journal, MQTT, LEDs, sd_notify STATUS)."""

    def state_changed(self, state: AgentState) -> None: ...

    def fault(self, fault: FaultRaised) -> None: ...

    def turn_finished(self, metrics: TurnMetrics) -> None: ...

    def event(self, name: str, payload: dict[str, Any]) -> None: ...

    def call_staff(self, reason: str, source: str) -> None: ...

    def transcript(self, who: str, text: str, turn_id: str) -> None: ...


class Orchestrator:
    """Owns the conversation state; see the module docstring."""

    def __init__(self, *, parts: Any, reporter: Reporter, log_transcripts: bool) -> None:
        # `parts` is agentd.assembly.ConversationParts: gate, barge_in, stt, llm, history,
        # tts, fallback, speaker, splitter factory, sanitize, formats.
        self.parts = parts
        self._reporter = reporter
        self.log_transcripts = log_transcripts
        self.state = AgentState.IDLE
        self.muted = False
        self._ptt_active = False
        self._clock: TurnClock | None = None
        self._reply_task: asyncio.Task[None] | None = None
        self._reply: ReplyPipeline | None = None
        self._was_voiced = False  # last gated frame was voiced (pause detection)
        self._owed_bytes = 0  # unvoiced audio still to drop for early-flush padding
        self._direct_feed = False  # barge-in: mic goes straight to STT until the gate closes
        self._held_reply = False  # a barged-in reply, paused until words (cancel) or none (resume)
        self._recent: deque[tuple[float, bytes]] = deque()
        self._echo_guard_until_ms = 0.0
        # Which reply strategy to build; only `agentd bench latency` swaps it (seed design).
        self.pipeline_factory: Callable[..., ReplyPipeline] = ReplyPipeline
        self._reply_user_text = ""  # what the reply in flight answers
        self._carry_text = ""  # a turn cut short because the visitor went on talking
        self.turns_completed = 0
        self.frames_processed = 0

    # --- audio path (hot: one call per capture period) ---------------------------------

    def on_frame(self, pcm: bytes, at_ms: float) -> None:
        """One capture period of mono PCM; runs on the loop, must stay cheap."""
        self.frames_processed += 1
        if self.muted:
            return
        parts = self.parts
        self._remember(pcm, at_ms)
        if self._ptt_active:
            self._to_stt(pcm)
            if parts.talk_mode == "press":
                # Press-to-start: the visitor's own pause ends the turn.
                ended = any(isinstance(e, SpeechEnded) for e in parts.gate.process(pcm, at_ms))
                if ended:
                    self.stop_push_to_talk()
            return
        speaking = self.state is AgentState.SPEAKING
        ringing = at_ms < self._echo_guard_until_ms and not self._direct_feed
        # the agent's own voice may still ring in the room: keep the gate deaf to it
        gate_events = [] if ringing else parts.gate.process(pcm, at_ms)
        if parts.barge_in is not None:
            # Every frame, not only while speaking: the detector tracks the noise floor
            # and the echo path continuously and arms itself from the played reference.
            # Fed only during replies, its history would span the gaps between them.
            for event in parts.barge_in.process(pcm, at_ms, parts.gate.last_voiced):
                self.handle(event)
        if ringing:
            return
        if self._direct_feed:
            self._to_stt(pcm)
            for event in gate_events:
                if isinstance(event, SpeechEnded):
                    self._direct_feed = False
                    self.handle(event)
            return
        if speaking:
            return  # our own voice: the barge-in detector decides, not the gate
        for event in gate_events:
            self.handle(event)

    def _gated_to_stt(self, audio: VoicedAudio) -> None:
        """Gated audio to STT, sending a word's end without waiting for a full chunk.

        When the voice stops - inside a voiced frame (`ends_quiet`) or at an unvoiced
        frame after a voiced one - the STT link flushes its partial 50 ms chunk
        zero-padded: the service hears the end of the word up to 50 ms sooner, which is
        latency the visitor feels. The padding lands where the room was already quiet;
        as much unvoiced audio is dropped later, so the stream's timeline stays aligned
        even when the voice resumes at once (a pause inside a sentence).
        """
        pcm = audio.pcm
        if not audio.voiced:
            if self._was_voiced:
                self._flush_stt()
            if self._owed_bytes:
                skipped = min(self._owed_bytes, len(pcm))
                self._owed_bytes -= skipped
                pcm = pcm[skipped:]
        if pcm:
            self._to_stt(pcm)
        if audio.ends_quiet:
            self._flush_stt()
        self._was_voiced = audio.voiced and not audio.ends_quiet

    def _flush_stt(self) -> None:
        pad = self.parts.stt.flush_pause()
        if pad:
            self._owed_bytes += pad
            self._heard(bytes(pad))  # the link added the padding itself

    def _to_stt(self, pcm: bytes) -> None:
        """Everything the cloud hears goes through here (metrics, debug recording)."""
        self.parts.stt.feed(pcm)
        self._heard(pcm)

    def _heard(self, pcm: bytes) -> None:
        """Account audio the cloud hears: debug recording and the turn's audio metric."""
        self.parts.recorder.add(pcm)
        if self._clock is not None:
            self._clock.audio_in_bytes += len(pcm)

    def _remember(self, pcm: bytes, at_ms: float) -> None:
        recent = self._recent
        recent.append((at_ms, pcm))
        while recent and recent[0][0] < at_ms - RECENT_AUDIO_MS:
            recent.popleft()

    # --- event dispatch ---------------------------------------------------------------

    def handle(self, event: object) -> None:
        """Route one event; never raises (a bad event is logged, not fatal)."""
        try:
            self._dispatch(event)
        except AgentdError as exc:
            self._fault(FaultRaised(exc.error_kind, str(exc)))
        except Exception:  # task boundary: a bug must not kill the audio path
            log.exception("event handler failed for %s", type(event).__name__)

    def _dispatch(self, event: object) -> None:
        if isinstance(event, VoicedAudio):
            self._gated_to_stt(event)
        elif isinstance(event, SpeechStarted):
            self._on_speech_started(event)
        elif isinstance(event, SpeechEnded):
            self._on_speech_ended(event)
        elif isinstance(event, TranscriptPartial):
            if event.text.strip():
                self._on_words()
        elif isinstance(event, TurnFinalized):
            self._on_turn_finalized(event)
        elif isinstance(event, BargeIn):
            self._on_barge_in(event)
        elif isinstance(event, BargeInSuspected):
            if self.state is AgentState.SPEAKING:
                self.parts.speaker.pause()  # silence within a period; cancel only if confirmed
        elif isinstance(event, BargeInDismissed):
            if self.state is AgentState.SPEAKING and not self._held_reply:
                self.parts.speaker.resume()
        elif isinstance(event, FalseBargeIn):
            self._resume_after_false_barge_in()
        elif isinstance(event, CancelReply):
            self.cancel_reply(event.reason)
        elif isinstance(event, FaultRaised):
            self._on_link_fault(event)
        elif isinstance(event, (ButtonPressed, ButtonReleased)):
            self._on_button(event)
        elif isinstance(event, StartListening):
            if self._ptt_active and self.parts.talk_mode == "press":
                self.stop_push_to_talk()
            else:
                self.start_push_to_talk(event.source)
        elif isinstance(event, StopListening):
            self.stop_push_to_talk()
        elif isinstance(event, SetMuted):
            self.set_muted(event.muted)
        elif isinstance(event, StaffCalled):
            self._reporter.call_staff(event.reason, event.source)

    # --- listening --------------------------------------------------------------------

    def _on_speech_started(self, event: SpeechStarted) -> None:
        if self.state is AgentState.THINKING and self._reply_task is not None:
            # The visitor goes on talking: drop the half-made reply and answer the whole
            # thing once they finish (the first part is carried into the next turn).
            self._carry_text = self._reply_user_text
            if self._reply is not None:
                self._reply.discard = True  # its user text lives on in the carried turn
            self.cancel_reply("visitor continued")
        self._clock = TurnClock(speech_start_ms=event.at_ms)
        self._was_voiced, self._owed_bytes = True, 0
        self.parts.stt.begin_utterance()
        self._warm_connections()
        if event.preroll:
            self._to_stt(event.preroll)
        self._set_state(AgentState.LISTENING)

    def _on_speech_ended(self, event: SpeechEnded) -> None:
        clock = self._clock
        if clock is None:
            return
        clock.speech_end_ms = event.voice_end_ms or event.at_ms
        if event.too_short:
            log.debug("utterance too short (%.0f ms), ignored", event.duration_ms)
        clock.endpoint_ms = event.at_ms
        self.parts.stt.end_utterance()
        self._warm_connections()  # a long utterance may have outlived the warm one

    def start_push_to_talk(self, source: str) -> None:
        """Open a turn regardless of the VAD (talk button)."""
        self.cancel_reply(f"push-to-talk ({source})")
        self._ptt_active = True
        self._clock = TurnClock(speech_start_ms=now_ms())
        self.parts.stt.begin_utterance()
        self._warm_connections()
        self._set_state(AgentState.LISTENING)

    def _warm_connections(self) -> None:
        """LLM and TTS connections ready before the turn needs them (connection_warmer)."""
        self.parts.llm.warm_up()
        self.parts.tts.warm_up()

    def stop_push_to_talk(self) -> None:
        if not self._ptt_active:
            return
        self._ptt_active = False
        if self._clock is not None:
            self._clock.speech_end_ms = self._clock.endpoint_ms = now_ms()
        self.parts.stt.end_utterance()

    def _on_turn_finalized(self, event: TurnFinalized) -> None:
        text = event.text.strip()
        if self.muted:
            self.parts.recorder.discard()
            return  # a turn cut by mute: the visitor asked not to be listened to
        if text and self._carry_text:
            text = f"{self._carry_text} {text}"
        if text:
            self._carry_text = ""
        clock = self._clock or TurnClock()
        self._clock = None
        clock.final_ms = event.at_ms
        if text:
            self.parts.recorder.save(clock.turn_id)
        else:
            self.parts.recorder.discard()
        if clock.speech_end_ms is None and not self._ptt_active:
            # The STT final beat our own endpoint: the gate still knows when the voice ended.
            clock.speech_end_ms = self.parts.gate.voice_end_ms
        if not text:
            self._set_state(AgentState.IDLE)
            return
        self.cancel_reply("new turn")
        log_transcript(log, "visitor", text, clock.turn_id, enabled=self.log_transcripts)
        self._reporter.transcript("visitor", text, clock.turn_id)
        log.info("turn started", extra=fields(turn_id=clock.turn_id, stage="stt"))
        self._start_reply(clock, text)

    # --- replying ---------------------------------------------------------------------

    def _start_reply(self, clock: TurnClock, user_text: str) -> None:
        parts = self.parts
        self._reply_user_text = user_text
        messages = parts.history.messages_for_request(user_text)
        reply = self._new_pipeline(clock)
        self._set_state(AgentState.THINKING)

        async def run() -> None:
            try:
                result = await reply.run(messages)
                await self._wait_played(reply)
                parts.history.commit_turn(user_text, result.new_messages, reply.played_text())
                heard = reply.played_text()
                log_transcript(log, "agent", heard, clock.turn_id, enabled=self.log_transcripts)
                self._reporter.transcript("agent", heard, clock.turn_id)
            except asyncio.CancelledError:
                if not reply.discard:
                    parts.history.commit_turn(
                        user_text, reply.result.new_messages, reply.played_text(), interrupted=True
                    )
                raise
            finally:
                self._finish_turn(clock, reply)

        self._launch(run(), reply)

    def speak(self, text: str, *, source: str) -> None:
        """Announce text now (MQTT `say`), cancelling any reply in flight."""
        self.cancel_reply(f"say ({source})")
        clock = TurnClock()
        reply = self._new_pipeline(clock)

        async def run() -> None:
            try:
                await reply.speak_text(text)
                await self._wait_played(reply)
            finally:
                self._finish_turn(clock, reply, announce=True)

        self._launch(run(), reply)

    def say_line(self, name: str) -> None:
        """Play a pre-rendered fallback line (used when no turn can proceed)."""
        if self._reply_task is not None:
            return
        clock = TurnClock(outcome="fallback")
        reply = self._new_pipeline(clock)

        async def run() -> None:
            try:
                await reply.speak_line(name)
                await self._wait_played(reply)
            finally:
                self._finish_turn(clock, reply, announce=True)

        self._launch(run(), reply)

    def _new_pipeline(self, clock: TurnClock) -> ReplyPipeline:
        parts = self.parts
        return self.pipeline_factory(
            llm=parts.llm,
            tts=parts.tts,
            fallback=parts.fallback,
            speaker=parts.speaker,
            splitter=parts.new_splitter(),
            sanitize=parts.sanitize,
            report_fault=self._fault,
            clock=clock,
            bytes_per_s=parts.out_bytes_per_s,
        )

    def _launch(self, coro: Any, reply: ReplyPipeline) -> None:
        self._reply = reply
        self._reply_task = asyncio.get_running_loop().create_task(coro, name="reply")
        self._reply_task.add_done_callback(self._reply_done)

    def on_first_audio(self, at_ms: float) -> None:
        """The device started sounding new audio (bridged from the playback thread)."""
        reply = self._reply
        if reply is None or not reply.bytes_written:
            return
        reply.clock.mark_first("first_audio_ms", at_ms)
        if self.state is not AgentState.SPEAKING and not self._held_reply:
            self._set_state(AgentState.SPEAKING)
            if self.parts.barge_in is not None:
                self.parts.barge_in.reset()

    async def _wait_played(self, reply: ReplyPipeline) -> None:
        """Return once the speaker has played everything this reply wrote."""
        if reply.bytes_written:
            await self.parts.speaker.wait_idle()

    def _finish_turn(
        self, clock: TurnClock, reply: ReplyPipeline, *, announce: bool = False
    ) -> None:
        if reply.result.used_fallback and clock.outcome == "ok":
            clock.outcome = "fallback"
        if not announce:
            self.turns_completed += 1
            metrics = clock.metrics(self.parts.out_bytes_per_s, self.parts.in_bytes_per_s)
            self._reporter.turn_finished(metrics)

    def _reply_done(self, task: asyncio.Task[None]) -> None:
        if self._reply_task is task:
            self._reply_task = None
            self._reply = None
            self._held_reply = False
            if self.state in (AgentState.THINKING, AgentState.SPEAKING):
                self._set_state(AgentState.IDLE)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("reply failed: %s", exc, exc_info=exc, extra=fields(error_kind="internal"))

    def cancel_reply(self, reason: str, *, keep_state: bool = False) -> bool:
        """Stop the reply in flight: LLM + TTS streams cancelled, speaker flushed."""
        task = self._reply_task
        self._held_reply = False
        if task is None:
            return False
        log.info("reply cancelled: %s", reason, extra=fields(stage="cancel"))
        self.parts.speaker.cancel()
        if self._reply is not None and self._reply.clock.outcome == "ok":
            self._reply.clock.outcome = "cancelled"
        task.cancel()
        self._reply_task = None
        self._reply = None
        if not keep_state and self.state in (AgentState.THINKING, AgentState.SPEAKING):
            self._set_state(AgentState.IDLE)
        return True

    async def cancel_and_wait(self, reason: str) -> None:
        task = self._reply_task
        if self.cancel_reply(reason) and task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- barge-in ---------------------------------------------------------------------

    def _on_barge_in(self, event: BargeIn) -> None:
        """Confirmed visitor speech over the reply: hold the reply, listen to the visitor.

        The reply stays paused (not cancelled) until STT hears words, which cancels it,
        or until the detector calls it a false barge-in, which resumes it: a cough must
        not leave the visitor in silence.
        """
        if self._reply is None or self._held_reply:
            return
        detect_ms = round(event.at_ms - event.onset_ms)
        log.info("barge-in", extra=fields(stage="barge_in", latency_ms=detect_ms))
        self._reporter.event("barge_in", {"onset_to_detect_ms": detect_ms})
        self.parts.speaker.pause()
        self._held_reply = True
        self._reply.clock.barge_ins += 1
        self._clock = TurnClock(speech_start_ms=event.onset_ms, barge_ins=1)
        self.parts.stt.begin_utterance()
        onset_from = event.onset_ms - 100  # a little before the detected onset
        for at_ms, pcm in self._recent:
            if at_ms >= onset_from:
                self._to_stt(pcm)
        self._direct_feed = True
        self._set_state(AgentState.LISTENING)

    def _on_words(self) -> None:
        """STT heard words: a held reply was a real interruption, drop it."""
        if self.parts.barge_in is not None:
            self.parts.barge_in.note_words()
        if self._held_reply:
            self._held_reply = False
            self.cancel_reply("barge-in confirmed by words", keep_state=True)

    def _resume_after_false_barge_in(self) -> None:
        if not self._held_reply or self._reply_task is None:
            return
        log.info("false barge-in: resuming the reply", extra=fields(stage="barge_in"))
        self._held_reply = False
        self._direct_feed = False
        self._clock = None
        self.parts.stt.end_utterance()
        self.parts.speaker.resume()
        self._set_state(AgentState.SPEAKING)

    # --- buttons, faults, state -------------------------------------------------------

    def _on_button(self, event: ButtonPressed | ButtonReleased) -> None:
        from agentd.gpio.buttons import commands_for

        if isinstance(event, ButtonPressed):
            payload = {"button": event.button, "long_press": event.long_press}
            self._reporter.event("button", payload)
        for command in commands_for(event, self.parts.buttons, muted=self.muted):
            self.handle(command)

    def set_muted(self, muted: bool) -> None:
        was_muted, self.muted = self.muted, muted
        self.parts.gate.set_muted(muted)  # an open utterance is dropped, not finished
        if muted and not was_muted:
            self.cancel_reply("muted")
            self._ptt_active = self._direct_feed = False
            if self._clock is not None:
                # Whatever the visitor said so far is not sent on: close the STT turn and
                # ignore its transcript (see _on_turn_finalized).
                self._clock = None
                self.parts.stt.end_utterance()
            self._set_state(AgentState.MUTED)
        elif self.state is AgentState.MUTED:
            self._set_state(AgentState.IDLE)

    def _on_link_fault(self, fault: FaultRaised) -> None:
        if self.muted and fault.error_kind == "stt_timeout":
            # The turn was cut by mute on purpose: no transcript is expected, no fault.
            log.debug("stt: no final for a muted turn (expected)")
            return
        self._fault(fault)
        if fault.link == "stt" and self.state is AgentState.LISTENING:
            # The visitor spoke but no transcript will come: say so rather than go silent.
            self._clock = None
            self._set_state(AgentState.IDLE)
            self.say_line("sorry_line" if fault.error_kind != "stt_timeout" else "not_heard_line")

    def _fault(self, fault: FaultRaised) -> None:
        self._reporter.fault(fault)

    def _set_state(self, state: AgentState) -> None:
        if self.muted and state is not AgentState.MUTED:
            state = AgentState.MUTED
        if state is self.state:
            return
        if self.state is AgentState.SPEAKING and not self._direct_feed:
            self._echo_guard_until_ms = now_ms() + ECHO_TAIL_GUARD_MS
            self.parts.gate.reset()  # whatever it heard while we spoke was us
        self.state = state
        self._reporter.state_changed(state)

    @property
    def reply_in_flight(self) -> bool:
        return self._reply_task is not None
