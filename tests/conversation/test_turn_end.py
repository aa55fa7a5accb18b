"""The turn-end policy's judgement of a transcript (pure: no clock, no I/O)."""

from __future__ import annotations

import pytest

from agentd.config.sections_turn import TurnEndConfig
from agentd.conversation.turn_end import TurnEndPolicy, Verdict, judge


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Yes.", Verdict.COMPLETE),
        ("Where are you from?", Verdict.COMPLETE),  # a question may end on a preposition
        ("I'm here to see", Verdict.INCOMPLETE),  # U3 Pro: no full stop mid-sentence
        ("I'd like a coffee,", Verdict.INCOMPLETE),
        ("I have a parcel for", Verdict.INCOMPLETE),
        ("I have a parcel for.", Verdict.INCOMPLETE),  # a function word outranks the stop
        ("Um", Verdict.INCOMPLETE),
        ("So, um.", Verdict.INCOMPLETE),
        ("", Verdict.COMPLETE),
    ],
)
def test_judge(text: str, verdict: Verdict) -> None:
    assert judge(text) is verdict


def test_unpunctuated_stt_makes_a_bare_transcript_unsure() -> None:
    assert judge("anna schmidt", punctuated=False) is Verdict.UNSURE
    assert judge("i'm here to see the", punctuated=False) is Verdict.INCOMPLETE


def test_deadlines_are_bounded_by_the_config_and_fixed_never_waits() -> None:
    policy = TurnEndPolicy(TurnEndConfig(max_pause_ms=1200))
    assert policy.deadline_ms("Yes.", 1000.0) is None
    assert policy.deadline_ms("I'm here to see", 1000.0) == 2200.0
    fixed = TurnEndPolicy(TurnEndConfig(policy="fixed"))
    assert fixed.deadline_ms("I'm here to see", 1000.0) is None and not fixed.speculate
