"""The real Mosquitto CLI clients as tests use them: MQTT 5 request/response and retained reads.

Tests drive the daemon through these rather than through paho so that what an operator's
own tools see is what is checked.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

from tests.helpers.mosquitto import Mosquitto


async def request(
    broker: Mosquitto,
    device: str,
    command: str,
    payload: str = "",
    *,
    reply_to: str = "console",
    wait_s: int = 10,
) -> dict[str, Any]:
    """One `cmd/<command>` round trip with `mosquitto_rr` (MQTT 5 response topic and
    correlation data), the reply's JSON document."""
    argv = [
        "mosquitto_rr", "-h", broker.host, "-p", str(broker.port), "-V", "5", "-W", str(wait_s),
        "-t", f"agentd/{device}/cmd/{command}", "-e", f"agentd/{device}/reply/{reply_to}",
        "-D", "PUBLISH", "correlation-data", f"corr-{command}", "-m", payload,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), wait_s + 5)
    assert proc.returncode == 0, err.decode()
    return dict(json.loads(out.decode()))


def retained(broker: Mosquitto, topic: str) -> list[str]:
    """Retained messages under `topic` as a fresh `mosquitto_sub -v` sees them."""
    out = subprocess.run(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-v",
         "--retained-only", "-W", "2"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    return out.stdout.splitlines()
