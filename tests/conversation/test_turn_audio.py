"""The turn model's questions (TurnAudio) and how a held turn's wait follows the answer.

The model is faked (agentd.audio.turn_model.FakeTurnModel, the TurnModel port); the
thread, the ring of mic audio and the loop bridge are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agentd.audio.turn_model import FakeTurnModel
from agentd.config.sections_turn import TurnEndConfig
from agentd.conversation.ports import TurnModel
from agentd.conversation.turn_audio import KEEP_MS, PRE_SPEECH_MS, TAIL_MS, TurnAudio
from agentd.conversation.turn_end import TurnEndPolicy
from agentd.events import AgentState, SpeechEnded, SpeechStarted, TurnModelAnswered, now_ms
from agentd.llm.events import LlmDone, TextDelta
from tests.conversation.rig import Rig, build_rig, chunk

ANSWER_TIMEOUT_S = 10.0  # a worker thread on a loaded 2-core CI box; normally < 10 ms


class Answers:
    """Collects what TurnAudio emits; `next()` awaits the next answer."""

    def __init__(self) -> None:
        self.got: list[TurnModelAnswered] = []
        self._queue: asyncio.Queue[TurnModelAnswered] = asyncio.Queue()

    def emit(self, event: object) -> None:
        assert isinstance(event, TurnModelAnswered)
        self.got.append(event)
        self._queue.put_nowait(event)

    async def next(self) -> TurnModelAnswered:
        return await asyncio.wait_for(self._queue.get(), ANSWER_TIMEOUT_S)


def _filled(audio: TurnAudio, start_ms: float, end_ms: float) -> None:
    at = start_ms
    while at < end_ms:
        audio.remember(chunk(at))
        at += 20


def test_the_fake_is_a_turn_model() -> None:
    model: TurnModel = FakeTurnModel()  # mypy checks the fake against the port
    assert model.complete_probability(b"\0\0") == 0.5


async def test_the_clip_is_the_turn_with_pre_speech_and_a_short_tail() -> None:
    audio = TurnAudio(FakeTurnModel(), Answers().emit)
    _filled(audio, 0.0, 20_000.0)
    assert len(audio.clip(15_000.0, 16_000.0)) == 32 * (1000 + PRE_SPEECH_MS + TAIL_MS)
    assert len(audio.clip(0.0, 19_000.0)) == 32 * 8000  # the model's last 8 s only
    assert audio.clip(0.0, 1000.0) == b""  # trimmed: older than the ring keeps
    kept_from = 20_000.0 - 20 - KEEP_MS
    assert len(audio.clip(kept_from + 1000, kept_from + 2000)) == 32 * (
        1000 + TAIL_MS + PRE_SPEECH_MS
    )
    audio.close()


async def test_an_answer_comes_back_on_the_loop_with_its_question() -> None:
    answers, model = Answers(), FakeTurnModel(probability=0.9)
    audio = TurnAudio(model, answers.emit)
    _filled(audio, 0.0, 3000.0)
    request = audio.ask(1000.0, 2000.0)
    answer = await answers.next()
    assert answer.request_id == request and answer.complete_probability == 0.9
    assert answer.audio_ms == 1000 + PRE_SPEECH_MS + TAIL_MS
    assert model.calls == [32 * 1700] and audio.answered == 1
    audio.close()


async def test_overtaken_questions_are_skipped_unrun() -> None:
    answers, model = Answers(), FakeTurnModel(probability=0.3, hold=True)
    audio = TurnAudio(model, answers.emit)
    _filled(audio, 0.0, 3000.0)
    first = audio.ask(0.0, 1000.0)
    assert await asyncio.to_thread(model.entered.wait, ANSWER_TIMEOUT_S)  # blocked in it
    audio.ask(0.0, 1500.0)  # overtaken while queued
    last = audio.ask(0.0, 2000.0)
    model.release()
    assert (await answers.next()).request_id == first
    assert (await answers.next()).request_id == last
    assert len(model.calls) == 2  # the middle question never reached the model
    audio.close()


async def test_a_failing_model_gives_no_answer() -> None:
    class Broken:
        def complete_probability(self, pcm: bytes) -> float:
            raise RuntimeError("onnxruntime: bad input")

    answers = Answers()
    audio = TurnAudio(Broken(), answers.emit)
    _filled(audio, 0.0, 2000.0)
    audio.ask(0.0, 1000.0)
    audio.ask(0.0, 1500.0)  # queued behind the first: its failure is counted, then this one
    for _ in range(200):
        if audio.failed:
            break
        await asyncio.sleep(0.01)  # the executor future has no event to await from here
    assert audio.failed >= 1 and answers.got == []
    audio.close()


# --- the conversation: a held turn's wait follows the model ----------------------------

AMBIGUOUS = "I'm here to see Anna Schmidt"  # U3 Pro's text at a pause: no full stop


Wired = tuple[Rig, FakeTurnModel, Answers]


@pytest.fixture
async def wired() -> AsyncIterator[Wired]:
    rig = build_rig()
    model, answers = FakeTurnModel(), Answers()

    def emit(event: object) -> None:
        rig.conv.handle(event)
        answers.emit(event)

    rig.conv.parts.turn_end = TurnEndPolicy(TurnEndConfig(audio_model=True))
    rig.conv.parts.turn_audio = TurnAudio(model, emit)
    yield rig, model, answers
    await rig.conv.parts.aclose()


def _held_turn(rig: Rig, text: str) -> float:
    """A visitor speaks 1 s, pauses; STT's final is `text`. Returns the voice end."""
    t0 = now_ms() - 1300
    for i in range(60):
        rig.conv.on_audio(chunk(t0 + 20 * i))
    voice_end = t0 + 1000
    rig.conv.handle(SpeechStarted(t0, preroll=b""))
    rig.conv.handle(SpeechEnded(voice_end + 300, 1000, voice_end_ms=voice_end))
    rig.finalize(text, at_ms=voice_end + 400)
    return voice_end


async def test_a_confident_complete_answers_an_ambiguous_pause_sooner(wired: Wired) -> None:
    rig, model, answers = wired
    rig.llm.script(TextDelta("Anna is on her way."), LlmDone("stop", 10, 5))
    model.probability = 0.95
    voice_end = _held_turn(rig, AMBIGUOUS)
    assert rig.state() is AgentState.LISTENING  # held: no full stop
    await answers.next()
    rig.conv.on_audio(chunk(voice_end + 520))  # past the model's 500 ms, short of 1500
    assert rig.state() is AgentState.THINKING
    assert [t[:2] for t in rig.reporter.transcripts] == [("visitor", AMBIGUOUS)]
    assert len(model.calls) == 1 and model.calls[0] >= 32 * 1000  # it heard the turn


async def test_an_unsure_model_leaves_the_words_wait(wired: Wired) -> None:
    rig, model, answers = wired
    model.probability = 0.5
    voice_end = _held_turn(rig, AMBIGUOUS)
    await answers.next()
    rig.conv.on_audio(chunk(voice_end + 520))
    assert rig.state() is AgentState.LISTENING
    words_wait = rig.conv.parts.turn_end.wait_ms(AMBIGUOUS)
    rig.conv.on_audio(chunk(voice_end + words_wait + 20))  # ended by the words' own wait
    assert rig.state() is AgentState.THINKING


async def test_words_that_decide_are_not_put_to_the_model(wired: Wired) -> None:
    rig, model, _answers = wired
    rig.llm.script(TextDelta("Welcome."), LlmDone("stop", 10, 5))
    _held_turn(rig, "I have a parcel for")  # a function word: held, no question
    assert rig.state() is AgentState.LISTENING
    assert rig.conv.parts.turn_audio is not None and rig.conv.parts.turn_audio.asked == 0
    assert model.calls == []


async def test_an_answer_after_the_visitor_went_on_changes_nothing(wired: Wired) -> None:
    rig, model, answers = wired
    model.probability, model.hold = 0.99, True
    voice_end = _held_turn(rig, AMBIGUOUS)
    assert await asyncio.to_thread(model.entered.wait, ANSWER_TIMEOUT_S)  # it is thinking
    rig.conv.handle(SpeechStarted(voice_end + 600, preroll=b""))  # the visitor goes on
    model.release()
    await answers.next()  # it was already running: it answers, stale
    rig.conv.on_audio(chunk(voice_end + 700))
    assert rig.state() is AgentState.LISTENING and rig.reporter.transcripts == []
