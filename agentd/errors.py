"""The one exception tree of agentd.

Every error a component raises on purpose derives from `AgentdError`, so task
boundaries can tell "ours, expected, reportable" from a programming bug. Each class
carries an `error_kind`, the stable value logged as the journal field ERROR_KIND and
published on MQTT `event/fault`, so operators can filter on it.
"""

from __future__ import annotations


class AgentdError(Exception):
    """Base of every error agentd raises deliberately."""

    error_kind = "internal"


class ConfigError(AgentdError):
    """The configuration is invalid; the message names the key path, value and rule."""

    error_kind = "config"

    def __init__(
        self, key_path: str, problem: str, value: object = None, allowed: str = ""
    ) -> None:
        self.key_path = key_path
        self.problem = problem
        self.value = value
        self.allowed = allowed
        parts = [f"{key_path or '<root>'}: {problem}"]
        if value is not None:
            parts.append(f"got {value!r}")
        if allowed:
            parts.append(f"allowed: {allowed}")
        super().__init__("; ".join(parts))


class SecretError(AgentdError):
    """A credential is missing or unreadable (never includes the secret itself)."""

    error_kind = "secret"


class AudioError(AgentdError):
    """An audio device failed (open, read, write)."""

    error_kind = "audio"


class AudioDeviceLost(AudioError):
    """The device vanished (USB unplug); the owner reopens it with backoff."""

    error_kind = "audio_device_lost"


class LinkError(AgentdError):
    """A cloud or broker link failed; `link` names which (stt, llm, tts, mqtt)."""

    error_kind = "link"

    def __init__(self, link: str, message: str, *, retryable: bool = True) -> None:
        self.link = link
        self.retryable = retryable
        super().__init__(f"{link}: {message}")


class SttError(LinkError):
    error_kind = "stt"

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__("stt", message, retryable=retryable)


class SttAuthError(SttError):
    """Credentials refused by the STT service: retrying will not help."""

    error_kind = "stt_auth"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class LlmError(LinkError):
    error_kind = "llm"

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__("llm", message, retryable=retryable)


class LlmTimeout(LlmError):
    """First token or inter-chunk deadline breached."""

    error_kind = "llm_timeout"


class LlmRateLimited(LlmError):
    """HTTP 429; `retry_after_s` is the server's Retry-After hint, if it sent one."""

    error_kind = "llm_rate_limited"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, retryable=True)


class LlmAuthError(LlmError):
    """The model server refused the API key (HTTP 401/403): retrying will not help."""

    error_kind = "llm_auth"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class LlmQuotaExceeded(LlmError):
    """HTTP 429 `insufficient_quota`: the account is out of credit; permanent, not retried."""

    error_kind = "llm_quota"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class LlmRequestRejected(LlmError):
    """HTTP 400-class refusal of the request itself (e.g. `unsupported_parameter`)."""

    error_kind = "llm_rejected"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class TtsError(LinkError):
    error_kind = "tts"

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__("tts", message, retryable=retryable)


class TtsTimeout(TtsError):
    """First byte or inter-chunk deadline breached."""

    error_kind = "tts_timeout"


class TtsAuthError(TtsError):
    """ElevenLabs refused the API key (401 `invalid_api_key`): retrying will not help."""

    error_kind = "tts_auth"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class TtsQuotaExceeded(TtsError):
    """ElevenLabs 401 `quota_exceeded`: the key is valid but out of characters."""

    error_kind = "tts_quota"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class TtsRequestRejected(TtsError):
    """400/403/422: the request itself is refused (plan lacks the output format, bad field)."""

    error_kind = "tts_rejected"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class ToolError(AgentdError):
    """A tool call was invalid or failed; the text is fed back to the model."""

    error_kind = "tool"


class CommandError(AgentdError):
    """A remote (MQTT) command was rejected; the message goes back in the reply."""

    error_kind = "command"

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class GpioError(AgentdError):
    """GPIO, LED or SPI hardware could not be set up (no pin factory, pin busy, no SPI)."""

    error_kind = "gpio"
