"""ClauseSplitter: early first clause, sentence-sized later ones, no false cuts."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentd.tts.splitter import ABBREVIATIONS, DEFAULT_MAX_CHARS, ClauseSplitter

pytestmark = pytest.mark.timeout(60)

TOKENS = [
    "hello", "there", "the", "room", "is", "on", "floor", "two", "Acme", "visitor",
    "3.5", "10:30", "1,000", "$4.99", "Dr.", "Mr.", "Mrs.", "St.", "e.g.", "i.e.", "J.",
    "www.acme.com", "https://acme.com/a?b=c", "desk@acme.com", "well-known", "...",
    "wait...", "\u2026", "ok,", "yes;", "note:", "-", "\u2014", "done.", "why?", "great!",
    "(see", "below).", '"quoted."', "**bold.**", "\n", "\n\n",
]  # fmt: skip
SPACES = st.sampled_from([" ", " ", " ", "  ", "\t", "\n"])


@st.composite
def texts(draw: st.DrawFn, newlines: bool = True) -> str:
    tokens = TOKENS if newlines else [t for t in TOKENS if "\n" not in t]
    spaces = SPACES if newlines else st.sampled_from([" ", "  ", "\t"])
    words = draw(st.lists(st.sampled_from(tokens), min_size=0, max_size=60))
    return "".join(w + draw(spaces) for w in words)


@st.composite
def deltas(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=30)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def run(splitter: ClauseSplitter, parts: list[str]) -> list[str]:
    out: list[str] = []
    for part in parts:
        out += splitter.feed(part)
    return out + splitter.flush()


def normalized(text: str) -> str:
    return " ".join(text.split())


@given(data=st.data(), min_chars=st.integers(1, 40))
@settings(max_examples=300, deadline=None)
def test_clauses_rebuild_the_input_whatever_the_chunking(
    data: st.DataObject, min_chars: int
) -> None:
    text = data.draw(texts())
    parts = data.draw(deltas(text))
    clauses = run(ClauseSplitter(min_chars, max_chars=10_000), parts)

    assert " ".join(clauses) == normalized(text)  # no token is ever split or lost
    assert all(c and c == c.strip() for c in clauses)
    # token-boundary cuts only depend on the text, not on how the deltas were sliced
    assert clauses == run(ClauseSplitter(min_chars, max_chars=10_000), [text])


@given(text=texts(newlines=False), min_chars=st.integers(1, 40))
@settings(max_examples=300, deadline=None)
def test_no_cut_after_abbreviation_initial_or_ellipsis(text: str, min_chars: int) -> None:
    """(A line break is always a cut, so this property is about text without them.)"""
    clauses = run(ClauseSplitter(min_chars, max_chars=10_000), [text])
    for clause in clauses[:-1]:
        last = clause.split()[-1]
        stem = last.rstrip(".").lower()
        if last.endswith(".") and not last.endswith(".."):
            assert stem not in ABBREVIATIONS, clauses
            assert not (len(stem) == 1 and stem.isalpha()), clauses
        assert not last.endswith(("...", "\u2026")), clauses


@given(text=texts(), min_chars=st.integers(1, 40), max_chars=st.integers(40, 120))
@settings(max_examples=200, deadline=None)
def test_max_length_holds_except_for_one_long_word(
    text: str, min_chars: int, max_chars: int
) -> None:
    clauses = run(ClauseSplitter(min_chars, max_chars=max_chars), [text])
    assert " ".join(clauses) == normalized(text)
    longest_token = max((len(t) for t in text.split()), default=0)
    for clause in clauses:
        assert len(clause) <= max(max_chars, longest_token), clause


@given(
    head=st.lists(st.sampled_from(["hello", "there", "our", "desk", "3.5", "Dr."]), min_size=1),
    min_chars=st.integers(1, 30),
    mark=st.sampled_from([",", ";", ":", ".", "!", "?", " \u2014", " -"]),
)
@settings(max_examples=200, deadline=None)
def test_first_clause_goes_out_as_soon_as_its_mark_is_followed_by_space(
    head: list[str], min_chars: int, mark: str
) -> None:
    first = " ".join(head) + mark
    if not min_chars <= len(first) <= DEFAULT_MAX_CHARS or first.endswith("Dr.."):
        return  # not eligible: too short/long, or ".." reads as an ellipsis
    text = first + " and then the rest follows, slowly, without an end"
    splitter = ClauseSplitter(min_chars)
    for i, ch in enumerate(text):
        got = splitter.feed(ch)
        if got:
            assert got == [first]
            assert i == len(first), "released on the very next character"
            return
    pytest.fail("first clause was not released before the end of the stream")


def test_first_clause_early_then_whole_sentences() -> None:
    splitter = ClauseSplitter(min_chars=5)
    out = splitter.feed("Sure thing, the room is free, and the desk is open. ")
    out += splitter.feed("Take the lift, then turn left. Bye")
    assert out == [
        "Sure thing,",
        "the room is free, and the desk is open.",
        "Take the lift, then turn left.",
    ]
    assert splitter.flush() == ["Bye"]


def test_nothing_released_until_the_next_character_is_known() -> None:
    splitter = ClauseSplitter(min_chars=3)
    assert splitter.feed("It costs 3.") == []  # maybe "3.5" is coming
    assert splitter.feed("5 dollars. Then") == ["It costs 3.5 dollars."]


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Smith will see you at 10:30 today.",
        "Prices start at 3.5 euros, e.g. for coffee.",
        "Mr. J. Doe works at St. Mary's on Main St. near here.",
        "Well... I think so \u2026 maybe.",
        "Write to desk@acme.com or visit www.acme.com/help.",
    ],
)
def test_examples_stay_one_clause(text: str) -> None:
    assert run(ClauseSplitter(min_chars=200, max_chars=400), [text]) == [text]
    # with a tiny min_chars the only cuts are real sentence ends
    assert run(ClauseSplitter(min_chars=1, max_chars=400), [text + " Next."])[-1] == "Next."


def test_short_sentences_merge_until_min_chars() -> None:
    assert run(ClauseSplitter(min_chars=10), ["Hi! Yes. I can help. Sure."]) == [
        "Hi! Yes. I can help.",
        "Sure.",
    ]


def test_line_breaks_end_clauses() -> None:
    text = "Options:\n- the lift\n- the stairs\n"
    assert run(ClauseSplitter(min_chars=3), [text]) == ["Options:", "- the lift", "- the stairs"]


def test_long_run_without_sentence_end_is_cut_at_a_comma_or_space() -> None:
    text = "word " * 30 + "and, " + "more " * 30
    clauses = run(ClauseSplitter(min_chars=5, max_chars=60), [text])
    assert all(len(c) <= 60 for c in clauses)
    assert " ".join(clauses) == normalized(text)


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="min_chars"):
        ClauseSplitter(0)
    with pytest.raises(ValueError, match="max_chars"):
        ClauseSplitter(50, max_chars=10)
