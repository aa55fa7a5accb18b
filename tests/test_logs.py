"""setup_logging: stderr format, redaction, transcripts, and the real journald."""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentd import logs
from agentd.config.sections_core import LoggingConfig
from agentd.errors import ConfigError
from agentd.events import LinkState
from agentd.logs import fields, log_transcript, reconfigure, setup_logging
from tests.helpers import journald

pytestmark = pytest.mark.timeout(60)

CANARY = "canary-" + uuid.uuid4().hex  # what a real key would be: must never be printed
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: .*")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    logs.shutdown_logging()
    root.setLevel(level)
    assert root.handlers == handlers


def _stderr_setup(**kw: object) -> None:
    config = LoggingConfig(backend="stderr", **kw)  # type: ignore[arg-type]
    assert setup_logging(config, [CANARY]) == "stderr"


def _log_every_way_of_leaking(log: logging.Logger, turn_id: str) -> None:
    """The canary via message, %-args, extra fields, exceptions, and key-shaped strings."""
    log.info(f"key is {CANARY}", extra=fields(turn_id=turn_id))
    log.warning("connecting with %s", CANARY, extra=fields(turn_id=turn_id, link=CANARY))
    log.info(
        "headers %r",
        {"Authorization": f"Bearer {CANARY}", "xi-api-key": "0123456789abcdef"},
        extra=fields(turn_id=turn_id),
    )
    log.info("openai said sk-proj-AbCdEf0123456789xyz", extra=fields(turn_id=turn_id))
    try:
        raise RuntimeError(f"401 for key {CANARY}")
    except RuntimeError:
        log.exception("request failed", extra=fields(turn_id=turn_id, error_kind="llm_auth"))


def test_stderr_line_format(capsys: pytest.CaptureFixture[str]) -> None:
    _stderr_setup()
    log = logging.getLogger("agentd.stt")
    log.info(
        "connected",
        extra=fields(
            turn_id="t-1", stage="stt", latency_ms=123, link=LinkState.CONNECTED, skip=None
        ),
    )
    logging.getLogger("agentd").debug("not shown at info")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert LINE.match(err[0])
    assert err[0].endswith(
        "INFO stt: connected [TURN_ID=t-1 STAGE=stt LATENCY_MS=123 LINK=connected]"
    )


def test_fields_rejects_bad_names() -> None:
    assert fields(turn_id="a", error_kind=None) == {"TURN_ID": "a"}
    for bad in ({"message": "x"}, {"priority": 1}, {"bad-name": 1}, {"_private": 1}):
        with pytest.raises(ValueError, match="journal field"):
            fields(**bad)


def test_secrets_never_reach_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    _stderr_setup()
    _log_every_way_of_leaking(logging.getLogger("agentd.llm"), "t-2")
    err = capsys.readouterr().err
    assert err.count("<redacted>") >= 6
    assert "request failed" in err and "RuntimeError: 401 for key <redacted>" in err
    assert CANARY not in err
    assert "sk-proj-" not in err
    assert "0123456789abcdef" not in err


def test_third_party_loggers_are_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    _stderr_setup(level="debug")
    logging.getLogger("httpx").info("HTTP Request: POST https://api.openai.com 200")
    logging.getLogger("websockets.client").debug("> BINARY 3200 bytes")
    logging.getLogger("openai").warning("retrying in 2 s")
    logging.getLogger("agentd.x").debug("ours at debug")
    err = capsys.readouterr().err
    assert "HTTP Request" not in err and "BINARY" not in err
    assert "retrying in 2 s" in err and "ours at debug" in err


def test_transcripts_only_when_configured(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("agentd.conversation")
    _stderr_setup()
    assert not log_transcript(log, "visitor", "my name is Ada", "t-3")
    assert "Ada" not in capsys.readouterr().err
    reconfigure(LoggingConfig(backend="stderr", log_transcripts=True))
    assert log_transcript(log, "visitor", "my name is Ada", "t-3")
    err = capsys.readouterr().err
    assert "visitor said: my name is Ada [TURN_ID=t-3 STAGE=transcript SPEAKER=visitor]" in err
    assert not log_transcript(log, "agent", "hello Ada", "t-3", enabled=False)
    reconfigure(LoggingConfig(backend="stderr"))
    assert log_transcript(log, "agent", "hello Ada", "t-3", enabled=True)
    assert capsys.readouterr().err.count("agent said: hello Ada") == 1


def test_reconfigure_changes_level_and_keeps_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("agentd.core")
    _stderr_setup(level="warning")
    log.info("quiet")
    reconfigure(LoggingConfig(backend="stderr", level="debug"))
    log.debug("loud %s", CANARY)
    err = capsys.readouterr().err
    assert "quiet" not in err
    assert "loud <redacted>" in err
    assert len(logging.getLogger().handlers) >= 1
    assert sum(isinstance(h, logging.StreamHandler) for h in logs._state.handlers) == 1


def test_auto_backend_follows_journal_stream(tmp_path: Path) -> None:
    auto = LoggingConfig(backend="auto")
    assert logs.choose_backend(auto, {}) == "stderr"
    st = os.fstat(2)
    # JOURNAL_STREAM names our stderr: started by systemd with StandardError=journal
    assert logs.choose_backend(auto, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}) == "journal"
    # inherited from a parent but stderr redirected elsewhere: not the journal
    other = os.stat(tmp_path)
    assert logs.choose_backend(auto, {"JOURNAL_STREAM": f"{other.st_dev}:{other.st_ino}"}) == (
        "stderr"
    )
    assert logs.choose_backend(LoggingConfig(backend="journal"), {}) == "journal"


def test_forced_journal_without_journald_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(logs, "JOURNAL_SOCKET", str(tmp_path / "no-journald"))
    with pytest.raises(ConfigError, match=r"logging\.backend.*journald not running"):
        setup_logging(LoggingConfig(backend="journal"))


@pytest.fixture(scope="module")
def real_journald() -> Iterator[None]:
    reason = journald.available()
    if reason:
        pytest.skip(reason)
    with journald.running():
        yield


@pytest.mark.usefixtures("real_journald")
def test_journal_records_with_fields_and_no_secrets() -> None:
    turn_id = str(uuid.uuid4())
    assert setup_logging(LoggingConfig(backend="journal"), [CANARY]) == "journal"
    log = logging.getLogger("agentd.llm")
    log.info(
        "first token",
        extra=fields(turn_id=turn_id, stage="llm", latency_ms=412, error_kind=None),
    )
    log.error("llm timed out", extra=fields(turn_id=turn_id, stage="llm", error_kind="llm_timeout"))
    _log_every_way_of_leaking(log, turn_id)
    logs.shutdown_logging()

    records = journald.wait_for("SYSLOG_IDENTIFIER=agentd", f"TURN_ID={turn_id}", count=7)
    first = next(r for r in records if r["MESSAGE"] == "llm: first token")
    assert first["STAGE"] == "llm"
    assert first["LATENCY_MS"] == "412"
    assert first["PRIORITY"] == "6"
    assert first["LOGGER"] == "agentd.llm"
    assert "ERROR_KIND" not in first
    assert int(first["_PID"]) == os.getpid()

    by_kind = journald.query(f"TURN_ID={turn_id}", "ERROR_KIND=llm_timeout")
    assert [r["MESSAGE"] for r in by_kind] == ["llm: llm timed out"]
    assert by_kind[0]["PRIORITY"] == "3"

    failed = next(r for r in records if r.get("ERROR_KIND") == "llm_auth")
    assert "RuntimeError: 401 for key <redacted>" in failed["MESSAGE"]
    # every record this process wrote, not only the ones we matched on
    everything = journald.query("SYSLOG_IDENTIFIER=agentd", f"_PID={os.getpid()}")
    assert len(everything) >= 7
    dump = repr(everything)
    assert CANARY not in dump
    assert "sk-proj-" not in dump
    assert "0123456789abcdef" not in dump
    assert not any("CODE_ARGS" in r or "EXCEPTION_INFO" in r for r in everything)
