"""Strip what a speech synthesiser must not read aloud from streamed model text.

Control characters and markup (markdown emphasis/headings, `<tags>`) reach the model's
output despite the prompt; TTS would read "asterisk" or choke on a NUL. The filter is
stateful because a tag can be split across deltas.
"""

from __future__ import annotations

import unicodedata

# Markdown characters that are never spoken in a front-desk answer.
_MARKDOWN = frozenset("*#`~|")
# A '<' not closed within this many characters was text ("3 < 5"), not a tag.
TAG_MAX_CHARS = 64


class SpeakableFilter:
    """Feed deltas in order; get back the speakable part of each."""

    def __init__(self) -> None:
        self._tag: str | None = None  # pending "<..." text while inside a possible tag

    def feed(self, text: str) -> str:
        out: list[str] = []
        for char in text:
            if self._tag is not None:
                self._tag += char
                if char == ">":
                    self._tag = None
                elif len(self._tag) > TAG_MAX_CHARS:
                    out.append(_clean(self._tag))
                    self._tag = None
                continue
            if char == "<":
                self._tag = char
            elif _keep(char):
                out.append(char)
        return "".join(out)

    def flush(self) -> str:
        """Text held back as a possible tag when the stream ended."""
        pending, self._tag = self._tag or "", None
        return _clean(pending)


def _keep(char: str) -> bool:
    if char in _MARKDOWN:
        return False
    if char in "\n\t":
        return True
    return unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn")


def _clean(text: str) -> str:
    return "".join(c for c in text if c != "<" and _keep(c))
