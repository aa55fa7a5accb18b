"""The turn-end policy: has the visitor finished, or only paused?

A fixed run of silence cannot tell "I'm here to see... Anna Schmidt." from a finished
question: silence endpointing at 300 ms cuts off about half of real turns and needs
~1.6 s to get under 5 % (LiveKit eot-bench, English). So the policy looks at more than
the local VAD pause, and the strength of the evidence that the visitor goes on sets how
long it waits:

- a finished sentence (terminal punctuation: U3 Pro punctuates what it transcribes and
  ends its own turns there; a question mark outranks the word list, "Where are you
  from?") is answered at once, exactly as with `fixed`;
- a transcript that trails off on a filler ("um", "uh") or a function word ("with",
  "the", "and", "my") is strong evidence: almost no finished statement ends there. It is
  waited for longest, `max_pause_ms` (LiveKit's agents likewise wait up to their
  max_endpointing_delay, 6 s by default, when their turn model says "not done");
- a sentence without terminal punctuation on a content word, or ending in a comma, is
  unfinished by the STT's own formatting but could still be the visitor's last word
  ("Could you call" ... "my colleague"): `unfinished_pause_ms`;
- from an STT that does not punctuate, a bare transcript is unsure:
  `unpunctuated_pause_ms`.

The service's own end of turn (a final that arrives before the local endpoint) goes
through the same judgement. The silence is counted from the visitor's last voiced audio
(not from the VAD endpoint, which comes `stop_unvoiced_frames` later) up to their first
voiced audio again: a visitor who starts their next word inside the bound has resumed,
even if the VAD gate needs its start window (`onset_window_ms`) to confirm it.

The policy is pure (no clock, no I/O): the turn state machine asks it for a deadline
and keeps the time. `fixed` is the old behaviour (every endpoint ends the turn), kept
for comparison (`agentd bench turns`) and as a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from agentd.config.sections_turn import TurnEndConfig
from agentd.conversation.turn_record import TurnRecord

TERMINAL = (".", "?", "!")
SOFT = (",", ";", ":", "-", "\u2014", "\u2026")  # a list or a clause goes on
# Hesitations that AssemblyAI's models transcribe (or that a visitor's "um" becomes).
FILLERS = frozenset({"um", "uh", "er", "erm", "hmm", "mm", "uhm", "ah", "eh"})
# Words a finished English statement almost never ends on: articles, conjunctions,
# prepositions, possessives, subject pronouns (closed classes). Auxiliaries are not here:
# short answers end on them ("Yes, I do."). A question may end on a preposition ("Where
# are you from?"), so a question mark outranks this list.
FUNCTION_WORDS = frozenset(
    {
        "a", "an", "the", "and", "or", "but", "so", "because", "if", "than", "that",
        "with", "to", "of", "for", "from", "at", "in", "on", "by", "about", "into",
        "my", "your", "his", "her", "our", "their", "its", "this", "these", "those",
        "i", "i'm", "i'd", "we", "we're",
    }
)  # fmt: skip


class Verdict(Enum):
    """What the transcript so far says about the turn, strongest "goes on" evidence first."""

    TRAILING = "trailing"  # ends on a filler or function word: wait up to max_pause_ms
    INCOMPLETE = "incomplete"  # no terminal punctuation, or a comma: unfinished_pause_ms
    UNSURE = "unsure"  # no punctuation to go by: wait unpunctuated_pause_ms
    COMPLETE = "complete"  # a finished sentence: answer now


def judge(text: str, *, punctuated: bool = True) -> Verdict:
    """The verdict on a transcript; an empty one is complete (nothing to wait for).

    `punctuated`: the STT formats its transcripts (U3 Pro always; Universal-Streaming
    with format_turns), so a missing full stop means an unfinished sentence.
    """
    text = text.strip()
    if not text:
        return Verdict.COMPLETE
    last = text.split()[-1].lower()
    word = last.strip("\"'()[]" + "".join(TERMINAL) + "".join(SOFT))
    if text.endswith("?") and word not in FILLERS:
        return Verdict.COMPLETE
    if word in FILLERS or word in FUNCTION_WORDS:
        return Verdict.TRAILING
    if text.endswith(TERMINAL):
        return Verdict.COMPLETE
    if text.endswith(SOFT) or punctuated:
        return Verdict.INCOMPLETE
    return Verdict.UNSURE


def ambiguous(text: str) -> bool:
    """The words alone cannot tell: no sentence end, and no filler, function word or comma.

    Only here may the audio turn model (`TurnEndPolicy.model_wait_ms`) move the wait.
    """
    text = text.strip()
    return judge(text) is Verdict.INCOMPLETE and not text.endswith(SOFT)


@dataclass(frozen=True, slots=True)
class TurnEndPolicy:
    """Decides from a transcript and the pause so far whether the visitor's turn ended."""

    config: TurnEndConfig
    punctuated: bool = True  # the STT's transcripts carry punctuation (see judge)
    # The VAD gate's start window (audio.vad.start_window_frames x frame): a voiced frame
    # this recent may be the visitor's next word that the gate has not confirmed yet.
    onset_window_ms: float = 200.0

    @property
    def adaptive(self) -> bool:
        return self.config.policy == "adaptive"

    @property
    def speculate(self) -> bool:
        return self.adaptive and self.config.speculate

    def asks_model(self, text: str) -> bool:
        """Whether the audio turn model's view of this pause is wanted (see `ambiguous`)."""
        return self.adaptive and self.config.audio_model and ambiguous(text)

    def model_wait_ms(self, text: str, complete_probability: float) -> float:
        """The wait once the local audio turn model (`audio_model`) has answered.

        One signal among several, never decisive alone (it scores at chance on espeak-ng
        speech): it moves the words' wait only for an ambiguous transcript, and only
        within the bounds - a confident "finished" shortens it to `audio_model_pause_ms`,
        a confident "unfinished" lengthens it to `max_pause_ms`. It never ends a turn
        the words call unfinished nor holds one they call finished. In shadow mode
        (`audio_model_shadow`) it is asked and logged but changes nothing.
        """
        wait = self.wait_ms(text)
        if not self.asks_model(text) or self.config.audio_model_shadow:
            return wait
        if complete_probability >= self.config.audio_model_complete:
            return min(wait, float(self.config.audio_model_pause_ms))
        if complete_probability <= self.config.audio_model_incomplete:
            return float(self.config.max_pause_ms)
        return wait

    def wait_ms(self, text: str) -> float:
        """How much silence after the last voiced frame this transcript is waited for."""
        if not self.adaptive:
            return 0.0
        return self.wait_for(judge(text, punctuated=self.punctuated))

    def wait_for(self, verdict: Verdict) -> float:
        """The silence a verdict is waited for (0: the turn has ended)."""
        if verdict is Verdict.TRAILING:
            return float(self.config.max_pause_ms)
        if verdict is Verdict.INCOMPLETE:
            return float(self.config.unfinished_pause_ms)
        if verdict is Verdict.UNSURE:
            return float(self.config.unpunctuated_pause_ms)
        return 0.0

    def deadline_ms(self, text: str, voice_end_ms: float) -> float | None:
        """When the turn ends if the visitor says nothing more; None: it has ended."""
        wait = self.wait_ms(text)
        return voice_end_ms + wait if wait > 0 else None

    def ended(self, deadline_ms: float, now_ms: float, last_voiced_ms: float) -> bool:
        """Has a held turn ended by `now_ms` (the end of the mic audio judged so far)?

        The silence reached the deadline, and no voiced audio came within the gate's
        start window: that may be the visitor going on, which the gate confirms (a
        SpeechStarted resumes the turn) or not (a click costs at most the window).
        """
        return now_ms >= deadline_ms and now_ms - last_voiced_ms >= self.onset_window_ms


@dataclass(slots=True)
class PendingTurn:
    """A visitor turn whose end the policy has not decided yet (the visitor paused)."""

    record: TurnRecord
    text: str  # everything the visitor said in this turn so far
    deadline_ms: float  # ends then (on the mic clock) unless the visitor goes on
    last_voiced_ms: float = 0.0  # end of the latest voiced mic period since the pause began
