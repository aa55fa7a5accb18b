"""Benches that measure when a reply starts cut each reply shortly after it sounds.

The rest of a reply would only add minutes of playback to a run: `HOLD_AFTER_FIRST_AUDIO_S`
after the kiosk starts speaking, the reply is cancelled the way a button would cancel it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agentd.events import AgentState, CancelReply
from agentd.sim.harness import SimulatedKiosk

HOLD_AFTER_FIRST_AUDIO_S = 0.15


def cut_each_reply(kiosk: SimulatedKiosk) -> None:
    """From now on, cancel every reply HOLD_AFTER_FIRST_AUDIO_S after it starts sounding."""
    conversation = kiosk.conversation
    loop = asyncio.get_running_loop()

    def cut() -> None:
        if conversation.state is AgentState.SPEAKING:
            conversation.handle(CancelReply("bench: reply start measured"))

    def on_report(kind: str, payload: Any) -> None:
        if kind == "state" and payload is AgentState.SPEAKING:
            loop.call_later(HOLD_AFTER_FIRST_AUDIO_S, cut)

    kiosk.service.reporting.observers.append(on_report)
