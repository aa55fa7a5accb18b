"""VAD gate on real espeak-ng speech over sox noise, against known speech spans."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.vad_gate import GateEvent, VadGate
from agentd.config.sections_audio import VadConfig
from agentd.events import SpeechEnded, SpeechStarted, VoicedAudio
from agentd.sim.mic import SimMic
from agentd.sim.scenario import load_scenario, scenario_from_dict

FRONT_DESK = Path(__file__).parents[2] / "agentd" / "sim" / "scenarios" / "front-desk.toml"
FMT = AudioFormat(16000)

FMT16 = AudioFormat(16000)


def _run(mic: SimMic, gate: VadGate) -> list[tuple[GateEvent, float]]:
    out: list[tuple[GateEvent, float]] = []

    def on_frame(chunk: AudioChunk) -> None:
        out.extend((e, chunk.at_ms) for e in gate.process(chunk))

    mic.run(on_frame)
    return out


def _utterances(events: list[tuple[GateEvent, float]]) -> list[tuple[float, float, bytes]]:
    """(audio start ms, audio end ms, pcm) of every gated utterance."""
    result = []
    start, pcm = 0.0, b""
    for event, _ in events:
        if isinstance(event, SpeechStarted):
            pcm = event.preroll
            start = event.at_ms - FMT.duration_ms(len(pcm))
        elif isinstance(event, VoicedAudio):
            pcm += event.chunk.pcm
        elif isinstance(event, SpeechEnded):
            result.append((start, start + FMT.duration_ms(len(pcm)), pcm))
    return result


@pytest.mark.timeout(60)
def test_gate_opens_on_every_utterance_from_its_true_onset() -> None:
    scenario = load_scenario(FRONT_DESK)
    mic = SimMic(scenario, realtime=False)
    events = _run(mic, VadGate(VadConfig()))
    utterances = _utterances(events)
    assert len(mic.spans) == len(scenario.turns) == 3
    # A visitor's line is said with its punctuation pauses, and a long enough pause closes
    # the gate: a line may be several utterances, but never more than its pauses allow.
    assert (
        len(mic.spans)
        <= len(utterances)
        <= len(mic.spans) + sum(len(span.pauses) for span in mic.spans)
    )
    for span in mic.spans:
        inside = [u for u in utterances if u[1] > span.start_ms and u[0] < span.end_ms]
        assert inside, f"no utterance for {span.text!r}"
        (start, _, _), (_, end, _) = inside[0], inside[-1]
        assert start <= span.start_ms, f"onset clipped for {span.text!r}"
        assert span.start_ms - start >= 100, "pre-roll must cover the onset with margin"
        assert end >= span.end_ms - 60, f"tail clipped for {span.text!r}"
    for start, end, pcm in utterances:
        assert any(start < span.end_ms and end > span.start_ms for span in mic.spans)
        assert len(pcm) == FMT.bytes_for_ms(end - start)
    assert not any(e.too_short for e, _ in events if isinstance(e, SpeechEnded))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("noise_db", [-200.0, -48.0, -40.0])
def test_silence_and_steady_noise_send_nothing(noise_db: float) -> None:
    scenario = scenario_from_dict(
        {"noise_db": noise_db, "tail_ms": 0, "turn": [{"visitor": "", "pause_before_ms": 6000}]}
    )
    mic = SimMic(scenario, realtime=False)
    events = _run(mic, VadGate(VadConfig()))
    assert mic.stats.frames >= FMT.frames_for_ms(5900)
    assert events == []


@pytest.mark.timeout(30)
def test_mute_stops_audio_reaching_the_gate_and_closes_an_open_utterance() -> None:
    scenario = scenario_from_dict(
        {
            "noise_db": -50.0,
            "tail_ms": 500,
            "turn": [
                {"visitor": "Good morning, I am here for the workshop.", "pause_before_ms": 400},
                {"visitor": "Where is the lift?", "pause_before_ms": 800},
            ],
        }
    )
    gate = VadGate(VadConfig())
    mic = SimMic(scenario, realtime=False)
    events: list[object] = []

    def on_frame(chunk: AudioChunk) -> None:
        if gate.is_open and not any(isinstance(e, SpeechEnded) for e in events):
            events.extend(gate.set_muted(True, chunk.at_ms))  # mute mid-utterance
        events.extend(gate.process(chunk))

    mic.run(on_frame)
    assert isinstance(events[0], SpeechStarted)
    assert isinstance(events[-1], SpeechEnded)
    assert sum(isinstance(e, SpeechStarted) for e in events) == 1  # 2nd turn never reached
    gate.set_muted(False)
    assert gate.process(AudioChunk(bytes(640), FMT16, 0.0)) == []


def test_too_short_and_max_length() -> None:
    config = VadConfig(max_utterance_s=1.0, min_speech_ms=5000)
    scenario = scenario_from_dict(
        {"noise_db": -50.0, "tail_ms": 1000, "turn": [{"visitor": "Hello there, one two three."}]}
    )
    events = _run(SimMic(scenario, realtime=False), VadGate(config))
    ended = [e for e, _ in events if isinstance(e, SpeechEnded)]
    assert ended and all(e.too_short for e in ended)
    assert len(ended) >= 2  # cut at 1 s, then reopened on the rest


def _cut_speech_events(cut_offset_ms: int) -> list[VoicedAudio]:
    """Gate 10 ms frames over noise + speech cut off mid-word + noise.

    The cut sits `cut_offset_ms` into a 10 ms frame, inside loud speech, so the true
    voice end is known to the sample.
    """
    from agentd.audio import dsp
    from agentd.sim.speech import render_noise, render_speech

    speech = render_speech("Good morning, I would like to see Anna please", 16000)
    frame = FMT.bytes_for_ms(10)
    loud = [  # frame indices whose energy is well above the noise
        i
        for i in range(len(speech) // frame)
        if dsp.energy_db(dsp.mean_square(speech[i * frame : (i + 1) * frame])) > -30
    ]
    k = next(i for i in loud[len(loud) // 2 :] if all(j in loud for j in range(i - 3, i + 2)))
    cut = k * frame + FMT.bytes_for_ms(cut_offset_ms)
    lead = render_noise(500, 16000, -60.0)
    tail = render_noise(500, 16000, -60.0, seed=2)
    signal = lead + speech[:cut] + tail
    gate = VadGate(VadConfig(), 16000, frame_ms=10)
    events = gate.process(AudioChunk(signal, FMT16, 0.0))
    return [e for e in events if isinstance(e, VoicedAudio)]


@pytest.mark.timeout(60)
def test_voice_ending_inside_a_frame_is_flagged_on_that_frame() -> None:
    """The STT link can flush a word's end with its last frame, not one period later."""
    events = _cut_speech_events(cut_offset_ms=4)  # 4 ms of voice, 6 ms of room noise
    last_voiced = max(i for i, e in enumerate(events) if e.voiced)
    assert events[last_voiced].ends_quiet
    # ... and only there: frames full of speech never claim the voice stopped.
    assert not any(e.ends_quiet for e in events[last_voiced - 20 : last_voiced])
    assert all(e.voiced or not e.ends_quiet for e in events)


@pytest.mark.timeout(60)
def test_voice_ending_on_a_frame_boundary_waits_for_the_next_frame() -> None:
    events = _cut_speech_events(cut_offset_ms=10)  # the whole frame is speech
    last_voiced = max(i for i, e in enumerate(events) if e.voiced)
    assert not events[last_voiced].ends_quiet
    assert not events[last_voiced + 1].voiced  # the unvoiced frame after it flushes
