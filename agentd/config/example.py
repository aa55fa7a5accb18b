"""Render the documented example config (config/agentd.toml) from the dataclasses.

The example is generated, not hand-kept, so it covers every key with its default and
its doc string; a test fails when the committed file drifts from the code.
Run: `python -m agentd.config.example > config/agentd.toml`.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, get_args, get_origin

from agentd.config import Config

HEADER = """\
# agentd configuration: every key with its default and what it is for.
# Validate with:  agentd check-config /etc/agentd/agentd.toml
# Secrets never go here: put them in /etc/agentd/credentials/<name> (systemd
# LoadCredential=) or the environment: assemblyai_api_key, openai_api_key,
# elevenlabs_api_key, mqtt_password (env: ASSEMBLYAI_API_KEY, ...).
#
# A hardware profile can be layered underneath this file:
# include = ["/opt/agentd/hardware/respeaker-2mic-hat/agentd.toml"]
"""

TOOLS_EXAMPLE = """\
# Tools the model may call (the allow-list: nothing else can run). Built-in kinds:
# time, opening_hours, call_staff; kind = "webhook" POSTs the JSON arguments to url.
[[llm.tools]]
name = "opening_hours"
kind = "opening_hours"
description = "Opening hours for today, tomorrow or a weekday."

[[llm.tools]]
name = "call_staff"
kind = "call_staff"
description = "Ask a member of staff to come to the front desk."

# [[llm.tools]]
# name = "book_meeting_room"
# kind = "webhook"
# description = "Book a meeting room for the visitor."
# url = "http://127.0.0.1:8080/rooms/book"
# timeout_s = 5.0
# [llm.tools.parameters]     # JSON schema of the arguments, checked before the call
# type = "object"
# required = ["room"]
# properties.room = { type = "string" }
# properties.minutes = { type = "integer", minimum = 15, maximum = 240 }
"""


def render() -> str:
    out = [HEADER]
    _section(Config, "", out)
    return "\n".join(out).rstrip() + "\n"


def _section(cls: type, path: str, out: list[str]) -> None:
    hints = typing.get_type_hints(cls)
    nested: list[tuple[str, type]] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            nested.append((field.name, hint))  # type: ignore[arg-type]
            continue
        if field.name == "include":
            continue
        if _is_table_list(hint):
            if path == "llm" and field.name == "tools":
                out.append(TOOLS_EXAMPLE)
            continue
        doc = field.metadata.get("doc", "")
        rules = _rules(field.metadata, hint)
        comment = "  ".join(x for x in (doc, rules) if x)
        if comment:
            out.append(f"# {comment}")
        default = _default(field)
        if default is None:  # optional and unset: TOML has no null, so leave it commented
            out.append(f"# {field.name} = <unset>")
            continue
        out.append(f"{field.name} = {_toml(default)}")
    for name, sub in nested:
        sub_path = f"{path}.{name}" if path else name
        doc = (sub.__doc__ or "").strip().splitlines()[0] if sub.__doc__ else ""
        out.append("")
        if doc and not doc.startswith(sub.__name__ + "("):
            out.append(f"# {doc}")
        out.append(f"[{sub_path}]")
        _section(sub, sub_path, out)


def _is_table_list(hint: Any) -> bool:
    if get_origin(hint) not in (tuple, list):
        return False
    args = get_args(hint)
    return bool(args) and dataclasses.is_dataclass(args[0])


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return ""


def _rules(meta: Any, hint: Any) -> str:
    if get_origin(hint) is typing.Literal:
        return "(" + " | ".join(json.dumps(a) for a in get_args(hint)) + ")"
    if meta.get("choices"):
        return "(" + " | ".join(json.dumps(c) for c in meta["choices"]) + ")"
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f"[{low} .. {high}]"
    return ""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot render {value!r}")


if __name__ == "__main__":
    print(render(), end="")
