"""TLS with a throwaway CA and an ACL-restricted device user, on a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentd.config.sections_mqtt import MqttTlsConfig
from agentd.errors import ConfigError
from agentd.events import LinkState
from agentd.mqtt import MqttService
from tests.helpers.mosquitto import Mosquitto
from tests.mqtt.conftest import (
    DEVICE_ID,
    LinkWatcher,
    Observer,
    RecordingTarget,
    device_config,
    health,
    mqtt_config,
)

pytestmark = pytest.mark.timeout(60)
ROOT = f"agentd/{DEVICE_ID}"
# The ACL in docs/mqtt.md: a device writes only its own subtree (and its HA discovery configs),
# reads its commands; operators read everything and may send commands.
ACL = """\
user operator
topic read #
topic write agentd/+/cmd/#
topic write homeassistant/status

pattern read agentd/%u/cmd/#
pattern write agentd/%u/#
pattern write homeassistant/+/%u/#
pattern read homeassistant/status
"""


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path, tls=True, users={DEVICE_ID: "dev-pw", "operator": "op-pw"}, acl=ACL)
    b.start()
    try:
        yield b
    finally:
        b.kill()


async def test_tls_device_confined_to_its_subtree(
    tls_broker: Mosquitto, observers: list[Observer]
) -> None:
    b = tls_broker
    ops = Observer(b, "#", username="operator", password="op-pw")
    observers.append(ops)
    tls = MqttTlsConfig(enabled=True, ca_file=str(b.ca_file))
    cfg = mqtt_config(b, port=b.tls_port, username=DEVICE_ID, tls=tls)
    watcher = LinkWatcher()
    service = MqttService(cfg, device_config(), "dev-pw", RecordingTarget(), health,
                          on_link_changed=watcher)  # fmt: skip
    service.start()
    await watcher.wait(LinkState.CONNECTED)
    assert service.link is not None
    service.link.publish("agentd/other-kiosk/state", "idle", qos=1, retain=True)  # refused
    service.publish_event("button", {"n": 1})  # allowed: its own subtree, sent afterwards
    await ops.await_for(f"{ROOT}/event/button")
    await ops.await_for(f"homeassistant/device/{DEVICE_ID}/config")
    assert not [m for m in ops.messages if m.topic.startswith("agentd/other-kiosk/")]
    assert "Denied PUBLISH from agentd-kiosk1 (d0, q1, r1, m" in b.log()  # refused by the ACL
    # the operator can command the device through the ACL, over TLS, with mosquitto_rr
    out = await asyncio.to_thread(
        subprocess.run,
        ["mosquitto_rr", "-V", "5", "-h", "localhost", "-p", str(b.tls_port), "--cafile",
         str(b.ca_file), "-u", "operator", "-P", "op-pw", "-t", f"{ROOT}/cmd/status",
         "-e", f"{ROOT}/reply/console", "-m", "{}", "-W", "10"],
        capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    assert json.loads(out.stdout)["ok"] is True, out
    await service.stop()


async def test_wrong_password_is_failed_not_crash(tls_broker: Mosquitto) -> None:
    tls = MqttTlsConfig(enabled=True, ca_file=str(tls_broker.ca_file))
    cfg = mqtt_config(tls_broker, port=tls_broker.tls_port, username=DEVICE_ID, tls=tls)
    watcher = LinkWatcher()
    service = MqttService(cfg, device_config(), "wrong", RecordingTarget(), health,
                          on_link_changed=watcher)  # fmt: skip
    service.start()
    await watcher.wait(LinkState.FAILED)
    await service.stop()


def test_missing_ca_file_is_config_error(tmp_path: Path) -> None:
    from agentd.mqtt.link import _ssl_context

    with pytest.raises(ConfigError, match=r"mqtt\.tls\.ca_file"):
        _ssl_context(MqttTlsConfig(enabled=True, ca_file=str(tmp_path / "nope.pem")))
