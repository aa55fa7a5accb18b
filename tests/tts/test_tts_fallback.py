"""FallbackVoice: real espeak-ng lines, pre-rendered at the playback rate; tones without it."""

from __future__ import annotations

import array
import logging
import math

import pytest

from agentd.config.sections_tts import FallbackConfig
from agentd.tts.fallback import LINE_NAMES, FallbackVoice, tone_pattern

pytestmark = pytest.mark.timeout(60)


def rms(pcm: bytes) -> float:
    samples = array.array("h", pcm)
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


@pytest.mark.parametrize("rate_hz", [16000, 48000])
def test_prerender_gives_speech_for_every_line(rate_hz: int) -> None:
    config = FallbackConfig()
    voice = FallbackVoice(config, rate_hz)
    assert voice.has_speech
    voice.prerender()
    for name in LINE_NAMES:
        pcm = voice.line(name)
        seconds = len(pcm) / 2 / rate_hz
        words = len(getattr(config, name).split())
        expected_s = words / config.espeak_speed_wpm * 60
        assert len(pcm) % 2 == 0
        assert expected_s * 0.6 <= seconds <= expected_s * 1.6, (name, seconds, expected_s)
        assert rms(pcm) > 500, f"{name} is silent"


def test_configured_voice_speed_is_used() -> None:
    slow = FallbackVoice(FallbackConfig(espeak_speed_wpm=100), 16000).line("offline_line")
    fast = FallbackVoice(FallbackConfig(espeak_speed_wpm=300), 16000).line("offline_line")
    assert len(slow) > 1.8 * len(fast)


def test_line_before_prerender_still_speaks(caplog: pytest.LogCaptureFixture) -> None:
    voice = FallbackVoice(FallbackConfig(sorry_line="One moment please."), 16000)
    with caplog.at_level(logging.WARNING):
        pcm = voice.line("sorry_line")
    assert rms(pcm) > 500
    assert "before prerender" in caplog.text


def test_unknown_line_name_is_a_clear_error() -> None:
    voice = FallbackVoice(FallbackConfig(), 16000)
    with pytest.raises(ValueError, match=r"unknown fallback line 'hello'.*sorry_line"):
        voice.line("hello")


async def test_render_arbitrary_text_off_the_loop() -> None:
    voice = FallbackVoice(FallbackConfig(), 22050)
    pcm = await voice.render("The lift is **to your left**. <break time='5s'/>")
    assert 0.8 <= len(pcm) / 2 / 22050 <= 3.0
    assert rms(pcm) > 500
    assert await voice.render("  ") == b""


def test_without_espeak_a_tone_pattern_plays(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng, no sox
    voice = FallbackVoice(FallbackConfig(sorry_line="A line never rendered before, 1."), 16000)
    assert not voice.has_speech
    with caplog.at_level(logging.ERROR):
        voice.prerender()
    assert "espeak-ng or sox not found" in caplog.text
    assert caplog.text.count("tone pattern") == 1, "logged once, not per line"
    for name in LINE_NAMES:
        assert voice.line(name) == tone_pattern(16000)
    assert rms(tone_pattern(16000)) > 1000


def test_tone_pattern_length_and_rate() -> None:
    for rate_hz in (16000, 44100, 48000):
        pcm = tone_pattern(rate_hz)
        assert 0.4 <= len(pcm) / 2 / rate_hz <= 0.6
