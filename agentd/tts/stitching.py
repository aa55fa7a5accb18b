"""Request stitching: what one reply's earlier clauses tell the voice about the next.

ElevenLabs keeps prosody continuous across separate requests when each request names
the `request-id` response headers of up to 3 earlier requests (`previous_request_ids`;
they override `previous_text`) and, if known, the text that follows (`next_text`)
(SDK `text_to_speech/raw_client.py` docstrings; ElevenLabs docs, "Request stitching").

The reply pipeline creates one `ReplyStitching` per reply and passes it to every
`stream()` of that reply; the TTS link reads it before a request and records the
clause after the request ends cleanly. Ids never cross replies: a new reply is a new
utterance, and the voice must not continue the previous one's intonation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# "A maximum of 3 request_ids can be sent" (elevenlabs SDK, text_to_speech/raw_client.py).
MAX_PREVIOUS_REQUEST_IDS = 3


@dataclass(slots=True)
class ReplyStitching:
    """The clauses of one reply spoken so far, as the next request should cite them."""

    previous_text: str = ""  # the last clause spoken (used when no ids are known)
    _request_ids: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_PREVIOUS_REQUEST_IDS))

    @property
    def previous_request_ids(self) -> list[str]:
        """Oldest first, at most MAX_PREVIOUS_REQUEST_IDS, all from this reply."""
        return list(self._request_ids)

    def record(self, text: str, request_id: str | None) -> None:
        """A clause was synthesised in full; `request_id` is its `request-id` header."""
        self.previous_text = text
        if request_id:
            self._request_ids.append(request_id)
        else:
            # A server without request ids (or a lost header): the chain of ids no
            # longer describes what was just said, so fall back to previous_text.
            self._request_ids.clear()
