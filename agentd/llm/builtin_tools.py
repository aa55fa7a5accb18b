"""Built-in tools: local time, opening hours, and calling a member of staff.

They answer from config and the clock only, so they work offline. Times are in the
site's zone (`llm.opening_hours.timezone`), not the Pi's, because the kiosk may run UTC.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from agentd.config.sections_llm import WEEKDAYS, OpeningHoursConfig, ToolConfig
from agentd.errors import ToolError
from agentd.llm.tools import CallStaff, Tool

_NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}

_DAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "day": {
            "type": "string",
            "description": "'today', 'tomorrow' or a weekday name such as 'monday'.",
        }
    },
    "additionalProperties": False,
}

_REASON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,  # one spoken sentence; also bounds the MQTT event size
            "description": "Who is here and why, in one short sentence.",
        }
    },
    "required": ["reason"],
    "additionalProperties": False,
}

_DEFAULT_DESCRIPTIONS = {
    "time": "Current local date and time at this site.",
    "opening_hours": "Opening hours of this site for a given day, and whether it is open now.",
    "call_staff": "Notify a member of staff that a visitor needs them here.",
}


def builtin_tool(
    config: ToolConfig,
    hours: OpeningHoursConfig,
    call_staff: CallStaff,
    now: Callable[[], datetime] | None = None,
) -> Tool:
    """The built-in tool of kind `config.kind`, named and described as configured."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(hours.timezone)
    clock = now or (lambda: datetime.now(zone))
    description = config.description or _DEFAULT_DESCRIPTIONS[config.kind]

    async def current_time(_: dict[str, Any]) -> dict[str, Any]:
        moment = clock().astimezone(zone)
        return {
            "time": moment.strftime("%H:%M"),
            "weekday": WEEKDAYS[moment.weekday()],
            "date": moment.date().isoformat(),
            "timezone": hours.timezone,
        }

    async def opening_hours(arguments: dict[str, Any]) -> dict[str, Any]:
        return hours_for_day(hours, clock().astimezone(zone), str(arguments.get("day", "today")))

    async def notify_staff(arguments: dict[str, Any]) -> dict[str, Any]:
        outcome = call_staff(str(arguments["reason"]))
        if inspect.isawaitable(outcome):
            await outcome
        return {"notified": True}

    handlers = {
        "time": (current_time, _NO_ARGS),
        "opening_hours": (opening_hours, _DAY_SCHEMA),
        "call_staff": (notify_staff, _REASON_SCHEMA),
    }
    handler, schema = handlers[config.kind]
    return Tool(config.name, description, schema, handler, config.timeout_s)


def hours_for_day(hours: OpeningHoursConfig, moment: datetime, day: str) -> dict[str, Any]:
    """Opening hours for `day` relative to `moment` (site-local, timezone-aware)."""
    key = day.strip().lower()
    if key == "today":
        offset = 0
    elif key == "tomorrow":
        offset = 1
    elif key in WEEKDAYS:
        offset = (WEEKDAYS.index(key) - moment.weekday()) % 7
    else:
        raise ToolError(f"unknown day {day[:40]!r}; use today, tomorrow or a weekday name")
    date = (moment + timedelta(days=offset)).date()
    ranges = hours.ranges(date.weekday())
    result: dict[str, Any] = {
        "day": WEEKDAYS[date.weekday()],
        "date": date.isoformat(),
        "hours": ", ".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in ranges) or "closed",
    }
    if offset == 0:
        minute = moment.hour * 60 + moment.minute
        result["now"] = moment.strftime("%H:%M")
        result["open_now"] = any(a <= minute < b for a, b in ranges)
    return result


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
