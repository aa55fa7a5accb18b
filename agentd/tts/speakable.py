"""The one sanitiser for spoken text: no markdown, emoji, tags or control characters.

The LLM writes for screens; a voice reading "asterisk asterisk" or a raw URL bracket is
broken. More importantly, anything tag-like is removed, so text a visitor coaxed the
model into writing can never reach the TTS engine as SSML/markup (e.g. `<break>` or
`<phoneme>`, which some engines interpret). Two stages of one sanitiser, both used by
the reply pipeline:
- `SpeakableStream` on the model's deltas before they are cut into clauses: drops
  control characters and markup even when a tag is split across deltas, so a tag's
  "." can never end a clause and leave half a tag to be spoken;
- `speakable` on each clause just before synthesis: markdown structure (links, lists,
  tables, headings, emphasis), emoji, stray angle brackets, a length cap.
"""

from __future__ import annotations

import re
import unicodedata

# One ElevenLabs request should stay well under the per-request text limit (thousands of
# characters) and under ~20 s of audio, so a runaway reply cannot stall the speaker.
MAX_CHARS = 400

# <speak>, </b>, <break time="1s"/>, <!-- -->, <?xml ?>; "a < b" is not a tag.
_TAG = re.compile(r"<[/!?]?[A-Za-z!-][^<>]{0,200}>")
_ANGLE = re.compile(r"[<>]")  # stray halves of tags left after removal
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")  # [label](url) -> label; images too
_CODE_FENCE = re.compile(r"```[^\n]*")
_HEADING = re.compile(r"(?m)^\s{0,3}#{1,6}\s*")
_BULLET = re.compile(r"(?m)^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s+")
_QUOTE = re.compile(r"(?m)^\s*>+\s?")
_RULE = re.compile(r"(?m)^\s*([-*_])(?:\s*\1){2,}\s*$")
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3}|~~|`+)")
_UNDERSCORE_EMPH = re.compile(r"(?<![\w])_([^_\n]+)_(?![\w])")
_TABLE_RULE = re.compile(r"(?m)^[ \t]*\|?(?:[ \t]*:?-{3,}:?[ \t]*\|?)+[ \t]*$")  # |---|:--|
_TABLE_EDGE = re.compile(r"(?m)^[ \t]*\||\|[ \t]*$")
_TABLE_PIPE = re.compile(r"\s*\|\s*")
_SPACE = re.compile(r"\s+")
# Symbol categories that are emoji, pictographs, dingbats: So = "Symbol, other".
_DROP_CATEGORIES = frozenset({"So", "Cs", "Co", "Cn"})
_KEEP_SYMBOLS = frozenset("\u00a9\u00ae\u00b0\u2122")  # (c), (r), degree, TM: speakable
_INVISIBLE = frozenset("\u200d\ufe0f\ufe0e\u20e3")  # emoji joiners and variation selectors


def speakable(text: str, max_chars: int = MAX_CHARS) -> str:
    """Plain, single-line, tag-free text ready for TTS (may be empty)."""
    text = _LINK.sub(r"\1", text)
    text = _CODE_FENCE.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = _ANGLE.sub(" ", text)
    text = _RULE.sub(" ", text)
    text = _TABLE_RULE.sub(" ", text)
    text = _TABLE_EDGE.sub(" ", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = _UNDERSCORE_EMPH.sub(r"\1", text)
    text = _TABLE_PIPE.sub(", ", text)
    text = "".join(_clean_char(ch) for ch in text)
    text = _SPACE.sub(" ", text).strip()
    return _cap(text, max_chars)


def _clean_char(ch: str) -> str:
    if ch in _KEEP_SYMBOLS:
        return ch
    if ch in _INVISIBLE or "\U0001f3fb" <= ch <= "\U0001f3ff":  # + emoji skin tones
        return ""
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf", "Zl", "Zp"):
        return " " if ch in "\n\t\r\u2028\u2029" else ""
    if category in _DROP_CATEGORIES or ch in "<>":
        return " "
    if ch == "#":
        return ""  # headings are gone; "room #5" reads better as "room 5"
    return ch


def _cap(text: str, max_chars: int) -> str:
    """Cut at the last sentence end or space within `max_chars`, never mid-word if avoidable."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    for mark in (". ", "! ", "? "):
        end = head.rfind(mark)
        if end >= max_chars // 2:
            return head[: end + 1]
    space = head.rfind(" ")
    return head[:space] if space > 0 else head


# --- the streaming stage ----------------------------------------------------------

# Markdown characters that are never spoken in a front-desk answer.
_MARKDOWN = frozenset("*#`~|")
# A '<' not closed within this many characters was text ("3 < 5"), not a tag.
TAG_MAX_CHARS = 64


class SpeakableStream:
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
                    out.append(_clean_streamed(self._tag))
                    self._tag = None
                continue
            if char == "<":
                self._tag = char
            elif _keep_streamed(char):
                out.append(char)
        return "".join(out)

    def flush(self) -> str:
        """Text held back as a possible tag when the stream ended."""
        pending, self._tag = self._tag or "", None
        return _clean_streamed(pending)


def _keep_streamed(char: str) -> bool:
    if char in _MARKDOWN:
        return False
    if char in "\n\t":
        return True
    return unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn")


def _clean_streamed(text: str) -> str:
    return "".join(c for c in text if c != "<" and _keep_streamed(c))
