"""The only place agentd reads secrets: systemd credentials first, then the environment.

systemd `LoadCredential=openai_api_key:/etc/agentd/credentials/openai_api_key` puts the
file under $CREDENTIALS_DIRECTORY; without systemd the same names upper-cased in the
environment work (OPENAI_API_KEY, ...). Values are wrapped in `Secret` whose repr never
shows them, and every logger runs through a redaction filter fed from `known_values()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agentd.errors import SecretError

SECRET_NAMES = ("assemblyai_api_key", "openai_api_key", "elevenlabs_api_key", "mqtt_password")
_MAX_SECRET_BYTES = 4096  # a key is tens of bytes; anything bigger is a mistaken path


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value whose str/repr are redacted; call `reveal()` at the SDK boundary."""

    name: str
    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name}=<redacted>)"

    __str__ = __repr__


class Secrets:
    """Secrets loaded once at start (and on reload)."""

    def __init__(self, values: dict[str, Secret], sources: dict[str, str]) -> None:
        self._values = values
        self._sources = sources

    @classmethod
    def load(cls, environ: dict[str, str] | None = None) -> Secrets:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Secret] = {}
        sources: dict[str, str] = {}
        cred_dir = env.get("CREDENTIALS_DIRECTORY", "")
        for name in SECRET_NAMES:
            value, source = _read_credential(cred_dir, name)
            if value is None:
                raw = env.get(name.upper(), "")
                value, source = (raw.strip(), "environment") if raw.strip() else (None, "")
            if value:
                values[name] = Secret(name, value)
                sources[name] = source
        return cls(values, sources)

    def get(self, name: str) -> Secret | None:
        return self._values.get(name)

    def require(self, name: str) -> Secret:
        secret = self._values.get(name)
        if secret is None:
            raise SecretError(
                f"secret {name!r} is not set: provide $CREDENTIALS_DIRECTORY/{name} "
                f"(LoadCredential=) or the {name.upper()} environment variable"
            )
        return secret

    def value_or(self, name: str, default: str) -> str:
        secret = self._values.get(name)
        return secret.reveal() if secret else default

    def summary(self) -> dict[str, str]:
        """name -> 'set (credential)' / 'unset': what check-config may print."""
        return {
            n: f"set ({self._sources[n]})" if n in self._values else "unset" for n in SECRET_NAMES
        }

    def known_values(self) -> list[str]:
        return [s.reveal() for s in self._values.values() if len(s.reveal()) >= 4]


def _read_credential(cred_dir: str, name: str) -> tuple[str | None, str]:
    if not cred_dir:
        return None, ""
    path = Path(cred_dir) / name
    try:
        data = path.read_bytes()[:_MAX_SECRET_BYTES]
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        raise SecretError(f"credential {name!r} unreadable: {exc.strerror}") from None
    value = data.decode("utf-8", "replace").strip()
    return (value or None), "credential"
