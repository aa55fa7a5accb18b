"""The self-test's journal line, for `journalctl STAGE=self_test` (docs/runbook.md).

Logged on "agentd.diagnostics", the name a log filter or a test's caplog gives.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from agentd.diagnostics.report import SelfTestReport
from agentd.logs import fields

log = logging.getLogger("agentd.diagnostics")


def log_report(report: SelfTestReport) -> None:
    """One journal line, STAGE=self_test, every number a field of its own."""
    m, near = report.measurement, report.near_field
    numbers = asdict(m) if m is not None else {}
    if near is not None:
        numbers |= {
            "near_field_floor_dbfs": near.noise_floor_dbfs,
            "near_field_threshold_dbfs": near.threshold_dbfs,
            "near_field_visitor_dbfs": near.visitor_level_dbfs,
            "near_field_margin_db": near.visitor_margin_db,
            "near_field_bystander_margin_db": near.bystander_margin_db,
        }
        if (agreement := near.agreement) is not None:  # a mic array; mono: no such fields
            numbers |= {
                "near_field_room_coherence": agreement.room_coherence,
                "near_field_visitor_coherence": agreement.visitor_coherence,
                "near_field_min_coherence": agreement.min_coherence,
                "near_field_coherence_margin": agreement.visitor_margin,
                "near_field_room_coherence_margin": agreement.room_margin,
                "near_field_recommended_min_coherence": agreement.recommended_min_coherence,
            }
    keys = ",".join(r.key for r in report.recommendations)
    log.log(
        logging.INFO if report.ok else logging.WARNING,
        "self-test %s: %s",
        "ok" if report.ok else "failed",
        report.error or "; ".join(r.advice for r in report.recommendations) or "no advice",
        extra=fields(
            stage="self_test",
            self_test_ok=int(report.ok),
            recommend_keys=keys or None,
            **{k: (int(v) if isinstance(v, bool) else v) for k, v in numbers.items()},
        ),
    )
