"""Commands and facts from outside the conversation: say, mute, volume, reset, buttons,
presence, staff calls, and the engagement's end of a conversation. Every source (GPIO,
MQTT, the engagement policy) posts the same events; these are their handlers."""

from __future__ import annotations

import logging

from agentd.conversation.conversation_base import ConversationBase
from agentd.events import (
    AgentState,
    ButtonPressed,
    CallStaff,
    ResetConversation,
    Say,
    SetMuted,
    SetVolume,
    ToggleMute,
)
from agentd.gpio.presence import PresenceChanged

log = logging.getLogger("agentd.turn")


class OperatorCommands(ConversationBase):
    """See the module docstring."""

    def _on_say(self, command: Say) -> None:
        """Announce text now (MQTT `say`), cancelling any reply in flight."""
        self._cancel(f"say ({command.source})")
        self._replies.announce(command.text)

    def _on_set_muted(self, command: SetMuted) -> None:
        self._set_muted(command.muted)

    def _on_toggle_mute(self, _command: ToggleMute) -> None:
        self._set_muted(not self.muted)

    def _set_muted(self, muted: bool) -> None:
        was_muted, self.muted = self.muted, muted
        self.parts.gate.set_muted(muted)  # an open utterance is dropped, not finished
        if muted and not was_muted:
            self._cancel("muted")
            self._carry_text = ""  # nothing said before the mute is answered after it
            self._ptt_active = False
            self._interruption.release()
            if self._listening is not None:
                # Whatever the visitor said so far is not sent on: close the STT turn and
                # ignore its transcript (see _on_turn_finalized).
                self._listening = None
                self.parts.stt.end_utterance()
            self._set_state(AgentState.MUTED)
        elif self.state is AgentState.MUTED:
            self._set_state(AgentState.IDLE)

    def _on_set_volume(self, command: SetVolume) -> None:
        self.parts.speaker.set_volume(command.level)

    def _on_reset(self, command: ResetConversation) -> None:
        """Forget the conversation: the reply in flight leaves nothing in the history."""
        if self._replies.current is not None:
            self._replies.current.discard = True
        self._cancel(f"reset ({command.source})")
        self._carry_text = ""
        self.parts.history.reset()

    def _on_button_pressed(self, fact: ButtonPressed) -> None:
        """Report the press; the command it stands for was posted right behind it."""
        self._reporter.event("button", {"button": fact.button, "long_press": fact.long_press})

    def _on_presence(self, fact: PresenceChanged) -> None:
        if self.engagement is not None:
            self.engagement.on_presence(fact.present, fact.at_ms)

    def greet(self, text: str) -> None:
        """Someone arrived (presence): say the greeting, as an announcement."""
        self._on_say(Say(text, "presence"))

    def end_conversation(self, reason: str) -> None:
        """The engagement ended: forget the visitor, close the STT session (privacy, cost)."""
        if reason == "left" and self._replies.current is not None:
            self._replies.current.discard = True  # nobody is there to hear the rest
            self._cancel("visitor left")
        self._carry_text = ""
        self.parts.history.reset()
        self.parts.stt.end_session()
        if self.parts.tool_limits is not None:
            self.parts.tool_limits.new_conversation()

    def _on_call_staff(self, command: CallStaff) -> None:
        self._reporter.call_staff(command.reason, command.source)
