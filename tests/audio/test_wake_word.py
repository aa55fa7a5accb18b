"""The wake word (issue 14): pymicro-wakeword's okay_nabu hears espeak-ng "Okay Nabu" in
the en-us and en-gb voices, not other speech; a bad model is a ConfigError (exit 78)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentd.audio import dsp
from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.vad_gate import VadGate
from agentd.config.sections_audio import VadConfig
from agentd.config.sections_engagement import EngagementConfig, NearFieldConfig, WakeWordConfig
from agentd.conversation.engagement import EngagementState, engagement_from_config
from agentd.errors import ConfigError
from agentd.events import SpeechEnded, SpeechStarted, VoicedAudio
from agentd.sim.lobby import VISITOR_VOICES, VISITOR_WPM, voiced_end_ms
from agentd.sim.speech import render_noise, render_speech
from tests.conversation.fakes import FakeEngagementReporter

pytest.importorskip("pymicro_wakeword")
FMT = AudioFormat(16000)


def with_room(pcm: bytes) -> bytes:
    padded = bytes(16000) + pcm + bytes(32000)
    return dsp.mix(padded, render_noise(len(padded) // 32, 16000, -55.0))


def detections(pcm: bytes, config: WakeWordConfig | None = None) -> list[float]:
    from agentd.audio.wake_word import WakeWordDetector

    detector = WakeWordDetector(config or WakeWordConfig())
    found = [detector.process(pcm[i : i + 640], i / 32) for i in range(0, len(pcm), 640)]
    detector.close()
    return [d.at_ms for d in found if d is not None]


@pytest.mark.parametrize("voice", ["en-us", "en-gb"])
def test_okay_nabu_is_detected_once_near_its_end(voice: str) -> None:
    wake = render_speech("Okay Nabu", 16000, voice)
    hits = detections(with_room(wake + render_speech("when are you open?", 16000, voice)))
    assert len(hits) == 1
    spoken_end = 500 + voiced_end_ms(wake)  # with_room: 500 ms lead-in
    assert spoken_end - 200 <= hits[0] <= spoken_end + 400


@pytest.mark.parametrize(
    "text", ["Okay, now where did I put my badge?", "Hello, when are you open tomorrow?"]
)
def test_other_speech_is_not_the_wake_word(text: str) -> None:
    assert detections(with_room(render_speech(text, 16000, "en-us"))) == []


def test_bad_model_paths_are_config_errors(tmp_path: Path) -> None:
    from agentd.audio.wake_word import WakeWordDetector

    with pytest.raises(ConfigError, match=r"engagement\.wake_word\.model: model file not found"):
        WakeWordDetector(WakeWordConfig(model=str(tmp_path / "nope.json")))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"model": "missing.tflite", "wake_word": "x", "micro": {}}))
    with pytest.raises(ConfigError, match=r"engagement\.wake_word\.model"):
        WakeWordDetector(WakeWordConfig(model=str(broken)))
    with pytest.raises(ConfigError, match="16 kHz"):
        WakeWordDetector(WakeWordConfig(), rate_hz=48000)


def test_custom_model_loads_from_a_path() -> None:
    import pymicro_wakeword

    from agentd.audio.wake_word import WakeWordDetector

    path = Path(pymicro_wakeword.__file__).parent / "models" / "hey_jarvis.json"
    detector = WakeWordDetector(WakeWordConfig(model=str(path)))
    assert detector.wake_word.lower() == "hey jarvis"
    detector.close()


def test_wake_word_mode_turns_the_rest_of_the_utterance_into_the_turn() -> None:
    """Real gate, near-field gate and detector: "Okay Nabu, when are you open?" is one
    turn that starts at the detection; a bystander sentence before it is none."""
    reporter = FakeEngagementReporter()
    config = EngagementConfig(
        modes=("wake_word",), near_field=NearFieldConfig(min_level_dbfs=-40.0, min_snr_db=10.0)
    )
    engagement = engagement_from_config(config, reporter, 16000)
    other = render_speech("Did you see the game last night?", 16000, "en-gb")
    wake = render_speech("Okay Nabu", 16000, "en-us")
    pcm = with_room(
        other + bytes(32000) + wake + bytes(4000) + render_speech("when are you open?", 16000)
    )
    gate, out = VadGate(VadConfig(), 16000, 20), []
    for offset in range(0, len(pcm) - 640 + 1, 640):
        chunk = AudioChunk(pcm[offset : offset + 640], FMT, offset / 32)
        out += engagement.front_end(chunk, gate.process(chunk), True)
    starts = [e for e in out if isinstance(e, SpeechStarted)]
    assert len(starts) == 1
    question_at = 500 + (len(other) + 32000 + len(wake) + 4000) / 32
    assert question_at - 100 <= starts[0].at_ms <= question_at + 300
    assert any(isinstance(e, VoicedAudio) for e in out) and isinstance(out[-1], SpeechEnded)
    assert reporter.changes == [(EngagementState.ENGAGED, "wake_word")]


def test_peak_probability_says_how_close_a_miss_came() -> None:
    from agentd.audio.wake_word import WakeWordDetector

    detector = WakeWordDetector(WakeWordConfig())
    pcm = with_room(render_speech("Okay Nabu", 16000, "en-us"))
    for offset in range(0, len(pcm), 640):
        detector.process(pcm[offset : offset + 640], offset / 32)
    assert detector.detections == 1
    assert detector.reset_peak() > detector.cutoff
    assert detector.peak_probability == 0.0
    other = with_room(render_speech("Did you see the game last night?", 16000, "en-us"))
    for offset in range(0, len(other), 640):
        detector.process(other[offset : offset + 640], 1e6 + offset / 32)
    assert 0.0 <= detector.peak_probability <= detector.cutoff
    detector.close()


# The lobby's visitors (issue 14) speak only in voices the model hears in isolation,
# wherever the word falls against its 30 ms stride (docs/engagement.md, "Wake word").
VISITOR_CASES = [(v, w) for v in VISITOR_VOICES for w in VISITOR_WPM]


@pytest.mark.parametrize(("voice", "wpm"), VISITOR_CASES)
def test_every_visitor_voice_is_heard_in_isolation_at_every_phase(voice: str, wpm: int) -> None:
    from agentd.bench.wake_voices import phase_peaks

    peaks = phase_peaks("okay_nabu", render_speech("Okay Nabu", 16000, voice, wpm))
    assert min(peaks) > 0.85, peaks  # okay_nabu's own cutoff


def test_espeak_en_us_f3_is_outside_okay_nabus_distribution() -> None:
    """The two visitors the 30-minute lobby used to miss: en-us+f3 at 165 wpm is below the
    cutoff at every phase even alone and clean (the docs say so; alexa and hey_mycroft
    hear the same variant, and okay_nabu hears the same variant on the British voice)."""
    from agentd.bench.wake_voices import phase_peaks

    assert max(phase_peaks("okay_nabu", render_speech("Okay Nabu", 16000, "en-us+f3", 165))) < 0.85
    assert min(phase_peaks("okay_nabu", render_speech("Okay Nabu", 16000, "en+f3", 165))) > 0.85
