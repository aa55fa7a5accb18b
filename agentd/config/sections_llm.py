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


@dataclass(frozen=True, slots=True)
class OpeningHoursConfig:
    timezone: str = setting("UTC", doc="IANA zone, e.g. 'Europe/Berlin'.")
    monday: str = "09:00-17:00"
    tuesday: str = "09:00-17:00"
    wednesday: str = "09:00-17:00"
    thursday: str = "09:00-17:00"
    friday: str = "09:00-17:00"
    saturday: str = "closed"
    sunday: str = "closed"


@dataclass(frozen=True, slots=True)
class LlmConfig:
    base_url: str = setting("https://api.openai.com/v1", doc="Any OpenAI-compatible server.")
    model: str = "gpt-4o-mini"
    system_prompt: str = setting(
        "You are the friendly front-desk assistant. Answer in one or two short spoken "
        "sentences. Never use lists, markdown or emoji."
    )
    temperature: float = setting(0.6, min=0.0, max=2.0)
    max_tokens: int = setting(300, min=16, max=4096)
    history_chars: int = setting(6000, min=500, max=200000, doc="History budget in characters.")
    idle_reset_s: float = setting(90.0, min=5.0, max=3600.0, doc="New visitor after this gap.")
    first_token_timeout_s: float = setting(4.0, min=0.2, max=60.0)
    chunk_gap_timeout_s: float = setting(3.0, min=0.2, max=60.0)
    max_retries: int = setting(1, min=0, max=5)
    max_tool_rounds: int = setting(3, min=1, max=10)
    tools: tuple[ToolConfig, ...] = ()
    opening_hours: OpeningHoursConfig = section(OpeningHoursConfig)
