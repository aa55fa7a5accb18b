"""speakable(): markdown, emoji, markup and control characters never reach the voice."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentd.tts.speakable import MAX_CHARS, speakable

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("**Welcome** to _Acme_!", "Welcome to Acme!"),
        ("## Opening hours\n- Mon: 9-5\n- Sat: closed", "Opening hours Mon: 9-5 Sat: closed"),
        ("1. Take the lift\n2. Turn left", "Take the lift Turn left"),
        ("Run `make test` now", "Run make test now"),
        ("```python\nprint(1)\n```", "print(1)"),
        ("See [the map](https://acme.com/map) please", "See the map please"),
        ("> quoted line", "quoted line"),
        ("Great news \U0001f389\U0001f44d\U0001f3fd!", "Great news !"),
        ("Family: \U0001f468\u200d\U0001f469\u200d\U0001f467 ok", "Family: ok"),
        ("Temp is 21\u00b0C", "Temp is 21\u00b0C"),
        ("Room #5, floor 2", "Room 5, floor 2"),
        ("a < b and c > d", "a b and c d"),
        ("bell\x07 and\x00 nul\ttab", "bell and nul tab"),
        ("right\u202eto\u200bleft", "righttoleft"),
        ("| Room | Floor |\n|---|:---:|\n| A | 2 |", "Room, Floor A, 2"),
        ("", ""),
    ],
)
def test_examples(raw: str, spoken: str) -> None:
    assert speakable(raw) == spoken


@pytest.mark.parametrize(
    "injection",
    [
        '<break time="10s"/>',
        "<speak><prosody rate='x-slow'>hi</prosody></speak>",
        '<phoneme alphabet="ipa" ph="x">word</phoneme>',
        "<!-- comment -->",
        "<?xml version='1.0'?>",
        "</voice><voice name='evil'>",
        "<<break/>>",
    ],
)
def test_markup_injection_is_removed(injection: str) -> None:
    out = speakable(f"Hello {injection} there")
    assert "<" not in out and ">" not in out
    assert "break" not in out and "phoneme" not in out and "voice" not in out
    assert out.startswith("Hello") and out.endswith("there")


def test_length_is_capped_at_a_sentence_or_word_boundary() -> None:
    text = "This is a sentence. " * 60
    out = speakable(text)
    assert len(out) <= MAX_CHARS and out.endswith("sentence.")
    words = speakable("word " * 500, max_chars=52)
    assert len(words) <= 52 and words.endswith("word")


@given(st.text(max_size=600))
@settings(max_examples=400, deadline=None)
def test_output_is_always_plain_single_line_and_bounded(text: str) -> None:
    out = speakable(text)
    assert "<" not in out and ">" not in out
    assert "`" not in out and "**" not in out
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in out)
    assert out == out.strip() and "  " not in out
    assert len(out) <= MAX_CHARS


@given(
    st.lists(
        st.sampled_from(
            ["<b>", "</b>", "<break time='3s'/>", "word", " ", "\n", "**", "#", "\x1b"]
        ),
        max_size=40,
    )
)
def test_tag_soup_never_leaks_markup(parts: list[str]) -> None:
    out = speakable("".join(parts))
    assert all(token.replace("word", "") == "" for token in out.split()), out
