"""Logging setup: journald with structured fields under systemd, readable stderr otherwise.

Callers log with the standard library and attach journal fields through `fields()`:

    log.info("reply done", extra=fields(turn_id=tid, stage="llm", latency_ms=412))

which become TURN_ID=, STAGE=, LATENCY_MS= in the journal (`journalctl -u agentd
TURN_ID=…`) and a `[TURN_ID=… STAGE=…]` suffix on stderr. Every handler runs the
redaction filter, so known secret values and anything shaped like an API key never leave
the process, whatever a library decides to log.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agentd.config.sections_core import LoggingConfig
from agentd.errors import ConfigError

SYSLOG_IDENTIFIER = "agentd"
JOURNAL_SOCKET = "/run/systemd/journal/socket"  # fixed in libsystemd's sd_journal_sendv()
REDACTED = "<redacted>"

# Chatty at INFO/DEBUG (every HTTP request, every websocket frame); WARNING still shows.
NOISY_LOGGERS = (
    "httpx",
    "httpcore",
    "httpx2",  # openai 3.x's vendored HTTP client: one INFO line per request otherwise
    "httpcore2",
    "websockets",
    "openai",
    "elevenlabs",
    "assemblyai",
    "urllib3",
    "aiohttp",
    "paho",
)

_FIELD_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")  # journald's rule for user fields
# Fields the journal handler sets itself; letting callers override them corrupts records.
_RESERVED_FIELDS = frozenset(
    {"MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER", "LOGGER", "THREAD_NAME"}
    | {"PROCESS_NAME", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "CODE_ARGS"}
    | {"EXCEPTION_TEXT", "EXCEPTION_INFO"}
)
_MAX_FIELD_CHARS = 2048  # a field is a label or a number; longer values are a bug upstream

# Shapes of credentials the providers use, caught even when we were never told the value:
# OpenAI "sk-…"/"sk-proj-…", "Bearer …", ElevenLabs "xi-api-key: …", AssemblyAI raw
# "Authorization: …", and token=/api_key=/password= in URLs, JSON and reprs.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), REDACTED),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=\-]+"), f"Bearer {REDACTED}"),
    (
        re.compile(
            r"(?i)\b(xi-api-key|authorization|api[_-]?key|token|password|passwd|secret)"
            r"(['\"]?\s*[:=]\s*['\"]?)(?!<redacted>)[^\s'\",;&}]{8,}"
        ),
        rf"\1\2{REDACTED}",
    ),
)


def fields(**kw: object) -> dict[str, object]:
    """Structured journal fields for `extra=`: keys upper-cased, None values dropped."""
    out: dict[str, object] = {}
    for key, raw in kw.items():
        name = key.upper()
        if not _FIELD_NAME.match(name) or name in _RESERVED_FIELDS:
            raise ValueError(f"log field {key!r} is not a usable journal field name")
        if raw is None:
            continue
        # LinkState.CONNECTED logs as "connected", not the enum repr
        out[name] = raw.value if isinstance(raw, enum.Enum) else raw
    return out


class Redactor:
    """Replaces known secret values and key-shaped strings with <redacted>."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a key that contains another key is removed whole
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactionFilter(logging.Filter):
    """Renders message+args, traceback and extra fields through the redactor, in place.

    Args are folded into the message (and then dropped) so no handler can see them raw:
    systemd's JournalHandler would otherwise send them verbatim as CODE_ARGS=.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_agentd_redacted", False):
            return True  # the same record reaches several handlers
        redact = self.redactor
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string must not lose the record
            message = f"{record.msg!r} (bad log arguments: {exc})"
        record.msg, record.args = redact(message), None
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text), None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if _FIELD_NAME.match(key):
                text = str(value)[:_MAX_FIELD_CHARS]
                setattr(record, key, redact(text))
        record._agentd_redacted = True
        return True


def _short_name(name: str) -> str:
    return name.removeprefix("agentd.") if name != "agentd" else name


class JournalMessageFormatter(logging.Formatter):
    """MESSAGE= for the journal: 'component: text' (time, level, fields are separate)."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_short_name(record.name)}: {record.getMessage()}"
        if record.exc_text:
            text += "\n" + record.exc_text
        return text


class StderrFormatter(logging.Formatter):
    """'2026-11-25 07:30:01.123 INFO stt: connected [TURN_ID=… STAGE=…]'."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if _FIELD_NAME.match(k))
        text = f"{stamp}.{int(record.msecs):03d} {record.levelname} "
        text += f"{_short_name(record.name)}: {record.getMessage()}"
        if extra:
            text += f" [{extra}]"
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + record.stack_info
        return text


@dataclass
class _State:
    config: LoggingConfig = field(default_factory=LoggingConfig)
    secrets: list[str] = field(default_factory=list)
    backend: str = ""
    handlers: list[logging.Handler] = field(default_factory=list)


_state = _State()


def choose_backend(config: LoggingConfig, environ: Mapping[str, str] | None = None) -> str:
    """'journal' or 'stderr'. auto = journal iff our stderr *is* the JOURNAL_STREAM."""
    if config.backend != "auto":
        return config.backend
    env = os.environ if environ is None else environ
    stream = env.get("JOURNAL_STREAM", "")
    if not stream:
        return "stderr"
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return "stderr"
    # systemd's advice (systemd.exec(5)): compare device:inode, the variable is inherited
    # by children whose stderr may have been redirected elsewhere.
    return "journal" if stream == f"{st.st_dev}:{st.st_ino}" else "stderr"


def _journal_handler() -> logging.Handler:
    if not os.path.exists(JOURNAL_SOCKET):
        raise ConfigError(
            "logging.backend",
            f"journal forced but {JOURNAL_SOCKET} does not exist (journald not running)",
            "journal",
            "'stderr', or 'auto' (journal only when started by systemd)",
        )
    from systemd.journal import JournalHandler

    class _Handler(JournalHandler):  # type: ignore[misc]
        """If journald goes away mid-run, write the line to stderr instead of a traceback."""

        def handleError(self, record: logging.LogRecord) -> None:
            with contextlib.suppress(Exception):  # nowhere left to report to
                sys.stderr.write(StderrFormatter().format(record) + "\n")

    return _Handler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)  # type: ignore[no-any-return]


def setup_logging(
    config: LoggingConfig,
    secrets_to_redact: Iterable[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Install agentd's handler on the root logger (idempotent); returns the backend used.

    Raises ConfigError when the journal is forced but journald is not there: backends are
    chosen by name, never by silent fallback.
    """
    backend = choose_backend(config, environ)
    handler: logging.Handler
    if backend == "journal":
        handler = _journal_handler()
        handler.setFormatter(JournalMessageFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(StderrFormatter())
    secrets = list(secrets_to_redact)
    handler.addFilter(RedactionFilter(Redactor(secrets)))

    root = logging.getLogger()
    for old in _state.handlers:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(config.level.upper())
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    _state.config, _state.secrets, _state.backend = config, secrets, backend
    _state.handlers = [handler]
    return backend


def reconfigure(config: LoggingConfig, secrets_to_redact: Iterable[str] | None = None) -> str:
    """SIGHUP: apply a new level/backend/transcript flag; keeps the secrets unless given."""
    secrets = _state.secrets if secrets_to_redact is None else secrets_to_redact
    return setup_logging(config, secrets)


def shutdown_logging() -> None:
    """Remove and close agentd's handlers (tests, and clean exit)."""
    root = logging.getLogger()
    for handler in _state.handlers:
        root.removeHandler(handler)
        handler.close()
    _state.handlers = []


def transcripts_enabled() -> bool:
    return _state.config.log_transcripts


def log_transcript(
    logger: logging.Logger, who: str, text: str, turn_id: str, *, enabled: bool | None = None
) -> bool:
    """Log what someone said only if transcripts are on; True if logged.

    `enabled` overrides [logging].log_transcripts from the last setup_logging()/reconfigure()
    (components that hold their own copy of the flag pass it in).
    """
    if not (_state.config.log_transcripts if enabled is None else enabled):
        return False
    logger.info(
        "%s said: %s", who, text, extra=fields(turn_id=turn_id, stage="transcript", speaker=who)
    )
    return True


def current_backend() -> str:
    return _state.backend


def redact(text: str) -> str:
    """Redact with the secrets given to the last setup_logging() (for non-log output)."""
    return Redactor(_state.secrets)(text)


__all__ = [
    "NOISY_LOGGERS",
    "SYSLOG_IDENTIFIER",
    "RedactionFilter",
    "Redactor",
    "choose_backend",
    "current_backend",
    "fields",
    "log_transcript",
    "reconfigure",
    "redact",
    "setup_logging",
    "shutdown_logging",
    "transcripts_enabled",
]
