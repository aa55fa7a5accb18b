"""`agentd run` logging to a real systemd-journald: records found with journalctl.

The daemon is a subprocess with `[logging] backend = "journal"`; one scripted turn runs
against the emulators with the TTS emulator answering HTTP 500, so the same turn leaves
a fault record (ERROR_KIND) and a turn record (STAGE, LATENCY_MS). The records are
found the way an operator would: `journalctl -o json SYSLOG_IDENTIFIER=agentd`, then by
the custom field `TURN_ID=<id>` taken from a record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import journald
from tests.helpers.daemon_process import DaemonProcess, write_scenario

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(journald.available() is not None, reason=str(journald.available())),
]

TURN = {
    "visitor": "Hello, when are you open tomorrow?",
    "reply": "We are open from nine to five. See you then.",
    "pause_before_ms": 500,
}
PRIORITY_ERR = "3"  # syslog LOG_ERR, what logging.ERROR maps to
PRIORITY_INFO = "6"


@pytest.fixture(scope="module")
def journal() -> Iterator[None]:
    with journald.running():
        yield


def test_turn_and_fault_records_found_by_identifier_and_turn_id(
    tmp_path: Path, journal: None
) -> None:
    scenario = write_scenario(tmp_path / "journal.toml", [TURN])
    overrides = {"logging": {"backend": "journal", "level": "info"}}
    with DaemonProcess(tmp_path, scenario, overrides=overrides) as daemon:
        assert daemon.stack is not None
        daemon.stack.tts.faults.status = 500  # before the turn: the daemon is still starting
        daemon.stack.tts.faults.remaining = 2  # one 5xx is retried inside the first-byte budget
        pid = daemon.pid
        (turn,) = journald.wait_for(
            "SYSLOG_IDENTIFIER=agentd", f"_PID={pid}", "STAGE=turn", timeout_s=30
        )
        code, took_s = daemon.terminate()
    assert code == 0 and took_s < 2.0

    turn_id = turn["TURN_ID"]
    assert len(turn_id) >= 8
    assert float(turn["LATENCY_MS"]) > 0  # voice-to-voice, from the local fallback voice
    assert turn["PRIORITY"] == PRIORITY_INFO
    assert turn["OUTCOME"] == "fallback"

    records = journald.query(f"TURN_ID={turn_id}")  # the custom field, as in docs/operations.md
    assert {r["SYSLOG_IDENTIFIER"] for r in records} == {"agentd"}
    assert {r["_PID"] for r in records} == {str(pid)}
    stages = [r.get("STAGE") for r in records]
    assert "stt" in stages and "turn" in stages  # turn started ... turn finished
    faults = [r for r in records if "ERROR_KIND" in r]
    assert [f["ERROR_KIND"] for f in faults] == ["tts"]
    assert faults[0]["PRIORITY"] == PRIORITY_ERR
    assert "500" in faults[0]["MESSAGE"]

    everything = journald.query("SYSLOG_IDENTIFIER=agentd", f"_PID={pid}")
    assert {"ready", "stopping"} <= {r.get("STAGE") for r in everything}
    assert all(r["MESSAGE"] for r in everything)
    # journal backend: records go to journald only, nothing duplicated on stderr
    assert daemon.stderr.text.strip() == ""
