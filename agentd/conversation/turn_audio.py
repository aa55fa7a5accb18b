"""The turn's audio for the local turn model: kept on the loop, judged on its own thread.

The conversation hands every mic chunk to `remember` (a deque append: cheap enough for
the hot path) and calls `ask` only when the turn-end policy wants the model's view of a
pause - at most once per pause, never per frame. `ask` cuts the turn's audio out of the
ring and queues it for one worker thread; the answer comes back on the loop as a
`TurnModelAnswered` event through `emit`. Only the newest question is worth answering:
a question that was overtaken before its turn on the thread is skipped unrun, so CPU stays
bounded to one inference per pause however the pauses come.

What the model hears follows pipecat (base_smart_turn.py): the turn from 500 ms before
its first voiced frame, including the pauses within it, up to a short tail of the
silence it ends in - pipecat asks at its VAD stop, 200 ms after the voice (its
recommended `stop_secs` for smart-turn), so that is the tail here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from agentd.audio.format import AudioChunk
from agentd.audio.recent import RecentAudio
from agentd.conversation.ports import TurnModel
from agentd.events import TurnModelAnswered

log = logging.getLogger("agentd.turn_model")

PRE_SPEECH_MS = 500.0  # pipecat SmartTurnParams.pre_speech_ms
TAIL_MS = 200.0  # pipecat's VAD stop_secs=0.2 when smart-turn decides the turn's end
MODEL_WINDOW_MS = 8000.0  # smart-turn v3 hears the last 8 s
# Kept audio: the model's window plus the time a question can come after the pause it is
# about (an STT final ~0.3-1.5 s after the voice ended); older audio is never asked for.
KEEP_MS = MODEL_WINDOW_MS + 3000.0
RECENT_ANSWERS = 256  # kept for `agentd bench turns --audio-model`; a few KiB
BYTES_PER_MS = 32  # 16 kHz S16_LE mono: the model's only format (load_turn_model checks)
# Question ids are unique across instances: a reload builds a new TurnAudio, and an answer
# the old one was still computing must not pass for one of the new one's.
_question_ids = itertools.count(1)


class TurnAudio:
    """Recent mic audio and the questions to the turn model; see the module docstring."""

    def __init__(self, model: TurnModel, emit: Callable[[object], None]) -> None:
        self.model = model
        self._emit = emit
        self._chunks = RecentAudio(KEEP_MS)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turn-model")
        self._latest = next(_question_ids)  # the newest question's id; older ones are stale
        self.asked = 0
        self.answered = 0
        self.failed = 0
        self.answers: deque[TurnModelAnswered] = deque(maxlen=RECENT_ANSWERS)  # benchmarks

    def remember(self, chunk: AudioChunk) -> None:
        """One mic chunk (on the loop, every capture period)."""
        self._chunks.add(chunk)

    def clip(self, start_ms: float, end_ms: float) -> bytes:
        """The kept audio from `start_ms` - pre-speech to `end_ms` + tail, at most 8 s."""
        first = max(start_ms - PRE_SPEECH_MS, end_ms + TAIL_MS - MODEL_WINDOW_MS)
        last = end_ms + TAIL_MS
        return b"".join(c.pcm for c in self._chunks if first <= c.at_ms < last)

    def ask(self, start_ms: float, voice_end_ms: float) -> int:
        """Queue the question "has the turn that began at start_ms ended?"; its id.

        Runs on the loop; the answer arrives later as a TurnModelAnswered event.
        """
        request_id = self._latest = next(_question_ids)
        pcm = self.clip(start_ms, voice_end_ms)
        if not pcm:
            return request_id  # nothing heard (a test rig, a muted mic): no answer comes
        self.asked += 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._judge, request_id, pcm)
        future.add_done_callback(self._answered)
        return request_id

    def _judge(self, request_id: int, pcm: bytes) -> TurnModelAnswered | None:
        """On the worker thread: the model's answer, or None for an overtaken question."""
        if request_id != self._latest:
            return None  # a newer question is queued: this one would only cost CPU
        started = time.perf_counter()
        probability = self.model.complete_probability(pcm)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return TurnModelAnswered(request_id, probability, elapsed_ms, len(pcm) / BYTES_PER_MS)

    def _answered(self, future: asyncio.Future[TurnModelAnswered | None]) -> None:
        """On the loop: pass the answer on; a failing model leaves the text to decide."""
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.failed += 1
            log.warning("turn model failed: %s", exc)
            return
        answer = future.result()
        if answer is not None:
            self.answered += 1
            self.answers.append(answer)
            self._emit(answer)

    def forget(self) -> None:
        """Make every queued question stale (the visitor went on, a reset)."""
        self._latest = next(_question_ids)

    def close(self) -> None:
        self.forget()
        self._executor.shutdown(wait=False, cancel_futures=True)
