"""Echo-safe barge-in on simulated devices with acoustic echo (virtual clock)."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from agentd.audio.barge_in import BargeInDetector, FalseBargeIn
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.reference import ReferenceTap
from agentd.bench.audio import new_detector, run_overlap
from agentd.config.sections_audio import BargeInConfig
from agentd.events import BargeIn, LinkState
from agentd.sim.mic import SimMic
from agentd.sim.scenario import scenario_from_dict
from agentd.sim.speaker import SimSpeaker
from agentd.sim.speech import render_speech

FMT16 = AudioFormat(16000)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("coupling", "delay"), [(-20.0, 20.0), (-10.0, 50.0), (-10.0, 80.0)])
def test_echo_only_never_barges_in(coupling: float, delay: float) -> None:
    trial = run_overlap(coupling, delay)
    assert trial.audio_s > 5.0  # the whole reply was heard back through the mic
    assert trial.barge_ins == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("at_ms", [1300, 2500])
def test_speech_over_echo_barges_in_quickly(at_ms: int) -> None:
    trial = run_overlap(-10.0, 40.0, "Sorry, can you say that again?", visitor_at_ms=at_ms)
    assert trial.barge_ins == 1
    assert trial.reaction_ms is not None and trial.reaction_ms <= 600  # generous bound


@pytest.mark.timeout(60)
def test_echo_model_is_learned_and_kept_between_replies() -> None:
    detector = new_detector()
    greeting = run_overlap(-10.0, 50.0, detector=detector)
    assert greeting.barge_ins == 0 and greeting.pauses == 0
    assert -13.0 <= detector.echo_gain_db <= -7.0  # the coupling, not the -6 dB prior
    assert detector.delay_ms_estimate is not None
    assert 40.0 <= detector.delay_ms_estimate <= 60.0
    # Next reply: a weak "h" onset early in the reply is caught with the learned model.
    trial = run_overlap(
        -10.0, 50.0, "Hold on, can you repeat that?", visitor_at_ms=300, detector=detector
    )
    assert trial.barge_ins == 1 and not trial.early
    assert trial.reaction_ms is not None and trial.reaction_ms <= 300  # generous bound
    assert -13.0 <= detector.echo_gain_db <= -7.0  # the visitor did not inflate it


def test_disabled_detector_is_silent() -> None:
    trial = run_overlap(
        -10.0,
        40.0,
        "Sorry, can you say that again?",
        visitor_at_ms=1300,
        config=BargeInConfig(enabled=False),
    )
    assert trial.barge_ins == 0 and trial.pauses == 0


def test_aec_mode_trusts_vad_and_false_barge_in_follows_without_words() -> None:
    fmt = AudioFormat(16000)
    tap = ReferenceTap(fmt)
    config = BargeInConfig(mode="aec", resume_after_false_s=2.0)
    detector = BargeInDetector(config, tap)
    speech = render_speech("Excuse me, one question.", 16000)
    silence = bytes(fmt.bytes_for_ms(20))
    events = []
    at = 1000.0
    tap.push(bytes(fmt.bytes_for_ms(3000)), at)  # agent is speaking (energy irrelevant)
    for i in range(0, len(speech) - 640, 640):
        events += detector.process(AudioChunk(speech[i : i + 640], FMT16, at), voiced=True)
        at += 20
    for _ in range(120):
        events += detector.process(AudioChunk(silence, FMT16, at), voiced=False)
        at += 20
    assert sum(isinstance(e, BargeIn) for e in events) == 1
    assert any(isinstance(e, FalseBargeIn) for e in events)

    detector2 = BargeInDetector(config, tap)
    events2 = []
    at = 1000.0
    for i in range(0, len(speech) - 640, 640):
        events2 += detector2.process(AudioChunk(speech[i : i + 640], FMT16, at), voiced=True)
        at += 20
    detector2.note_words()
    for _ in range(120):
        events2 += detector2.process(AudioChunk(silence, FMT16, at), voiced=False)
        at += 20
    assert any(isinstance(e, BargeIn) for e in events2)
    assert not any(isinstance(e, FalseBargeIn) for e in events2)


@pytest.mark.timeout(60)
def test_sim_conversation_wav_and_faults(tmp_path: Path) -> None:
    wav_path = tmp_path / "conversation.wav"
    speaker = SimSpeaker(wav_path=str(wav_path))
    scenario = scenario_from_dict(
        {
            "noise_db": -50,
            "tail_ms": 200,
            "turn": [
                {"visitor": "Hi there.", "pause_before_ms": 200},
                {"visitor": "Thanks.", "pause_before_ms": 300},
            ],
        }
    )
    states: list[LinkState] = []
    mic = SimMic(
        scenario,
        speaker=speaker,
        realtime=False,
        echo_db=-10.0,
        on_link=lambda s, _d: states.append(s),
    )
    reply = render_speech("Hello!", 16000)
    delivered: list[float] = []
    mic.inject_xrun(60)
    mic.inject_device_lost(0.2)

    def on_frame(chunk: AudioChunk) -> None:
        delivered.append(chunk.at_ms)
        if len(delivered) == 60:
            speaker.write(reply)  # the agent answers the first turn

    mic.run(on_frame)
    speaker.close()
    assert mic.stats.xruns == 1 and mic.stats.reopens == 1
    assert states == [LinkState.DISCONNECTED, LinkState.CONNECTED]
    assert delivered[0] - mic.t0_ms >= 260  # 60 ms xrun + 200 ms lost were not delivered
    assert len(mic.spans) == 2 and mic.spans[1].start_ms > speaker.played[-1][0]
    assert speaker.first_audio_ms
    with wave.open(str(wav_path)) as wav:
        assert wav.getnchannels() == 2
        assert wav.getnframes() / 16000 > 1.5


def test_pause_keeps_the_period_already_played_in_the_reference() -> None:
    speaker = SimSpeaker()
    tone = render_speech("Hello there.", 16000)
    speaker.write(tone)
    played = b""
    at = 0.0
    while not any(played):  # advance until a loud period has left the speaker
        played = speaker.advance(at)
        at += speaker.period_ms
    last = at - speaker.period_ms
    speaker.pause()
    # Its echo is still on the way to the mic: the reference must keep it...
    assert speaker.reference.max_energy(last, last + speaker.period_ms) > 0.0
    assert speaker.reference.last_played_ms() == last + speaker.period_ms
    assert speaker.silent_since_ms == last + speaker.period_ms
    # ...and nothing is played while paused.
    assert speaker.advance(at) == b""


def test_reference_reverb_tail_decays_at_the_given_rate() -> None:
    fmt = AudioFormat(16000)
    tap = ReferenceTap(fmt)
    loud = render_speech("Ah.", 16000)
    block = fmt.bytes_for_ms(10)
    peak = max(range(0, len(loud) - block, block), key=lambda k: sum(loud[k : k + block]))
    tap.push(loud[peak : peak + block], 0.0)  # one block, [0, 10) ms
    direct = tap.max_energies(0.0, 20.0)[0]
    assert direct > 0.0
    assert tap.max_energies(40.0, 60.0)[0] == 0.0  # no tail asked for: gone
    tailed = tap.max_energies(40.0, 60.0, tail_ms=100.0, decay_db_per_ms=0.1)[0]
    assert tailed == pytest.approx(direct * 10.0 ** (-0.1 * 30.0 / 10.0), rel=1e-6)
    assert tap.max_energies(200.0, 220.0, tail_ms=100.0, decay_db_per_ms=0.1)[0] == 0.0


@pytest.mark.timeout(60)
def test_echo_filter_hears_a_weak_onset_under_nonlinear_echo() -> None:
    from agentd.config.sections_audio import BargeInConfig

    detector = new_detector(BargeInConfig(echo_filter=True))
    greeting = run_overlap(-6.0, 50.0, detector=detector, nonlinear=True)
    assert greeting.barge_ins == 0 and greeting.pauses == 0  # clipped, wobbling echo
    assert detector._judge.ready  # the residual, not the energy model, decides now
    trial = run_overlap(
        -6.0,
        50.0,
        "Fine, and the parking permit?",
        visitor_at_ms=700,
        detector=detector,
        nonlinear=True,
    )
    assert trial.barge_ins == 1 and not trial.early
    assert trial.reaction_ms is not None and trial.reaction_ms <= 250  # generous bound
    again = run_overlap(-6.0, 50.0, detector=detector, nonlinear=True)
    assert again.pauses == 0  # the visitor did not teach the filter a wrong echo path


def test_speaker_timeline_matches_the_reference_across_replies() -> None:
    """What left the speaker, period by period (silence when idle), is what the
    reference says was played at those times: the echo filter learns its echo path
    sample-exact. A reply ending mid-period used to shift every later reply's echo
    against the reference by the missing part (a false barge-in on every later reply)."""
    speaker = SimSpeaker()
    period = speaker.format.bytes_for_ms(speaker.period_ms)
    reply = render_speech("Right next to the lifts.", 16000)
    odd = reply[: len(reply) - len(reply) % period - period // 2 + 2]  # ends mid-period
    stream = bytearray()
    at = 0.0
    for text in (odd, reply):
        speaker.write(text)
        for _ in range(len(text) // period + 5):
            played = speaker.advance(at)
            stream += played or bytes(period)  # what SimMic's echo path hears
            at += speaker.period_ms
    assert any(stream)
    assert speaker.reference.samples(0.0, len(stream) // 2) == bytes(stream)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("before_ms", "after_ms"), [(80.0, 40.0), (60.0, 30.0)])
def test_echo_arriving_earlier_mid_conversation_is_relearned(
    before_ms: float, after_ms: float
) -> None:
    """The speaker's buffering changed: the echo now comes before the converged filter's
    window. Its misfit looks like a visitor; after a few dismissed pauses the detector
    starts over instead of pausing every reply for good."""
    detector = new_detector()
    for _ in range(2):  # converge on the old path
        assert run_overlap(-10.0, before_ms, detector=detector).pauses == 0
    pauses = [run_overlap(-10.0, after_ms, detector=detector).pauses for _ in range(4)]
    assert detector.stats["relearned"] >= 1
    assert pauses[1:] == [0, 0, 0], pauses  # only the first reply after the move stutters
    assert detector.delay_ms_estimate is not None
    assert abs(detector.delay_ms_estimate - after_ms) <= 20.0
    trial = run_overlap(
        -10.0, after_ms, "Sorry, can you say that again?", visitor_at_ms=1300, detector=detector
    )
    assert trial.barge_ins == 1 and not trial.early
