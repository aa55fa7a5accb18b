"""The turn-end policy's judgement of a transcript (pure: no clock, no I/O)."""

from __future__ import annotations

import pytest

from agentd.config.sections_turn import TurnEndConfig
from agentd.conversation.turn_end import TurnEndPolicy, Verdict, judge
from agentd.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Yes.", Verdict.COMPLETE),
        ("Where are you from?", Verdict.COMPLETE),  # a question may end on a preposition
        ("I'm here to see", Verdict.INCOMPLETE),  # U3 Pro: no full stop mid-sentence
        ("I'd like a coffee,", Verdict.INCOMPLETE),
        ("Could you call", Verdict.INCOMPLETE),  # a content word: maybe the last one
        ("I have a parcel for", Verdict.TRAILING),
        ("I have a parcel for.", Verdict.TRAILING),  # a function word outranks the stop
        ("Where do I find the", Verdict.TRAILING),
        ("Um", Verdict.TRAILING),
        ("So, um.", Verdict.TRAILING),
        ("Could I uh", Verdict.TRAILING),
        ("", Verdict.COMPLETE),
    ],
)
def test_judge(text: str, verdict: Verdict) -> None:
    assert judge(text) is verdict


def test_unpunctuated_stt_makes_a_bare_transcript_unsure() -> None:
    assert judge("anna schmidt", punctuated=False) is Verdict.UNSURE
    assert judge("i'm here to see the", punctuated=False) is Verdict.TRAILING


def test_the_stronger_the_evidence_the_longer_the_wait() -> None:
    config = TurnEndConfig(max_pause_ms=2400, unfinished_pause_ms=1200, unpunctuated_pause_ms=600)
    policy = TurnEndPolicy(config)
    assert policy.deadline_ms("Yes.", 1000.0) is None
    assert policy.deadline_ms("I'm here to see", 1000.0) == 2200.0
    assert policy.deadline_ms("I'm here to see, um", 1000.0) == 3400.0
    assert TurnEndPolicy(config, punctuated=False).deadline_ms("anna schmidt", 1000.0) == 1600.0
    fixed = TurnEndPolicy(TurnEndConfig(policy="fixed"))
    assert fixed.deadline_ms("I'm here to see", 1000.0) is None and not fixed.speculate


def test_a_held_turn_ends_only_after_the_deadline_and_a_quiet_onset_window() -> None:
    policy = TurnEndPolicy(TurnEndConfig(), onset_window_ms=200.0)
    # Silent since the voice ended at 1000: ends at the deadline, not a period before.
    assert not policy.ended(2500.0, 2480.0, last_voiced_ms=1000.0)
    assert policy.ended(2500.0, 2500.0, last_voiced_ms=1000.0)
    # A voiced period at 2460 (the visitor's next word, not yet confirmed by the gate):
    # the turn stays open for the gate's start window, then ends if nothing followed.
    assert not policy.ended(2500.0, 2520.0, last_voiced_ms=2460.0)
    assert policy.ended(2500.0, 2660.0, last_voiced_ms=2460.0)
    # A click long before the deadline does not delay it.
    assert policy.ended(2500.0, 2500.0, last_voiced_ms=1800.0)


def test_config_keeps_the_waits_in_order() -> None:
    with pytest.raises(ConfigError, match="unfinished_pause_ms"):
        TurnEndConfig(max_pause_ms=1000, unfinished_pause_ms=1500).validate("turn_end")
    TurnEndConfig().validate("turn_end")
