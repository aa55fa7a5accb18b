"""A scenario's visitor line as it is said: segments of speech and the pauses between.

Real visitors pause: at commas, between sentences, and mid-sentence while they look for
a word ("I'm here to see | Anna Schmidt."). The scenario text carries those pauses:

- punctuation: `,` `;` `:` -> COMMA_PAUSE_MS, `.` `?` `!` before more words ->
  SENTENCE_PAUSE_MS, `...` or `…` -> ELLIPSIS_MS (a hesitation; the STT writes no dots);
- `|` -> a hesitation of HESITATION_MS; `<pause 700>` -> exactly 700 ms.

Each segment is spoken in one breath (espeak-ng renders it alone), and the pauses are
inserted as silence, so the ground truth of every pause is exact. The same parse tells
the AssemblyAI emulator which pauses fall mid-sentence: its transcript at such a pause
ends without terminal punctuation, as the real model's would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Pause lengths of conversational English (Campione & Veronis 2002, "A large-scale
# multilingual study of silent pause duration": brief pauses < 200 ms, medium 200-1000 ms,
# long > 1000 ms; between-sentence pauses run longer than within-sentence ones). Every
# pause here is >= 200 ms: the emulator counts a silence that long as a segment boundary,
# and espeak-ng's own gaps inside a breath stay under 140 ms (measured on its renders).
COMMA_PAUSE_MS = 250
SENTENCE_PAUSE_MS = 450
HESITATION_MS = 600
ELLIPSIS_MS = 700
MIN_PAUSE_MS = 200
MAX_PAUSE_MS = 5000  # a scenario typo (<pause 70000>) must not stall a test for a minute
TERMINAL = (".", "?", "!")
_TOKEN = re.compile(r"<pause\s+(\d+)\s*>|\||\.\.\.|…|[^\s|<.…]+(?:\.(?!\.)|[?!,;:])*|[.?!,;:]+|\S")
_SOFT = (",", ";", ":")
FILLERS = frozenset({"um", "uh", "er", "erm", "hmm", "mm", "uhm", "ah"})


@dataclass(frozen=True, slots=True)
class Segment:
    """Words said in one breath, then a pause (`pause_after_ms`, 0 after the last)."""

    text: str  # as the STT writes it: the words with their punctuation
    pause_after_ms: int = 0

    @property
    def ends_sentence(self) -> bool:
        return self.text.rstrip().endswith(TERMINAL)


def parse(visitor: str) -> tuple[Segment, ...]:
    """The segments of one visitor line; a line without pauses is one segment."""
    segments: list[Segment] = []
    words: list[str] = []
    pause = 0

    def close() -> None:
        nonlocal words, pause
        if words:
            segments.append(Segment(" ".join(words), 0))
            words = []
        if pause and segments:
            last = segments[-1]
            longer = max(last.pause_after_ms, pause)
            segments[-1] = Segment(last.text, longer)
        pause = 0

    for match in _TOKEN.finditer(visitor):
        piece = match.group(0)
        if match.group(1) is not None:
            pause = max(pause, min(MAX_PAUSE_MS, max(MIN_PAUSE_MS, int(match.group(1)))))
            close()
        elif piece == "|":
            pause = max(pause, HESITATION_MS)
            close()
        elif piece in ("...", "…"):
            pause = max(pause, ELLIPSIS_MS)
            close()
        elif piece[0].isalnum() or piece[0] in "'\"(":
            words.append(piece)
            if piece.endswith(TERMINAL):
                pause = SENTENCE_PAUSE_MS
                close()
            elif piece.endswith(_SOFT):
                pause = COMMA_PAUSE_MS
                close()
        elif words:  # stray punctuation after a word: attach it
            words[-1] += piece
    close()
    if segments:
        segments[-1] = Segment(segments[-1].text, 0)  # nothing follows the last
    return tuple(segments)


def plain_text(visitor: str) -> str:
    """The line without pause markup: what the visitor said, as the STT writes it."""
    return " ".join(s.text for s in parse(visitor))


def mid_sentence_pauses(visitor: str) -> int:
    """How many of the line's pauses fall inside a sentence (hesitations, commas)."""
    return sum(1 for s in parse(visitor)[:-1] if not s.ends_sentence)
