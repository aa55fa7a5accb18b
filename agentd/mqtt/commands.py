"""Remote commands on `<base>/<device_id>/cmd/<name>`: strict parsing and dispatch.

Payloads are JSON objects validated by hand-written strict checks (no unknown keys, exact
types, bounded strings), or the plain strings Home Assistant sends: `ON`/`OFF` for the
mute switch, a bare number for the volume slider, `PRESS` for buttons. An empty payload
means "no arguments". Every JSON object may carry `"id"` (string <= 64 chars), echoed in
the reply for 3.1.1 clients that cannot use correlation data.

Volume is a percentage 0..100 on the wire (what a Home Assistant number shows); the
target receives a gain fraction 0.0..1.0.

Anything malformed, unknown, oversized or disallowed raises `CommandError` before the
target is touched, so a bad command changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentd.errors import CommandError

MAX_SAY_CHARS = 1000  # a spoken announcement; longer text is a mistake, not a message
MAX_PROMPT_CHARS = 8000  # persona prompt; still also bounded by max_command_bytes
MAX_ID_CHARS = 64
MAX_CAPTURE_TURNS = 20  # hard cap; privacy.capture_max_turns may only lower it
MAX_CHUNK_BYTES = 65536  # capture_get: 64 KiB raw -> ~87 KiB base64, well under broker limits
DEFAULT_CHUNK_BYTES = 32768
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")  # capture files; no paths
DANGEROUS = frozenset({"set_prompt", "reload_config", "restart"})
_SECRET_KEY = re.compile(r"pass|secret|token|api_key|apikey|credential", re.IGNORECASE)


class CommandTarget(Protocol):
    """What the daemon implements for remote commands; all run on the asyncio loop."""

    async def say(self, text: str) -> None: ...
    async def set_muted(self, muted: bool) -> None: ...
    async def set_volume(self, level: float) -> None: ...  # 0.0..1.0
    async def cancel(self) -> None: ...
    async def reset_conversation(self) -> None: ...
    async def reload_config(self) -> str: ...  # summary; raises CommandError if invalid
    def status(self) -> dict[str, object]: ...
    async def set_prompt(self, prompt: str) -> None: ...  # persisted by the daemon
    async def restart(self) -> None: ...
    async def self_test(  # raises CommandError("busy") if not now
        self, visitor_level_dbfs: float | None = None
    ) -> dict[str, object]: ...
    def effective_config(self) -> dict[str, object]: ...  # secrets as set/unset
    async def capture(self, turns: int) -> dict[str, object]: ...  # 0 = stop
    async def capture_get(
        self, file: str | None, offset: int, length: int
    ) -> dict[str, object]: ...


@dataclass(frozen=True, slots=True)
class Command:
    """A validated command, ready to dispatch."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None


def _text(value: Any, key: str, limit: int) -> str:
    if not isinstance(value, str):
        raise CommandError("invalid", f"'{key}' must be a string")
    if not value.strip():
        raise CommandError("invalid", f"'{key}' must not be empty")
    if len(value) > limit:
        raise CommandError("invalid", f"'{key}' is longer than {limit} characters")
    if "\x00" in value:
        raise CommandError("invalid", f"'{key}' contains a NUL character")
    return value


def _volume(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError("invalid", "'level' must be a number 0..100")
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise CommandError("invalid", f"'level' must be 0..100, got {value!r}")
    return float(value) / 100.0


def _integer(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError("invalid", f"'{key}' must be an integer {low}..{high}")
    if not low <= value <= high:
        raise CommandError("invalid", f"'{key}' must be {low}..{high}, got {value}")
    return value


# name -> required keys: the schema of every command (optional keys in _OPTIONAL)
_SCHEMA: dict[str, tuple[str, ...]] = {
    "say": ("text",),
    "mute": (),
    "unmute": (),
    "volume": ("level",),
    "cancel": (),
    "reset_conversation": (),
    "reload_config": (),
    "status": (),
    "set_prompt": ("prompt",),
    "restart": (),
    "self_test": (),
    "config": (),
    "capture": ("turns",),
    "capture_get": (),
}
_OPTIONAL: dict[str, tuple[str, ...]] = {
    "capture_get": ("file", "offset", "length"),
    "self_test": ("visitor_level_dbfs",),  # calibrates the near-field gate
}
COMMAND_NAMES = tuple(_SCHEMA)


def parse_command(name: str, payload: bytes, *, max_bytes: int, allow_dangerous: bool) -> Command:
    """Validate one command; raises CommandError(code, message) on anything off."""
    if name not in _SCHEMA:
        raise CommandError("unknown_command", f"unknown command {name[:40]!r}")
    if len(payload) > max_bytes:
        raise CommandError("too_large", f"payload is {len(payload)} bytes, limit {max_bytes}")
    if name in DANGEROUS and not allow_dangerous:
        raise CommandError("forbidden", f"{name} is disabled (mqtt.allow_dangerous_commands)")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("malformed", "payload is not UTF-8") from None
    stripped = text.strip()
    if stripped.startswith("{"):
        return _from_json(name, stripped)
    return _from_plain(name, stripped)


def _from_json(name: str, text: str) -> Command:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise CommandError("malformed", "payload is not valid JSON") from None
    if not isinstance(data, dict):
        raise CommandError("malformed", "payload must be a JSON object")
    request_id = data.pop("id", None)
    if request_id is not None and not (
        isinstance(request_id, str) and len(request_id) <= MAX_ID_CHARS
    ):
        raise CommandError("invalid", f"'id' must be a string of at most {MAX_ID_CHARS} chars")
    required = _SCHEMA[name]
    unknown = sorted(set(data) - set(required) - set(_OPTIONAL.get(name, ())))
    if unknown:
        raise CommandError("invalid", f"unknown key {unknown[0][:40]!r} for {name}")
    missing = [k for k in required if k not in data]
    if missing:
        raise CommandError("invalid", f"{name} needs '{missing[0]}'")
    return Command(name, _check_args(name, data), request_id)


def _from_plain(name: str, text: str) -> Command:
    """The plain payloads Home Assistant (and humans with mosquitto_pub) send."""
    if name == "volume":
        try:
            level = float(text)
        except ValueError:
            raise CommandError("malformed", "volume needs a number 0..100") from None
        return Command(name, {"level": _volume(level)})
    if name == "mute" and text.upper() == "OFF":
        return Command("unmute")
    if name == "capture":
        try:
            turns = int(text)
        except ValueError:
            raise CommandError("malformed", "capture needs 'turns': a number of turns") from None
        return Command(name, {"turns": _integer(turns, "turns", 0, MAX_CAPTURE_TURNS)})
    if name in ("say", "set_prompt"):
        key = _SCHEMA[name][0]
        limit = MAX_SAY_CHARS if name == "say" else MAX_PROMPT_CHARS
        return Command(name, {key: _text(text, key, limit)})
    if text.upper() in ("", "PRESS", "ON"):
        return Command(name, _capture_get_args({}) if name == "capture_get" else {})
    raise CommandError("malformed", f"{name} takes no arguments (send '' or a JSON object)")


def _check_args(name: str, data: dict[str, Any]) -> dict[str, Any]:
    if name == "say":
        return {"text": _text(data["text"], "text", MAX_SAY_CHARS)}
    if name == "set_prompt":
        return {"prompt": _text(data["prompt"], "prompt", MAX_PROMPT_CHARS)}
    if name == "volume":
        return {"level": _volume(data["level"])}
    if name == "capture":
        return {"turns": _integer(data["turns"], "turns", 0, MAX_CAPTURE_TURNS)}
    if name == "capture_get":
        return _capture_get_args(data)
    if name == "self_test" and "visitor_level_dbfs" in data:
        return {"visitor_level_dbfs": _level_dbfs(data["visitor_level_dbfs"])}
    return {}


def _level_dbfs(value: Any) -> float:
    """A level in dBFS (a visitor's, measured elsewhere): a number -80..0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError("invalid", "'visitor_level_dbfs' must be a number -80..0")
    if not math.isfinite(value) or not -80 <= value <= 0:
        raise CommandError("invalid", f"'visitor_level_dbfs' must be -80..0, got {value!r}")
    return float(value)


def _capture_get_args(data: dict[str, Any]) -> dict[str, Any]:
    """No file: list what is stored. A file: one chunk from `offset` (resumable)."""
    file = data.get("file")
    if file is not None and not (isinstance(file, str) and _FILE_NAME.match(file)):
        raise CommandError("invalid", "'file' must be a capture file name from the listing")
    if file is None and ("offset" in data or "length" in data):
        key = "offset" if "offset" in data else "length"
        raise CommandError("invalid", f"'{key}' needs 'file'")
    offset = _integer(data.get("offset", 0), "offset", 0, 2**31)
    length = _integer(data.get("length", DEFAULT_CHUNK_BYTES), "length", 1, MAX_CHUNK_BYTES)
    return {"file": file, "offset": offset, "length": length}


async def dispatch(command: Command, target: CommandTarget) -> dict[str, object]:
    """Run a validated command on the target; returns the reply's `result`."""
    name, args = command.name, command.args
    if name == "say":
        await target.say(args["text"])
    elif name in ("mute", "unmute"):
        await target.set_muted(name == "mute")
    elif name == "volume":
        await target.set_volume(args["level"])
        return {"level": round(args["level"] * 100, 1)}
    elif name == "cancel":
        await target.cancel()
    elif name == "reset_conversation":
        await target.reset_conversation()
    elif name == "reload_config":
        return {"summary": await target.reload_config()}
    elif name == "status":
        return scrub(target.status())
    elif name == "set_prompt":
        await target.set_prompt(args["prompt"])
    elif name == "restart":
        await target.restart()
    elif name == "self_test":
        return await target.self_test(args.get("visitor_level_dbfs"))
    elif name == "config":
        # not scrubbed: keys like max_tokens are config, and secrets are never in it
        # (credentials come from $CREDENTIALS_DIRECTORY; the target lists them set/unset)
        return target.effective_config()
    elif name == "capture":
        return await target.capture(args["turns"])
    elif name == "capture_get":
        return await target.capture_get(args["file"], args["offset"], args["length"])
    return {}


def scrub(data: Mapping[str, object]) -> dict[str, object]:
    """Drop anything that looks like a credential; replies never carry secrets."""
    out: dict[str, object] = {}
    for key, value in data.items():
        if _SECRET_KEY.search(str(key)):
            continue
        out[str(key)] = scrub(value) if isinstance(value, Mapping) else value
    return out


def reply_ok(command: Command, result: Mapping[str, object]) -> dict[str, object]:
    reply: dict[str, object] = {"ok": True, "command": command.name, "result": dict(result)}
    if command.request_id is not None:
        reply["id"] = command.request_id
    return reply


def reply_error(name: str, error: CommandError, request_id: str | None = None) -> dict[str, object]:
    reply: dict[str, object] = {
        "ok": False,
        "command": name[:40],
        "error": {"code": error.code, "message": str(error)},
    }
    if request_id is not None:
        reply["id"] = request_id
    return reply
