"""The interruption policy: barge-in hold/resume/replay, and the echo guard.

Barge-in is decided in steps so that a cough does not cut a reply and a real
interruption is never missed:
- suspected (echo-aware detector): the speaker pauses within a period;
- dismissed: the pause was noise or a backchannel, the reply resumes;
- confirmed: the reply is *held* (paused, not cancelled) and the visitor's audio from
  just before the onset is replayed to STT, then fed live until the gate closes;
- words from STT: the held reply is cancelled (the visitor really interrupted);
- no words (false barge-in): the held reply resumes where it stopped.

The echo guard: after the agent stops talking its voice still rings in the room
(device buffer plus reverberation); the gate is reset and kept deaf for a moment so the
agent never answers itself.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentd.audio.format import AudioChunk
from agentd.audio.recent import RecentAudio

RECENT_AUDIO_MS = 600  # mic audio kept to replay the onset of a barge-in to STT
REPLAY_BEFORE_ONSET_MS = 100  # the detector's onset can be a little late: start earlier
# After the agent stops talking, its voice still rings in the room (device buffer plus
# reverberation, ~100-250 ms): the gate must not open a "visitor" turn on it, or the agent
# would answer itself. The gate is reset and deaf for this long.
ECHO_TAIL_GUARD_MS = 250


class Interruption:
    """State of one reply's interruption; owned and driven by the turn state machine."""

    def __init__(self) -> None:
        self.held = False  # a barged-in reply, paused until words (cancel) or none (resume)
        self.direct_feed = False  # mic goes straight to STT until the gate closes
        self._recent = RecentAudio(RECENT_AUDIO_MS)
        self._echo_guard_until_ms = 0.0

    def remember(self, chunk: AudioChunk) -> None:
        """Keep the last RECENT_AUDIO_MS of mic audio for a barge-in replay."""
        self._recent.add(chunk)

    def replay_from(self, onset_ms: float) -> Iterator[bytes]:
        """The remembered audio from just before a barge-in's onset, oldest first."""
        since = onset_ms - REPLAY_BEFORE_ONSET_MS
        return (chunk.pcm for chunk in self._recent if chunk.at_ms >= since)

    def hold(self) -> None:
        """A confirmed barge-in: the reply waits, the mic goes to STT."""
        self.held = True
        self.direct_feed = True

    def release(self) -> None:
        """The held reply is resumed or gone: back to normal listening."""
        self.held = False
        self.direct_feed = False

    def ringing(self, at_ms: float) -> bool:
        """The agent's own voice may still ring in the room (and we are not listening)."""
        return at_ms < self._echo_guard_until_ms and not self.direct_feed

    def agent_stopped(self, now_ms: float) -> bool:
        """The agent stopped talking; True if the gate must forget what it heard."""
        if self.direct_feed:
            return False  # the visitor is talking: what the gate hears is them
        self._echo_guard_until_ms = now_ms + ECHO_TAIL_GUARD_MS
        return True
