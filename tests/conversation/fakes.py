"""Fakes for every port of the conversation (agentd.conversation.ports), for unit tests.

Each fake records every call in `calls` (name plus arguments, in order) and does only
what the test scripts: no sockets, no threads, no clocks. Time moves when the test says
so: the fake speaker plays bytes only on `play()`/`play_all()`, the fake LLM and TTS
streams can wait on `asyncio.Event`s the test sets. `test_fakes_conform.py` makes mypy
fail if a fake drifts from its Protocol.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

from agentd.audio.format import AudioChunk
from agentd.conversation.engagement import EngagementState
from agentd.conversation.ports import GateEvent
from agentd.events import (
    AgentState,
    BargeInEvent,
    FaultRaised,
    LinkState,
    TurnMetrics,
    VoicedAudio,
    now_ms,
)
from agentd.llm.events import LlmEvent
from agentd.tts.stitching import ReplyStitching

Call = tuple[object, ...]

# A step of a scripted stream: an item to yield, an Event to wait for (the test sets it),
# or an exception to raise at that point.
LlmStep = LlmEvent | asyncio.Event | BaseException
TtsStep = bytes | asyncio.Event | BaseException


class _Recording:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def names(self) -> list[str]:
        return [str(call[0]) for call in self.calls]

    def count(self, name: str) -> int:
        return self.names().count(name)


class FakeGate(_Recording):
    """The VAD gate; `process` returns what the test queued with `script()`, else nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.last_voiced = False
        self.voice_end = 0.0
        self._scripted: deque[Sequence[GateEvent]] = deque()
        self.processed: list[AudioChunk] = []

    def script(self, *events: GateEvent) -> None:
        """The events the next `process()` call returns (one call per `script`)."""
        self._scripted.append(events)

    @property
    def voice_end_ms(self) -> float:
        return self.voice_end

    def process(self, chunk: AudioChunk) -> Sequence[GateEvent]:
        self.calls.append(("process", chunk))
        self.processed.append(chunk)
        return self._scripted.popleft() if self._scripted else ()

    def reset(self) -> None:
        self.calls.append(("reset",))

    def set_muted(self, muted: bool, at_ms: float = 0.0) -> Sequence[GateEvent]:
        self.calls.append(("set_muted", muted))
        return ()


class FakeBargeInDetector(_Recording):
    """`process` returns what the test queued with `script()`, else nothing."""

    def __init__(self) -> None:
        super().__init__()
        self._scripted: deque[Sequence[BargeInEvent]] = deque()

    def script(self, *events: BargeInEvent) -> None:
        self._scripted.append(events)

    def process(self, chunk: AudioChunk, voiced: bool) -> Sequence[BargeInEvent]:
        self.calls.append(("process", chunk, voiced))
        return self._scripted.popleft() if self._scripted else ()

    def reset(self) -> None:
        self.calls.append(("reset",))

    def note_words(self) -> None:
        self.calls.append(("note_words",))


class FakeSttLink(_Recording):
    """Records what STT would hear; `fail_with` makes the named method raise once."""

    def __init__(self) -> None:
        super().__init__()
        self.fed: list[bytes] = []  # raw feed (pre-roll, push-to-talk, barge-in replay)
        self.gated: list[bytes] = []  # through send_gated
        self.fail_with: dict[str, BaseException] = {}

    def _maybe_fail(self, name: str) -> None:
        exc = self.fail_with.pop(name, None)
        if exc is not None:
            raise exc

    @property
    def link_state(self) -> LinkState:
        return LinkState.CONNECTED

    async def start(self) -> None:
        self.calls.append(("start",))

    def begin_utterance(self) -> None:
        self.calls.append(("begin_utterance",))
        self._maybe_fail("begin_utterance")

    def feed(self, pcm: bytes) -> None:
        self.calls.append(("feed", pcm))
        self.fed.append(pcm)

    def send_gated(self, audio: VoicedAudio) -> bytes:
        self.calls.append(("send_gated", audio))
        self.gated.append(audio.chunk.pcm)
        return audio.chunk.pcm

    def end_utterance(self) -> None:
        self.calls.append(("end_utterance",))
        self._maybe_fail("end_utterance")

    def end_session(self) -> None:
        self.calls.append(("end_session",))

    async def close(self) -> None:
        self.calls.append(("close",))


class FakeLlmClient(_Recording):
    """Each `stream_reply` plays the next script queued with `script()`.

    With no script left, a request yields nothing but an `LlmDone` (an empty reply).
    `requests` keeps the messages of each request; `closed` counts streams that were
    closed before their end (a cancelled reply must close the HTTP stream).

    As ChatLlm does, a stream starts with `RequestStarted` and a request whose usage
    came ends with `UsageReported`: a script without either gets them added (the usage
    from its `LlmDone`, if that reports tokens); a script naming either is played as
    written (tool rounds, a usage that never came).
    """

    def __init__(self) -> None:
        super().__init__()
        self._scripts: deque[list[LlmStep]] = deque()
        self.requests: list[list[dict[str, object]]] = []
        self.closed = 0
        self.finished = 0

    def script(self, *steps: LlmStep) -> None:
        self._scripts.append(list(steps))

    async def stream_reply(
        self, messages: list[dict[str, object]]
    ) -> AsyncGenerator[LlmEvent, None]:
        from agentd.llm.events import LlmDone

        self.calls.append(("stream_reply", messages))
        self.requests.append([dict(m) for m in messages])
        steps: list[LlmStep] = self._scripts.popleft() if self._scripts else [LlmDone("stop", 0, 0)]
        steps = _with_request_facts(steps)
        try:
            for step in steps:
                if isinstance(step, asyncio.Event):
                    await step.wait()
                elif isinstance(step, BaseException):
                    raise step
                else:
                    yield step
        except GeneratorExit:
            self.closed += 1
            raise
        except asyncio.CancelledError:
            self.closed += 1
            raise
        self.finished += 1

    def warm_up(self) -> None:
        self.calls.append(("warm_up",))

    async def aclose(self) -> None:
        self.calls.append(("aclose",))


def _with_request_facts(steps: list[LlmStep]) -> list[LlmStep]:
    """`RequestStarted` first and `UsageReported` before a counting `LlmDone`, unless
    the script says them itself (see FakeLlmClient)."""
    from agentd.llm.events import LlmDone, RequestStarted, UsageReported

    if any(isinstance(step, RequestStarted | UsageReported) for step in steps):
        return steps
    out: list[LlmStep] = [RequestStarted()]
    for step in steps:
        if isinstance(step, LlmDone) and (step.prompt_tokens or step.completion_tokens):
            out.append(UsageReported(step.prompt_tokens, step.completion_tokens))
        out.append(step)
    return out


@dataclass(slots=True)
class TtsRequest:
    text: str
    previous_text: str
    next_text: str
    stitching: ReplyStitching | None
    cited_ids: list[str]  # the stitching's previous request ids when the request was made


def default_pcm(text: str) -> bytes:
    """The audio the fake TTS returns for a clause by default: 100 bytes per character."""
    return bytes(100 * len(text))


class FakeTtsClient(_Recording):
    """Each `stream` plays the next script queued with `script()`, else `default_pcm`.

    Like the real TTS link, a request that ends cleanly records its clause in the
    reply's `ReplyStitching`, with a request id "req-N" (N counts requests from 1).
    """

    def __init__(self) -> None:
        super().__init__()
        self._scripts: deque[list[TtsStep]] = deque()
        self.requests: list[TtsRequest] = []
        self.closed = 0

    def script(self, *steps: TtsStep) -> None:
        self._scripts.append(list(steps))

    async def stream(
        self,
        text: str,
        *,
        previous_text: str = "",
        next_text: str = "",
        stitching: ReplyStitching | None = None,
    ) -> AsyncGenerator[bytes, None]:
        self.calls.append(("stream", text, previous_text))
        cited = stitching.previous_request_ids if stitching is not None else []
        self.requests.append(TtsRequest(text, previous_text, next_text, stitching, cited))
        request_id = f"req-{len(self.requests)}"
        steps = self._scripts.popleft() if self._scripts else [default_pcm(text)]
        try:
            for step in steps:
                if isinstance(step, asyncio.Event):
                    await step.wait()
                elif isinstance(step, BaseException):
                    raise step
                else:
                    yield step
        except (GeneratorExit, asyncio.CancelledError):
            self.closed += 1
            raise
        if stitching is not None:
            stitching.record(text, request_id)

    def warm_up(self) -> None:
        self.calls.append(("warm_up",))

    async def aclose(self) -> None:
        self.calls.append(("aclose",))


LINE_PCM = b"\x01" * 400  # a pre-rendered fallback line


def fallback_pcm(text: str) -> bytes:
    """What the fake local voice renders for `text`: 50 bytes of 0x02 per character."""
    return b"\x02" * (50 * len(text))


class FakeFallbackVoice(_Recording):
    def __init__(self) -> None:
        super().__init__()
        self.rendered: list[str] = []
        self.lines: list[str] = []

    def prerender(self) -> None:
        self.calls.append(("prerender",))

    def line(self, name: str) -> bytes:
        self.calls.append(("line", name))
        self.lines.append(name)
        return LINE_PCM

    async def render(self, text: str) -> bytes:
        self.calls.append(("render", text))
        self.rendered.append(text)
        return fallback_pcm(text)


class FakeSpeaker(_Recording):
    """Playback on the test's clock: nothing plays until `play(n)` or `play_all()`.

    Like the real Speaker: `played_bytes` is monotonic, `cancel` drops what is queued
    (and unpauses), paused audio counts as queued for `wait_idle`, and the device tells
    `on_first_audio` when it starts sounding newly written audio after being idle.
    """

    def __init__(self, on_first_audio: Callable[[float], None] | None = None) -> None:
        super().__init__()
        self.on_first_audio = on_first_audio
        self.paused = False
        self.gain = 1.0
        self.written = bytearray()  # everything ever written, in order
        self._played = 0  # bytes of `written` played or dropped, monotonic
        self._played_total = 0  # bytes actually sounded
        self._sounding = False
        self._changed = asyncio.Event()

    # --- the Protocol ---------------------------------------------------------------

    @property
    def volume(self) -> float:
        return self.gain

    @property
    def is_playing(self) -> bool:
        return self.queued > 0

    def write(self, pcm: bytes) -> None:
        self.calls.append(("write", len(pcm)))
        self.written += pcm
        self._changed.set()

    def cancel(self) -> None:
        self.calls.append(("cancel",))
        self._played = len(self.written)  # dropped, not played
        self.paused = False
        self._sounding = False
        self._changed.set()

    def pause(self) -> None:
        self.calls.append(("pause",))
        self.paused = True
        self._changed.set()

    def resume(self) -> None:
        self.calls.append(("resume",))
        self.paused = False
        self._changed.set()

    def set_volume(self, gain: float) -> None:
        self.calls.append(("set_volume", gain))
        self.gain = gain

    def played_bytes(self) -> int:
        return self._played_total

    async def wait_idle(self) -> None:
        self.calls.append(("wait_idle",))
        while self.paused or self.queued:
            self._changed.clear()
            await self._changed.wait()

    # --- the test's controls --------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self.written) - self._played

    def play(self, n_bytes: int) -> int:
        """Sound up to `n_bytes` of the queued audio (none while paused); returns how many."""
        if self.paused:
            return 0
        n = min(n_bytes, self.queued)
        if n <= 0:
            return 0
        if not self._sounding:
            self._sounding = True
            if self.on_first_audio is not None:
                self.on_first_audio(now_ms())
        self._played += n
        self._played_total += n
        if not self.queued:
            self._sounding = False
        self._changed.set()
        return n

    def play_all(self) -> int:
        return self.play(self.queued)


class FakeRecorder(_Recording):
    def __init__(self) -> None:
        super().__init__()
        self.added = 0

    def add(self, pcm: bytes) -> None:
        self.calls.append(("add", len(pcm)))
        self.added += len(pcm)

    def save(self, turn_id: str) -> None:
        self.calls.append(("save", turn_id))

    def discard(self) -> None:
        self.calls.append(("discard",))


@dataclass
class FakeReporter:
    """Collects what the conversation reports, by kind."""

    states: list[AgentState] = field(default_factory=list)
    faults: list[FaultRaised] = field(default_factory=list)
    turns: list[TurnMetrics] = field(default_factory=list)
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    staff_calls: list[tuple[str, str]] = field(default_factory=list)
    transcripts: list[tuple[str, str, str]] = field(default_factory=list)

    def state_changed(self, state: AgentState) -> None:
        self.states.append(state)

    def fault(self, fault: FaultRaised) -> None:
        self.faults.append(fault)

    def turn_finished(self, metrics: TurnMetrics) -> None:
        self.turns.append(metrics)

    def event(self, name: str, payload: dict[str, object]) -> None:
        self.events.append((name, payload))

    def call_staff(self, reason: str, source: str) -> None:
        self.staff_calls.append((reason, source))

    def transcript(self, who: str, text: str, turn_id: str) -> None:
        self.transcripts.append((who, text, turn_id))


@dataclass
class FakeEngagementReporter:
    """The engagement policy's reporter: every state change and event, in order."""

    changes: list[tuple[EngagementState, str]] = field(default_factory=list)
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def engagement_changed(self, state: EngagementState, reason: str) -> None:
        self.changes.append((state, reason))

    def event(self, name: str, payload: dict[str, object]) -> None:
        self.events.append((name, payload))
