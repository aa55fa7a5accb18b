"""The self-test's result: what was measured, what to change, and why it failed if it did.

A `SelfTestReport` is what `run_self_test` returns; it renders itself as the MQTT reply
(`to_dict`) and as the numbers `health` carries (`summary`). The journal line is
agentd.diagnostics.journal's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from agentd.diagnostics import probe as p
from agentd.diagnostics.near_field_check import NearFieldCheck


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One thing to change, and the config key that changes it."""

    key: str
    advice: str


@dataclass(frozen=True, slots=True)
class SelfTestReport:
    """The result: the measurement (None if the test could not run) and advice."""

    ok: bool
    at_unix_s: float
    duration_ms: float
    measurement: p.Measurement | None
    recommendations: tuple[Recommendation, ...]
    error: str = ""
    near_field: NearFieldCheck | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "at_unix_s": round(self.at_unix_s, 1),
            "duration_ms": round(self.duration_ms),
            **(asdict(self.measurement) if self.measurement is not None else {}),
            "recommendations": [asdict(r) for r in self.recommendations],
            "near_field": self.near_field.to_dict() if self.near_field is not None else None,
            **({"error": self.error} if self.error else {}),
        }

    def summary(self) -> dict[str, object]:
        """What `health` carries: the numbers Home Assistant's sensors show."""
        m, near = self.measurement, self.near_field
        agreement = near.agreement if near is not None else None
        return {
            "ok": self.ok,
            "at_unix_s": round(self.at_unix_s, 1),
            "echo_delay_ms": m.echo_delay_ms if m else None,
            "echo_coupling_db": m.echo_coupling_db if m else None,
            "noise_floor_dbfs": m.noise_floor_dbfs if m else None,
            "clipped_percent": m.clipped_percent if m else None,
            "recommendations": len(self.recommendations),
            "near_field_threshold_dbfs": near.threshold_dbfs if near else None,
            "near_field_margin_db": near.visitor_margin_db if near else None,
            # a mic array's agreement (None for a mono capture)
            "near_field_visitor_coherence": agreement.visitor_coherence if agreement else None,
            "near_field_room_coherence": agreement.room_coherence if agreement else None,
            "near_field_coherence_margin": agreement.visitor_margin if agreement else None,
            **({"error": self.error} if self.error else {}),
        }
