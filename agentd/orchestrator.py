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
from collections.abc import Callable
from typing import Any, Protocol

from agentd.errors import AgentdError
from agentd.events import (
    AgentState,
    BargeIn,
    ButtonPressed,
    ButtonReleased,
    CancelReply,
    FaultRaised,
    SpeechEnded,
    SpeechStarted,
    StaffCalled,
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


class Reporter(Protocol):
    """Where the orchestrator's facts go (journal, MQTT, LEDs, sd_notify STATUS)."""

    def state_changed(self, state: AgentState) -> None: ...

    def fault(self, fault: FaultRaised) -> None: ...

    def turn_finished(self, metrics: TurnMetrics) -> None: ...

    def event(self, name: str, payload: dict[str, Any]) -> None: ...


class Orchestrator:
    """Owns the conversation state; see the module docstring."""

    def __init__(self, *, parts: Any, reporter: Reporter, log_transcripts: bool) -> None:
        # `parts` is agentd.assembly.ConversationParts: gate, barge_in, stt, llm, history,
        # tts, fallback, speaker, splitter factory, sanitize, formats.
        self.parts = parts
        self._reporter = reporter
        self._log_transcripts = log_transcripts
        self.state = AgentState.IDLE
        self.muted = False
        self._ptt_active = False
        self._clock: TurnClock | None = None
        self._reply_task: asyncio.Task[None] | None = None
        self._reply: ReplyPipeline | None = None
        self._paused_for_barge_in = False
        self.turns_completed = 0
        self.frames_processed = 0

    # --- audio path (hot: one call per capture period) ---------------------------------

    def on_frame(self, pcm: bytes, at_ms: float) -> None:
        """One capture period of mono PCM; runs on the loop, must stay cheap."""
        self.frames_processed += 1
        if self.muted:
            return
        parts = self.parts
        speaking = self.state is AgentState.SPEAKING
        if speaking and parts.barge_in is not None:
            for event in parts.barge_in.process(pcm, at_ms):
                self.handle(event)
        if self._ptt_active:
            parts.stt.feed(pcm)
            return
        for event in parts.gate.process(pcm, at_ms):
            if speaking and self.state is AgentState.SPEAKING:
                continue  # our own voice: the barge-in detector decides, not the gate
            self.handle(event)

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
            self.parts.stt.feed(event.pcm)
            if self._clock is not None:
                self._clock.audio_in_bytes += len(event.pcm)
        elif isinstance(event, SpeechStarted):
            self._on_speech_started(event)
        elif isinstance(event, SpeechEnded):
            self._on_speech_ended(event)
        elif isinstance(event, TranscriptPartial):
            pass  # partials only matter to the STT link's own endpointing
        elif isinstance(event, TurnFinalized):
            self._on_turn_finalized(event)
        elif isinstance(event, BargeIn):
            self._on_barge_in(event)
        elif isinstance(event, CancelReply):
            self.cancel_reply(event.reason)
        elif isinstance(event, FaultRaised):
            self._on_link_fault(event)
        elif isinstance(event, ButtonPressed):
            self._on_button(event)
        elif isinstance(event, ButtonReleased):
            if event.button == "talk" and self._ptt_active and self.parts.talk_mode == "hold":
                self.stop_push_to_talk()
        elif hasattr(self.parts.barge_in, "is_resume_event") and self.parts.barge_in.is_resume_event(
            event
        ):
            self._resume_after_false_barge_in()

    # --- listening --------------------------------------------------------------------

    def _on_speech_started(self, event: SpeechStarted) -> None:
        if self.state is AgentState.THINKING:
            # The visitor goes on talking: drop the half-made reply, take the longer turn.
            self.cancel_reply("visitor continued")
        self._clock = TurnClock(speech_start_ms=event.at_ms)
        self.parts.stt.begin_utterance()
        if event.preroll:
            self.parts.stt.feed(event.preroll)
            self._clock.audio_in_bytes += len(event.preroll)
        self._set_state(AgentState.LISTENING)

    def _on_speech_ended(self, event: SpeechEnded) -> None:
        clock = self._clock
        if clock is None:
            return
        clock.speech_end_ms = getattr(event, "voice_end_ms", None) or (
            (clock.speech_start_ms or event.at_ms) + event.duration_ms
        )
        if event.too_short:
            log.debug("utterance too short (%.0f ms), ignored", event.duration_ms)
        clock.endpoint_ms = event.at_ms
        self.parts.stt.end_utterance()

    def start_push_to_talk(self, source: str) -> None:
        """Open a turn regardless of the VAD (talk button)."""
        self.cancel_reply(f"push-to-talk ({source})")
        self._ptt_active = True
        self._clock = TurnClock(speech_start_ms=now_ms())
        self.parts.stt.begin_utterance()
        self._set_state(AgentState.LISTENING)

    def stop_push_to_talk(self) -> None:
        if not self._ptt_active:
            return
        self._ptt_active = False
        if self._clock is not None:
            self._clock.speech_end_ms = self._clock.endpoint_ms = now_ms()
        self.parts.stt.end_utterance()

    def _on_turn_finalized(self, event: TurnFinalized) -> None:
        text = event.text.strip()
        clock = self._clock or TurnClock()
        self._clock = None
        clock.final_ms = event.at_ms
        if not text:
            self._set_state(AgentState.IDLE)
            return
        self.cancel_reply("new turn")
        log_transcript(log, "visitor", text, clock.turn_id, enabled=self._log_transcripts)
        log.info("turn started", extra=fields(turn_id=clock.turn_id, stage="stt"))
        self._start_reply(clock, text)

    # --- replying ---------------------------------------------------------------------

    def _start_reply(self, clock: TurnClock, user_text: str) -> None:
        parts = self.parts
        messages = parts.history.messages_for_request(user_text)
        reply = self._new_pipeline(clock)
        self._set_state(AgentState.THINKING)

        async def run() -> None:
            try:
                result = await reply.run(messages)
                await self._wait_played(reply)
                parts.history.commit_turn(user_text, result.new_messages, reply.played_text())
                log_transcript(
                    log, "agent", reply.played_text(), clock.turn_id, enabled=self._log_transcripts
                )
            except asyncio.CancelledError:
                parts.history.commit_turn(user_text, reply.result.new_messages, reply.played_text())
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
        return ReplyPipeline(
            llm=parts.llm,
            tts=parts.tts,
            fallback=parts.fallback,
            speaker=_FirstAudioSpeaker(parts.speaker, clock, self._on_first_audio),
            splitter=parts.new_splitter(),
            sanitize=parts.sanitize,
            report_fault=self._fault,
            clock=clock,
        )

    def _launch(self, coro: Any, reply: ReplyPipeline) -> None:
        self._reply = reply
        self._reply_task = asyncio.get_running_loop().create_task(coro, name="reply")
        self._reply_task.add_done_callback(self._reply_done)

    def _on_first_audio(self) -> None:
        if self.state is not AgentState.SPEAKING:
            self._set_state(AgentState.SPEAKING)
            if self.parts.barge_in is not None:
                self.parts.barge_in.reset()

    async def _wait_played(self, reply: ReplyPipeline) -> None:
        """Return once the speaker has played everything this reply wrote."""
        if reply.bytes_written:
            await self.parts.speaker.wait_idle()

    def _finish_turn(self, clock: TurnClock, reply: ReplyPipeline, *, announce: bool = False) -> None:
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
            self._paused_for_barge_in = False
            if self.state in (AgentState.THINKING, AgentState.SPEAKING):
                self._set_state(AgentState.IDLE)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("reply failed: %s", exc, exc_info=exc, extra=fields(error_kind="internal"))

    def cancel_reply(self, reason: str) -> bool:
        """Stop the reply in flight: LLM + TTS streams cancelled, speaker flushed."""
        task = self._reply_task
        if task is None:
            return False
        log.info("reply cancelled: %s", reason, extra=fields(stage="cancel"))
        self.parts.speaker.cancel()
        task.cancel()
        self._reply_task = None
        if self.state in (AgentState.THINKING, AgentState.SPEAKING):
            self._set_state(AgentState.IDLE)
        return True

    async def cancel_and_wait(self, reason: str) -> None:
        task = self._reply_task
        if self.cancel_reply(reason) and task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- barge-in ---------------------------------------------------------------------

    def _on_barge_in(self, event: BargeIn) -> None:
        if self.state is not AgentState.SPEAKING or self._reply is None:
            return
        log.info(
            "barge-in", extra=fields(stage="barge_in", latency_ms=round(event.at_ms - event.onset_ms))
        )
        self._reporter.event("barge_in", {"onset_to_detect_ms": round(event.at_ms - event.onset_ms)})
        clock_owner = self._reply
        self.cancel_reply("barge-in")
        del clock_owner
        self._clock = TurnClock(speech_start_ms=event.onset_ms, barge_ins=1)
        self.parts.stt.begin_utterance()
        preroll = self.parts.gate.preroll() if hasattr(self.parts.gate, "preroll") else b""
        if preroll:
            self.parts.stt.feed(preroll)
        self.parts.gate.force_open() if hasattr(self.parts.gate, "force_open") else None
        self._set_state(AgentState.LISTENING)

    def _resume_after_false_barge_in(self) -> None:
        """No words followed a barge-in: nothing to do here, the next turn starts cleanly."""
        if self.state is AgentState.LISTENING and self._clock is not None:
            self.parts.stt.end_utterance()

    # --- buttons, faults, state -------------------------------------------------------

    def _on_button(self, event: ButtonPressed) -> None:
        self._reporter.event("button", {"button": event.button, "long_press": event.long_press})
        if event.button == "talk" and event.long_press:
            self._reporter.event("staff_call", {"reason": "button", "source": "button"})
            self.handle(StaffCalled(reason="long press on talk", source="button"))
        elif event.button == "talk":
            if self._ptt_active and self.parts.talk_mode == "press":
                self.stop_push_to_talk()
            else:
                self.start_push_to_talk("button")
        elif event.button == "cancel":
            self.cancel_reply("cancel button")
        elif event.button == "mute":
            self.set_muted(not self.muted)

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        if muted:
            self.cancel_reply("muted")
            self._ptt_active = False
            self._set_state(AgentState.MUTED)
        elif self.state is AgentState.MUTED:
            self._set_state(AgentState.IDLE)

    def _on_link_fault(self, fault: FaultRaised) -> None:
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
        self.state = state
        self._reporter.state_changed(state)

    @property
    def reply_in_flight(self) -> bool:
        return self._reply_task is not None


class _FirstAudioSpeaker:
    """Speaker wrapper that stamps the turn's first written sample (voice-to-voice end)."""

    def __init__(self, speaker: Any, clock: TurnClock, on_first: Callable[[], None]) -> None:
        self._speaker = speaker
        self._clock = clock
        self._on_first = on_first

    def write(self, pcm: bytes) -> None:
        first = self._clock.first_audio_ms is None
        self._speaker.write(pcm, on_started=self._stamp if first else None)

    def _stamp(self, at_ms: float) -> None:
        self._clock.mark_first("first_audio_ms", at_ms)
        self._on_first()

    def played_bytes(self) -> int:
        return int(self._speaker.played_bytes())
