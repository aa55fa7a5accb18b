"""The visitor corpus of `agentd bench turns`: complete, hesitant, short and filler turns.

Pauses are written as `<pause N>` (agentd.sim.utterance) with N drawn from a seeded
generator over 300-1500 ms, the issue's range for mid-sentence pauses; complete
sentences carry no inner punctuation, so they are said without any pause.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

COMPLETE = (
    "When do you open tomorrow?",
    "Where is the meeting room?",
    "Can I park my car here?",
    "Is Anna Schmidt in today?",
    "Do you have wifi for guests?",
    "Where can I get a coffee?",
    "How do I get to the station?",
    "Where are the toilets?",
    "I have an appointment at ten.",
    "Could you call someone from accounting?",
    "Is the canteen open for visitors?",
    "Which floor is the training room on?",
    "I would like to leave a parcel.",
    "Can I charge my phone somewhere?",
    "Where do I sign in?",
    "Is there a lift to the third floor?",
    "I am here for the job interview.",
    "Can you print my boarding pass?",
    "Who do I ask about lost property?",
    "How long is the wait today?",
)
HESITANT = (
    ("I'm here to see", "Anna Schmidt."),
    ("I have a parcel for", "the post room."),
    ("Could you tell me where", "the lifts are?"),
    ("My appointment is with", "doctor Weber", "at eleven."),
    ("I'm looking for", "the training room."),
    ("Can I leave my bag", "somewhere safe?"),
    ("I need to pick up", "a visitor badge."),
    ("Is there a place where", "I can wait?"),
    ("We booked the room", "on the second floor", "for two hours."),
    ("I was told to ask for", "Mister Brown."),
    ("Where do I find the", "accounts department?"),
    ("I'd like to speak to", "someone from sales."),
    ("Could you call", "my colleague", "in marketing?"),
    ("The taxi is waiting", "outside the", "main entrance."),
    ("Is the exhibition on", "the ground floor?"),
    ("I forgot my", "access card."),
    ("Can you book me", "a taxi to", "the airport?"),
    ("I'm meeting", "a friend here."),
    ("Which way is the", "car park?"),
    ("Do you sell", "tickets for the tour?"),
)
SHORT = (
    "Yes.",
    "No thanks.",
    "Sure.",
    "Yes please.",
    "No.",
    "Okay.",
    "Thank you.",
    "Not today.",
    "Maybe later.",
    "That's right.",
)
FILLERS = (
    ("Um", "where is the lift?"),
    ("I'd like uh", "a coffee please."),
    ("Uh", "is Anna in?"),
    ("I think um", "the second floor."),
    ("So um", "where do I sign in?"),
    ("Er", "can I park here?"),
    ("I'm uh", "here for the interview."),
    ("Hmm", "what time do you close?"),
    ("Um", "I have a delivery."),
    ("Could I uh", "use the phone?"),
)
REPLIES = (
    "Of course, let me help you with that.",
    "Sure thing, I can sort that out for you.",
    "Certainly, one moment please.",
    "Right away, please wait here for a moment.",
)


@dataclass(frozen=True, slots=True)
class CorpusTurn:
    kind: str  # complete | hesitant | short | filler
    visitor: str  # scenario text with its pause markup
    reply: str


def corpus(per_kind: dict[str, int] | None = None, seed: int = 12) -> list[CorpusTurn]:
    """The turns, kinds interleaved; `per_kind` caps each kind (the --quick run)."""
    rng = random.Random(seed)
    limit = per_kind or {}

    def paused(parts: tuple[str, ...]) -> str:
        return " ".join(
            part if i == 0 else f"<pause {rng.randrange(300, 1501, 50)}> {part}"
            for i, part in enumerate(parts)
        )

    kinds = {
        "complete": list(COMPLETE),
        "hesitant": [paused(p) for p in HESITANT],
        "short": list(SHORT),
        "filler": [paused(p) for p in FILLERS],
    }
    for kind, lines in kinds.items():
        del lines[limit.get(kind, len(lines)) :]
    out: list[CorpusTurn] = []
    longest = max(len(lines) for lines in kinds.values())
    for i in range(longest):
        for kind, lines in kinds.items():
            if i < len(lines):
                out.append(CorpusTurn(kind, lines[i], REPLIES[len(out) % len(REPLIES)]))
    return out
