"""The audio turn model is one signal among several: it moves the wait only where the
words cannot tell, within the policy's bounds (pure policy: no clock, no model)."""

from __future__ import annotations

import pytest

from agentd.config.sections_turn import TurnEndConfig
from agentd.conversation.turn_end import TurnEndPolicy, ambiguous
from agentd.errors import ConfigError

ON = TurnEndConfig(audio_model=True)  # complete >= 0.8, incomplete <= 0.2, pause 500 ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm here to see Anna Schmidt", True),  # U3 Pro: no full stop, yet a whole phrase
        ("anna schmidt", True),
        ("Yes.", False),  # a sentence end decides
        ("Where are you from?", False),
        ("I'm here to see", True),  # "see" is no function word: the words cannot tell
        ("I have a parcel for", False),  # a function word decides
        ("So, um", False),  # a filler decides
        ("a coffee,", False),  # a comma decides
        ("", False),
    ],
)
def test_only_transcripts_the_words_cannot_judge_are_ambiguous(text: str, expected: bool) -> None:
    assert ambiguous(text) is expected


def test_a_confident_complete_shortens_an_ambiguous_wait_to_the_model_pause() -> None:
    policy = TurnEndPolicy(ON)
    text = "I'm here to see Anna Schmidt"
    assert policy.wait_ms(text) > ON.audio_model_pause_ms  # no answer yet: the words' wait
    assert policy.model_wait_ms(text, 0.95) == 500.0
    assert policy.model_wait_ms(text, 0.8) == 500.0  # the threshold is inclusive
    unpunctuated = TurnEndPolicy(ON, punctuated=False)
    assert unpunctuated.model_wait_ms("anna schmidt", 0.95) == 500.0  # min(700, 500)


def test_a_confident_incomplete_lengthens_an_unpunctuated_wait_to_the_bound() -> None:
    policy = TurnEndPolicy(ON, punctuated=False)
    assert policy.wait_ms("anna schmidt") == ON.unpunctuated_pause_ms < ON.max_pause_ms
    assert policy.model_wait_ms("anna schmidt", 0.05) == ON.max_pause_ms
    assert policy.model_wait_ms("anna schmidt", 0.2) == ON.max_pause_ms  # inclusive
    assert policy.model_wait_ms("anna schmidt", 0.5) == ON.unpunctuated_pause_ms  # unsure


def test_the_model_never_overrides_words_that_decide() -> None:
    policy = TurnEndPolicy(ON)
    assert policy.model_wait_ms("Yes.", 0.0) == 0.0  # a finished sentence: answered now
    assert policy.model_wait_ms("I have a parcel for", 1.0) == policy.wait_ms("I have a parcel for")
    assert policy.model_wait_ms("Um", 1.0) == policy.wait_ms("Um") > 0
    assert not policy.asks_model("Yes.") and not policy.asks_model("I have a parcel for")
    assert policy.asks_model("I'm here to see Anna Schmidt")


def test_the_model_is_ignored_when_off_and_a_zero_pause_ends_the_turn_at_once() -> None:
    off = TurnEndPolicy(TurnEndConfig())
    assert not off.asks_model("I'm here to see Anna Schmidt")
    text = "I'm here to see Anna Schmidt"
    assert off.model_wait_ms(text, 0.99) == off.wait_ms(text) > 0
    eager = TurnEndPolicy(TurnEndConfig(audio_model=True, audio_model_pause_ms=0))
    assert eager.model_wait_ms("I'm here to see Anna Schmidt", 0.99) == 0.0


def test_shadow_mode_asks_but_never_moves_the_wait() -> None:
    shadow = TurnEndPolicy(TurnEndConfig(audio_model=True, audio_model_shadow=True))
    text = "I'm here to see Anna Schmidt"
    assert shadow.asks_model(text)
    assert (
        shadow.model_wait_ms(text, 0.99) == shadow.model_wait_ms(text, 0.01) == shadow.wait_ms(text)
    )


def test_config_rules_for_the_model_keys() -> None:
    with pytest.raises(ConfigError, match=r"turn_end\.audio_model: .*adaptive"):
        TurnEndConfig(policy="fixed", audio_model=True).validate("turn_end")
    TurnEndConfig(audio_model=True).validate("turn_end")  # the defaults hold together
