"""TurnRecord: what happened in one visitor turn, turned into the TurnMetrics breakdown.

All marks are monotonic ms (`agentd.events.now_ms`). Voice-to-voice is measured from
the end of the visitor's voice (last voiced frame, not the gate closing) to the first
reply sample the device sounded: the delay the visitor actually experiences. The
turn's `Outcome` is decided once, in `decide_outcome`, from the facts gathered here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from agentd.events import Outcome, TurnMetrics


def new_turn_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(slots=True)
class TurnRecord:
    turn_id: str = field(default_factory=new_turn_id)
    speech_start_ms: float | None = None
    speech_end_ms: float | None = None  # last voiced audio
    endpoint_ms: float | None = None  # local endpoint decided (ForceEndpoint sent)
    final_ms: float | None = None  # STT final transcript received
    llm_request_ms: float | None = None
    llm_first_token_ms: float | None = None
    tts_request_ms: float | None = None
    tts_first_byte_ms: float | None = None
    first_audio_ms: float | None = None  # first reply sample sounded by the device
    barge_ins: int = 0
    llm_requests: int = 0  # chat completion requests started (RequestStarted)
    llm_usage_reports: int = 0  # of those, the ones whose usage came (UsageReported)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tts_characters: int = 0
    audio_out_bytes: int = 0
    audio_in_bytes: int = 0
    tool_calls: int = 0
    # Facts the outcome is decided from (decide_outcome); set where they happen.
    cancelled_by: str | None = None  # who stopped the reply, if anyone
    superseded: bool = False  # dropped unheard: the visitor went on, the turn goes on
    barge_in_confirmed: bool = False  # the visitor's words over the reply cancelled it
    used_fallback: bool = False  # a cloud link failed and the local voice spoke
    nothing_to_say: bool = False  # the model gave no speakable text

    def mark_first(self, name: str, at_ms: float) -> None:
        """Set mark `name` only once: later chunks must not move a 'first' timestamp."""
        if getattr(self, name) is None:
            setattr(self, name, at_ms)

    def metrics(self, out_bytes_per_s: float, in_bytes_per_s: float) -> TurnMetrics:
        return TurnMetrics(
            turn_id=self.turn_id,
            endpoint_delay_ms=_diff(self.endpoint_ms, self.speech_end_ms),
            stt_final_ms=_diff(self.final_ms, self.endpoint_ms or self.speech_end_ms),
            llm_ttft_ms=_diff(self.llm_first_token_ms, self.llm_request_ms),
            tts_ttfb_ms=_diff(self.tts_first_byte_ms, self.tts_request_ms),
            voice_to_voice_ms=_diff(self.first_audio_ms, self.speech_end_ms),
            barge_ins=self.barge_ins,
            llm_requests=self.llm_requests,
            llm_requests_unmetered=max(0, self.llm_requests - self.llm_usage_reports),
            llm_prompt_tokens=self.prompt_tokens,
            llm_completion_tokens=self.completion_tokens,
            tts_characters=self.tts_characters,
            audio_out_s=round(self.audio_out_bytes / out_bytes_per_s, 3)
            if out_bytes_per_s
            else 0.0,
            audio_in_s=round(self.audio_in_bytes / in_bytes_per_s, 3) if in_bytes_per_s else 0.0,
            tool_calls=self.tool_calls,
            outcome=decide_outcome(self),
        )


def decide_outcome(record: TurnRecord) -> Outcome:
    """The one place a turn's outcome is decided; the first fact that applies wins.

    A superseded reply was never heard, so what it would have said (the sorry line, the
    local voice) did not happen to the visitor; a failure on the way is a fault of its
    own. A reply that had nothing to say, or was spoken by the local voice, is reported
    as such even if it was later cancelled: the operator needs to see the failure, not
    the visitor's reaction to it.
    """
    if record.superseded:
        return Outcome.SUPERSEDED
    if record.nothing_to_say:
        return Outcome.EMPTY
    if record.used_fallback:
        return Outcome.FALLBACK
    if record.barge_in_confirmed:
        return Outcome.BARGE_IN
    if record.cancelled_by is not None:
        return Outcome.CANCELLED
    return Outcome.OK


def _diff(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round(later - earlier, 1)
