"""What the lobby benches share: the kiosk's front-end frame, a counting reporter, and
the near-field thresholds as `agentd test-hardware` would set them in the lobby."""

from __future__ import annotations

from agentd.audio.format import AudioFormat
from agentd.config.sections_engagement import NearFieldConfig
from agentd.conversation.engagement import EngagementState
from agentd.sim.lobby import RATE

FRAME_MS = 20
FORMAT = AudioFormat(RATE)


class CountingReporter:
    """Reporter stand-in: counts what the daemon would publish."""

    def __init__(self) -> None:
        self.engagements = 0

    def engagement_changed(self, state: EngagementState, reason: str) -> None:
        if state is EngagementState.ENGAGED:
            self.engagements += 1

    def event(self, name: str, payload: dict[str, object]) -> None:
        pass


def calibrated_near_field(enabled: bool) -> NearFieldConfig:
    """Thresholds as `agentd test-hardware` sets them: a visitor line at 1 m, the room."""
    from agentd.audio.near_field import calibrate
    from agentd.sim.lobby import ROOM_TONE_DBFS, VISITOR_DBFS, at_level
    from agentd.sim.speech import render_noise, render_speech

    line = render_speech("Hello, could you tell me where the meeting rooms are?", RATE)
    visitor = at_level(line, VISITOR_DBFS).astype("<i2").tobytes()
    result = calibrate(visitor, render_noise(3000, RATE, ROOM_TONE_DBFS), FORMAT)
    return NearFieldConfig(
        enabled=enabled, min_level_dbfs=result.min_level_dbfs, min_snr_db=result.min_snr_db
    )
