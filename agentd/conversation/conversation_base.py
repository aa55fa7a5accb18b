"""What the turn state machine's parts share: its state and the few steps every part takes.

`Conversation` (turns.py) is split by concern into mixins - barge-in handling, held
turns (the turn-end policy's hooks) and operator commands - that act on one state on one
loop. This base declares that state and those steps for the type checker; the real
definitions are `Conversation`'s, which comes first in the method resolution order.
"""

from __future__ import annotations

from agentd.audio.format import AudioChunk
from agentd.conversation.engagement import Engagement
from agentd.conversation.interruption import Interruption
from agentd.conversation.parts import ConversationParts
from agentd.conversation.ports import Reporter
from agentd.conversation.replies import Replies
from agentd.conversation.turn_end import PendingTurn
from agentd.conversation.turn_record import TurnRecord
from agentd.events import AgentState, Say


class ConversationBase:
    """Declarations only; see the module docstring."""

    parts: ConversationParts
    state: AgentState
    muted: bool
    engagement: Engagement | None
    _reporter: Reporter
    _replies: Replies
    _interruption: Interruption
    _listening: TurnRecord | None
    _ptt_active: bool
    _carry_text: str
    _reply_user_text: str
    _pending: PendingTurn | None
    _turn_start_ms: float
    _model_question: tuple[int, float] | None

    @property
    def log_transcripts(self) -> bool:
        raise NotImplementedError

    def _cancel(self, reason: str, *, keep_state: bool = False) -> bool:
        raise NotImplementedError

    def _set_state(self, state: AgentState) -> None:
        raise NotImplementedError

    def _answer(self, record: TurnRecord, text: str) -> None:
        raise NotImplementedError

    def _to_stt(self, pcm: bytes) -> None:
        raise NotImplementedError

    def _begin_listening(self, speech_start_ms: float, *, barge_ins: int = 0) -> None:
        raise NotImplementedError

    def _on_say(self, command: Say) -> None:
        raise NotImplementedError

    def on_audio(self, chunk: AudioChunk) -> None:
        raise NotImplementedError
