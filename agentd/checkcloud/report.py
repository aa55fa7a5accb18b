"""What `agentd check-cloud` found per service, and how it prints it.

Everything printed goes through the secret redactor first: a provider's error text may
quote a key, and an integrator pastes this output into tickets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from agentd.errors import AgentdError


@dataclass
class ServiceReport:
    """One service's result: latencies in ms (None: not reached), problems, differences."""

    service: str  # stt, llm, tts
    connect_ms: float | None = None
    first_ms: float | None = None  # first result: partial transcript, token, audio byte
    total_ms: float | None = None  # final transcript after speech end, reply end, clause end
    detail: str = ""  # what came back (transcript, tool call, audio length)
    error_kind: str = ""
    error: str = ""
    differences: list[str] = field(default_factory=list)  # from the contract; agentd copes
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return not self.error

    def fail(self, exc: AgentdError | str, kind: str = "") -> None:
        """Record the failure (the first one wins: later ones are consequences)."""
        if self.error:
            return
        if isinstance(exc, AgentdError):
            self.error_kind, self.error = exc.error_kind, str(exc)
        else:
            self.error_kind, self.error = kind or "check", exc


# Labels of the three latencies per service, as an integrator reads them.
LABELS = {
    "stt": ("connect", "first partial", "final after speech"),
    "llm": ("connect", "first token", "reply"),
    "tts": ("connect", "first byte", "clause"),
}


def print_reports(reports: list[ServiceReport], out: TextIO, redact: Callable[[str], str]) -> bool:
    """Print one block per service and the verdict line; True when nothing failed."""
    for report in reports:
        if report.skipped:
            print(f"{report.service:<4} skipped", file=out)
            continue
        state = "OK  " if report.ok else "FAIL"
        times = "  ".join(
            f"{label} {value:.0f} ms"
            for label, value in zip(
                LABELS[report.service],
                (report.connect_ms, report.first_ms, report.total_ms),
                strict=True,
            )
            if value is not None
        )
        print(redact(f"{report.service:<4} {state} {times}".rstrip()), file=out)
        if report.detail:
            print(redact(f"     {report.detail}"), file=out)
        if report.error:
            print(redact(f"     error ({report.error_kind}): {report.error}"), file=out)
        for difference in report.differences:
            print(redact(f"     differs from the contract: {difference}"), file=out)
    ran = [r for r in reports if not r.skipped]
    failed = [r for r in ran if not r.ok]
    differing = sum(len(r.differences) for r in ran)
    if failed:
        causes = ", ".join(f"{r.service}: {r.error_kind}" for r in failed)
        print(redact(f"verdict: FAIL ({causes})"), file=out)
    elif differing:
        print(f"verdict: OK with {differing} difference(s) from the contract", file=out)
    else:
        print("verdict: OK", file=out)
    return not failed
