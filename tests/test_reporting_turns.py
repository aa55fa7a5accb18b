"""Per-turn records through reporting: the journal line says what happened and what it cost."""

from __future__ import annotations

import logging

import pytest

from agentd.events import LinkState, Outcome, TurnMetrics
from agentd.service.reporting import Reporting
from agentd.service.sdnotify import Notifier


def journal_line(caplog: pytest.LogCaptureFixture, metrics: TurnMetrics) -> logging.LogRecord:
    reporting = Reporting(Notifier({}), started_at=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="agentd.service"):
        reporting.turn_finished(metrics)
    (record,) = [r for r in caplog.records if getattr(r, "STAGE", None) == "turn"]
    assert reporting.links["llm"] is (
        LinkState.CONNECTED if metrics.outcome is Outcome.OK else LinkState.DISCONNECTED
    )
    return record


def test_a_superseded_reply_is_journaled_as_such_with_its_cost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = TurnMetrics(
        turn_id="t0",
        llm_requests=1,
        llm_prompt_tokens=120,
        llm_completion_tokens=14,
        outcome=Outcome.SUPERSEDED,
    )
    record = journal_line(caplog, metrics)
    assert record.getMessage() == (
        "turn superseded: dropped unheard, the visitor went on (1 LLM requests)"
    )
    assert record.OUTCOME == "superseded"  # type: ignore[attr-defined]
    assert (record.LLM_REQUESTS, record.LLM_PROMPT_TOKENS) == (1, 120)  # type: ignore[attr-defined]
    assert record.LLM_COMPLETION_TOKENS == 14  # type: ignore[attr-defined]


def test_an_answered_turn_keeps_its_latency_line(caplog: pytest.LogCaptureFixture) -> None:
    metrics = TurnMetrics(turn_id="t1", voice_to_voice_ms=812.0, llm_requests=2)
    record = journal_line(caplog, metrics)
    assert record.getMessage() == "turn ok: voice-to-voice 812.0 ms"
    assert (record.OUTCOME, record.LLM_REQUESTS) == ("ok", 2)  # type: ignore[attr-defined]
