"""Config sections for the language model, its tools and opening hours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agentd.config._fields import section, setting
from agentd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ToolConfig:
    """One tool the model may call: a built-in (by kind) or a webhook."""

    name: str = setting(required=True)
    kind: Literal["time", "opening_hours", "call_staff", "webhook"] = setting(required=True)
    description: str = ""
    url: str = setting("", doc="webhook only: HTTP POST target for the JSON arguments.")
    timeout_s: float = setting(5.0, min=0.1, max=60.0)
    parameters: dict[str, Any] = setting(
        factory=dict, doc="JSON schema of the arguments (webhook); built-ins have their own."
    )

    def validate(self, path: str) -> None:
        if not self.name.replace("_", "").replace("-", "").isalnum() or len(self.name) > 64:
            raise ConfigError(f"{path}.name", "invalid tool name", self.name, "[A-Za-z0-9_-]{1,64}")
        if self.kind == "webhook" and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"{path}.url", "webhook tools need an http(s) url", self.url)
        if self.parameters:
            import jsonschema

            try:
                jsonschema.Draft202012Validator.check_schema(self.parameters)
            except jsonschema.SchemaError as exc:
                raise ConfigError(
                    f"{path}.parameters", f"not a valid JSON schema: {exc.message}"
                ) from None
            if self.parameters.get("type", "object") != "object":
                raise ConfigError(f"{path}.parameters", "schema type must be 'object'")


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class OpeningHoursConfig:
    """Weekly hours per day: "closed" or "HH:MM-HH:MM" ranges separated by commas."""

    timezone: str = setting("UTC", doc="IANA zone, e.g. 'Europe/Berlin'.")
    monday: str = "09:00-17:00"
    tuesday: str = "09:00-17:00"
    wednesday: str = "09:00-17:00"
    thursday: str = "09:00-17:00"
    friday: str = "09:00-17:00"
    saturday: str = "closed"
    sunday: str = "closed"

    def validate(self, path: str) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            key = f"{path}.timezone" if path else "timezone"
            raise ConfigError(key, "unknown time zone", self.timezone, "an IANA name") from None
        for day in WEEKDAYS:
            try:
                parse_hours(getattr(self, day))
            except ValueError as exc:
                key = f"{path}.{day}" if path else day
                raise ConfigError(key, str(exc), getattr(self, day), _HOURS_FORMAT) from None

    def ranges(self, weekday: int) -> list[tuple[int, int]]:
        """Open ranges for weekday (0 = Monday) as minutes after midnight."""
        return parse_hours(getattr(self, WEEKDAYS[weekday]))


_HOURS_FORMAT = "'closed' or 'HH:MM-HH:MM[,HH:MM-HH:MM...]'"


def parse_hours(text: str) -> list[tuple[int, int]]:
    """Parse "09:00-12:00,13:00-17:00" into minute ranges; "closed" is []."""
    text = text.strip().lower()
    if text == "closed":
        return []
    ranges = []
    for part in text.split(","):
        start, sep, end = part.strip().partition("-")
        if not sep:
            raise ValueError("bad opening hours")
        low, high = _minutes(start), _minutes(end)
        if high <= low:
            raise ValueError("closing time must be after opening time")
        ranges.append((low, high))
    return ranges


def _minutes(hhmm: str) -> int:
    hours, sep, minutes = hhmm.strip().partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError("bad time of day")
    value = int(hours) * 60 + int(minutes)
    if int(hours) > 24 or int(minutes) > 59 or value > 24 * 60:
        raise ValueError("bad time of day")
    return value


@dataclass(frozen=True, slots=True)
class LlmConfig:
    base_url: str = setting("https://api.openai.com/v1", doc="Any OpenAI-compatible server.")
    model: str = "gpt-4o-mini"
    system_prompt: str = setting(
        "You are the friendly front-desk assistant. Answer in one or two short spoken "
        "sentences. Never use lists, markdown or emoji."
    )
    temperature: float | None = setting(
        None,
        min=0.0,
        max=2.0,
        doc="Sent only when set: gpt-5 and o-series models refuse any but the default "
        "(400 unsupported_value).",
    )
    max_tokens: int = setting(
        300, min=16, max=4096, doc="Reply length cap, sent as `token_limit_param`."
    )
    token_limit_param: Literal["max_completion_tokens", "max_tokens"] = setting(
        "max_completion_tokens",
        doc="OpenAI's current name (gpt-5/o-series refuse max_tokens); 'max_tokens' for a "
        "server that only knows the old one.",
    )
    history_chars: int = setting(6000, min=500, max=200000, doc="History budget in characters.")
    idle_reset_s: float = setting(90.0, min=5.0, max=3600.0, doc="New visitor after this gap.")
    connect_timeout_s: float = setting(
        5.0, min=0.2, max=30.0, doc="TCP/TLS connect, per attempt, inside first_token_timeout_s."
    )
    first_token_timeout_s: float = setting(
        4.0,
        min=0.2,
        max=60.0,
        doc="From the request to the first text or tool call, retries and Retry-After included.",
    )
    chunk_gap_timeout_s: float = setting(3.0, min=0.2, max=60.0)
    request_timeout_s: float = setting(
        30.0, min=1.0, max=300.0, doc="One streamed request, start to end."
    )
    max_retries: int = setting(
        1,
        min=0,
        max=5,
        doc="Retries of 429/5xx/connection failures, only while first_token_timeout_s allows "
        "the wait (a Retry-After that does not fit fails at once).",
    )
    warm_connection: bool = setting(
        True,
        doc="Open the connection while the visitor speaks (one small GET), so the "
        "turn's request skips the TCP/TLS handshake.",
    )
    max_tool_rounds: int = setting(3, min=1, max=10)
    tools: tuple[ToolConfig, ...] = ()
    opening_hours: OpeningHoursConfig = section(OpeningHoursConfig)

    def validate(self, path: str) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            key = f"{path}.base_url" if path else "base_url"
            raise ConfigError(key, "needs an http(s) url", self.base_url)
        seen: set[str] = set()
        for i, tool in enumerate(self.tools):
            if tool.name in seen:
                key = f"{path}.tools[{i}].name" if path else f"tools[{i}].name"
                raise ConfigError(key, "duplicate tool name", tool.name)
            seen.add(tool.name)
