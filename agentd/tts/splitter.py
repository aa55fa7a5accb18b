"""Cut a streaming LLM reply into clauses worth sending to TTS, as the tokens arrive.

Latency and prosody pull in opposite directions: the FIRST clause goes out at the first
comma, semicolon, colon, dash or sentence end once it holds `min_chars`, so the visitor
hears a voice quickly; later clauses go out only at sentence ends (or line breaks), so
the voice keeps natural intonation. A clause longer than `max_chars` without a sentence
end is cut at its last clause mark, else at its last space.

Cuts happen only where whitespace follows the mark, and never inside a word, so decimals
(3.5), times (10:30), numbers (1,000), URLs and e-mail addresses stay whole; a period
after a known abbreviation (Dr., e.g.) or an initial (J.) and ellipses (... or the
single-character ellipsis) do not end a sentence.
Output clauses are whitespace-normalised, so `" ".join(all clauses)` equals
`" ".join(input.split())`. Use one splitter per reply.
"""

from __future__ import annotations

# Lower-case, without the final period. English titles, Latin and common short forms.
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "mt", "ft", "vs", "etc", "e.g",
        "i.e", "a.m", "p.m", "approx", "no", "tel", "dept", "inc", "ltd", "co", "corp",
        "ave", "rd", "blvd", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
        "sept", "oct", "nov", "dec", "mon", "tue", "wed", "thu", "fri", "sat", "sun",
        "u.s", "u.k", "min", "max", "fig", "cf", "ca", "est",
    }
)  # fmt: skip
_SENTENCE_MARKS = ".!?"
_CLAUSE_MARKS = ",;:"
_CLOSERS = "\"')]}*_\u201d\u2019\u00bb"  # may trail a mark: ." .) **. and the like
_OPENERS = "\"'([{*_\u201c\u2018\u00ab"
_ELLIPSIS = "\u2026"
_DASHES = "\u2014\u2013"  # em and en dash; '-' counts only with spaces on both sides
DEFAULT_MAX_CHARS = 200  # ~12 s of speech; bounds one TTS request and its time to first byte

_SENTENCE = 2
_CLAUSE = 1


class ClauseSplitter:
    """Incremental clause splitter; `feed()` per LLM delta, `flush()` at the end."""

    def __init__(self, min_chars: int, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        if min_chars < 1 or max_chars < min_chars:
            raise ValueError(f"need 1 <= min_chars <= max_chars, got {min_chars}, {max_chars}")
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._buf = ""
        self._emitted = 0

    def feed(self, delta: str) -> list[str]:
        """Add LLM text; return the clauses that are now complete (often none)."""
        self._buf += delta
        out: list[str] = []
        while (cut := self._find_cut()) is not None:
            self._emit(cut, out)
        return out

    def flush(self) -> list[str]:
        """End of reply: return everything still buffered (cut if over max_chars)."""
        out = self.feed("")
        while self._buf.strip():
            cut = self._fallback_cut() if len(self._buf.strip()) > self.max_chars else None
            self._emit(cut if cut is not None else len(self._buf), out)
        self._buf = ""
        return out

    def _emit(self, cut: int, out: list[str]) -> None:
        clause = " ".join(self._buf[:cut].split())
        self._buf = self._buf[cut:]
        if clause:
            out.append(clause)
            self._emitted += 1

    def _find_cut(self) -> int | None:
        wanted = _CLAUSE if self._emitted == 0 else _SENTENCE
        for pos, strength in _boundaries(self._buf):
            size = len(self._buf[:pos].strip())
            if size > self.max_chars:
                break
            if strength >= wanted and size >= self.min_chars:
                return pos
        if len(self._buf.strip()) > self.max_chars:
            return self._fallback_cut()
        return None

    def _fallback_cut(self) -> int | None:
        """Last clause mark within max_chars, else the last space; None inside one long word."""
        start = len(self._buf) - len(self._buf.lstrip())
        limit = start + self.max_chars
        marks = [pos for pos, _ in _boundaries(self._buf) if pos <= limit]
        if marks and len(self._buf[: marks[-1]].strip()) >= self.min_chars:
            return marks[-1]
        for i in range(min(limit, len(self._buf) - 1), start, -1):
            if self._buf[i].isspace():
                return i
        return None


def _boundaries(text: str) -> list[tuple[int, int]]:
    """(cut position, strength) for every mark in `text` that is known to be followed by space."""
    found: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            found.append((i + 1, _SENTENCE))
            i += 1
        elif ch in _SENTENCE_MARKS:
            end = i
            while end < n and text[end] in _SENTENCE_MARKS + _ELLIPSIS:
                end += 1
            run = text[i:end]
            end = _skip_closers(text, end)
            if end < n and text[end].isspace() and not _is_false_stop(text, i, run):
                found.append((end, _SENTENCE))
            i = max(end, i + 1)
        elif ch in _CLAUSE_MARKS or ch in _DASHES or _is_spaced_hyphen(text, i):
            end = _skip_closers(text, i + 1)
            if end < n and text[end].isspace():
                found.append((end, _CLAUSE))
            i = end
        else:
            i += 1
    return found


def _skip_closers(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _CLOSERS:
        pos += 1
    return pos


def _is_spaced_hyphen(text: str, i: int) -> bool:
    return text[i] == "-" and i > 0 and text[i - 1].isspace()


def _is_false_stop(text: str, i: int, run: str) -> bool:
    """Ellipsis, or a single period after an abbreviation or an initial."""
    if _ELLIPSIS in run or run.count(".") >= 2:
        return True
    if run != ".":
        return False
    start = i
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:i].lstrip(_OPENERS).lower()
    if not word:
        return False
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "J. Smith"
    return word in ABBREVIATIONS
