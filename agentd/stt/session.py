"""One AssemblyAI websocket session: the SDK client, its state, pacing and teardown.

The SDK client is single-use (one websocket per instance), so a session is a fresh
client; `AssemblyAiStt` decides when to open one and what to send. Pacing (issue 13): a
replay goes out at most REPLAY_SPEED x real time and never more than MAX_AHEAD_MS ahead
of the session's wall clock, because the service closes with 3007 ("Audio Transmission
Rate Exceeded") on audio faster than real time. Its tolerance is unpublished (the
emulator's guess is 2000 ms); after a 3007 the link sends at real time with a 250 ms lead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from agentd.config.sections_stt import SttConfig

log = logging.getLogger(__name__)

REPLAY_SPEED = 2.0
MAX_AHEAD_MS = 1000.0
SLOW_MAX_AHEAD_MS = 250.0
DISCONNECT_TIMEOUT_S = 4.0  # SDK: 2 s write drain + our 2 s terminate_timeout
TERMINATE_TIMEOUT_S = 2.0


@dataclass
class Session:
    """One SDK client = one websocket session."""

    client: Any
    opened_at: float = field(default_factory=time.monotonic)
    error: Any = None  # assemblyai RealTimeError
    ended: bool = False
    abort: bool = False
    disconnected: bool = False
    got_turn: bool = False
    terminated: bool = False  # the server sent Termination
    finalized: set[int] = field(default_factory=set)
    begun_at: float = 0.0  # when the session could take audio (time.monotonic())
    sent_ms: float = 0.0  # audio handed to this session

    @property
    def over(self) -> bool:
        return self.ended or self.abort

    def ms_until_ready(self, chunk_ms: float, *, slow: bool) -> float:
        """How long until `chunk_ms` more audio keeps the session within its rate budget:
        at most `speed` x the elapsed time (one chunk of grace) and `lead` ahead."""
        speed, lead = (1.0, SLOW_MAX_AHEAD_MS) if slow else (REPLAY_SPEED, MAX_AHEAD_MS)
        after = self.sent_ms + chunk_ms
        ready_ms = max((after - chunk_ms) / speed, after - lead)
        return ready_ms - (time.monotonic() - self.begun_at) * 1000


def new_client(config: SttConfig, api_key: str) -> Any:
    """A fresh SDK client; its own retries are off (our backoff decides, with jitter)."""
    from assemblyai.streaming.v3 import AsyncRealTimeTranscriber, RealTimeTranscriberOptions

    options = RealTimeTranscriberOptions(
        api_key=api_key,
        api_host=config.api_host,
        connect_timeout=config.connect_timeout_s,
        max_connection_retries=0,
        terminate_timeout=TERMINATE_TIMEOUT_S,
    )
    return AsyncRealTimeTranscriber(options=options)


async def disconnect(session: Session, *, terminate: bool) -> None:
    """Close the session (with Termination if asked); a hung close aborts the socket."""
    if session.disconnected:
        return
    session.disconnected = True
    try:
        await asyncio.wait_for(session.client.disconnect(terminate=terminate), DISCONNECT_TIMEOUT_S)
    except TimeoutError:
        log.warning("STT disconnect timed out; aborting the socket")
        ws = getattr(session.client, "_websocket", None)  # SDK private, best effort
        transport = getattr(ws, "transport", None)
        if transport is not None:
            transport.abort()
    session.ended = True
