"""Topic names, QoS/retain choices and payload builders for `<base>/<device_id>/...`.

| topic                 | QoS | retain | why                                                      |
|-----------------------|-----|--------|----------------------------------------------------------|
| status                | 1   | yes    | last will + "online": a late subscriber sees liveness     |
| state                 | 1   | yes    | latest state wins; dashboards need it after they connect  |
| engagement            | 1   | yes    | waiting/engaged (JSON): state too, so retained like state |
| health                | 0   | yes    | periodic snapshot: a lost one is replaced N seconds later |
| metrics/turn          | 1   | no     | one record per reply: each matters (and costs), not state |
| event/<name>          | 1   | no     | button, staff_call, fault: must arrive, must not replay   |
| reply                 | 1   | no     | command replies for MQTT 3.1.1 clients                    |
| cmd/<name> (inbound)  | 1   | no     | subscribed at QoS 1 so a command is not silently lost     |

Health is QoS 0 on purpose: it is not queued while offline (a backlog of stale
snapshots is useless); the next interval replaces it.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from agentd.events import AgentState, TurnMetrics

STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
EVENT_NAMES = ("button", "staff_call", "fault")
# The values of agentd.conversation.engagement.EngagementState (a test keeps them equal;
# not imported, so the MQTT layer does not pull in the audio front end).
ENGAGEMENT_STATES = ("waiting", "engaged")
QOS_STATE = QOS_EVENT = QOS_METRICS = QOS_REPLY = QOS_STATUS = 1
QOS_HEALTH = 0
_THERMAL_GLOB = "thermal_zone*/temp"
_THERMAL_ROOT = Path("/sys/class/thermal")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_MAX_ID = 64  # keeps topics and Home Assistant unique_ids short and readable


def sanitize_id(raw: str) -> str:
    """A device id safe in MQTT topics and Home Assistant node ids ([a-z0-9_-])."""
    cleaned = _UNSAFE.sub("-", raw.strip().lower()).strip("-")
    return cleaned[:_MAX_ID] or "agentd"


def default_device_id(configured: str = "") -> str:
    """`device.id` if set, else the hostname (first label), sanitized."""
    return sanitize_id(configured or socket.gethostname().split(".")[0])


def sanitize_event_name(name: str) -> str:
    """Event names become one topic level: no wildcards, no separators."""
    return sanitize_id(name).replace("-", "_")


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic one device uses."""

    base: str
    device_id: str

    @property
    def root(self) -> str:
        return f"{self.base.strip('/')}/{self.device_id}"

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def state(self) -> str:
        return f"{self.root}/state"

    @property
    def engagement(self) -> str:
        return f"{self.root}/engagement"

    @property
    def health(self) -> str:
        return f"{self.root}/health"

    @property
    def metrics_turn(self) -> str:
        return f"{self.root}/metrics/turn"

    @property
    def reply(self) -> str:
        return f"{self.root}/reply"

    @property
    def cmd_prefix(self) -> str:
        return f"{self.root}/cmd/"

    @property
    def cmd_filter(self) -> str:
        return f"{self.root}/cmd/+"

    def cmd(self, name: str) -> str:
        return f"{self.root}/cmd/{name}"

    def event(self, name: str) -> str:
        return f"{self.root}/event/{sanitize_event_name(name)}"


def state_payload(state: AgentState) -> str:
    """`state` carries the bare enum value, so Home Assistant can use it unparsed."""
    return state.value


def metrics_payload(metrics: TurnMetrics) -> str:
    return json.dumps(asdict(metrics), separators=(",", ":"))


def json_payload(data: Mapping[str, object]) -> str:
    """Compact JSON; anything not JSON-native is stringified rather than crashing."""
    return json.dumps(data, separators=(",", ":"), default=str)


def cpu_temperature_c(root: Path = _THERMAL_ROOT) -> float | None:
    """Highest thermal zone in degrees C, None where /sys is unreadable (containers, CI)."""
    temps: list[float] = []
    for path in sorted(root.glob(_THERMAL_GLOB)):
        try:
            temps.append(int(path.read_text().strip()) / 1000.0)  # millidegrees in sysfs
        except (OSError, ValueError):
            continue
    return max(temps) if temps else None


def memory_rss_bytes() -> int | None:
    """Resident set size of this process from /proc/self/statm (pages x page size)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
