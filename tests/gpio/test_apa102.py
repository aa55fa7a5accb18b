"""APA102 frames byte for byte against the datasheet format, through the fake SPI device."""

from __future__ import annotations

import math
from typing import Any

import pytest

from agentd.config import parse_config
from agentd.events import AgentState
from agentd.gpio.apa102 import Apa102, FakeSpiDevice, encode_frame
from agentd.gpio.leds import StatusLights

pytestmark = pytest.mark.timeout(20)


def datasheet_frame(leds: list[tuple[int, int, int, int]]) -> bytes:
    """Independent encoding: 4x0x00, per LED 111bbbbb B G R, ceil(n/16) end bytes."""
    out = [0, 0, 0, 0]
    for level, r, g, b in leds:
        out += [0b11100000 + level, b, g, r]
    return bytes(out + [0] * math.ceil(len(leds) / 16))


def test_encode_frame_matches_the_datasheet() -> None:
    pixels = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    assert encode_frame(pixels, 1.0) == datasheet_frame(
        [(31, 255, 0, 0), (31, 0, 255, 0), (31, 0, 0, 255)]
    )
    assert encode_frame([(0.5, 0.25, 1.0)], 0.5) == bytes([0, 0, 0, 0, 0xE0 | 16, 255, 64, 128, 0])
    assert encode_frame([(1.0, 1.0, 1.0)], 0.0)[4] == 0xE0  # brightness 0 = dark
    # 17 LEDs need 2 end bytes (n/2 clock edges = 8.5 -> 9 bits -> 2 bytes)
    frame = encode_frame([(0.0, 0.0, 0.0)] * 17, 1.0)
    assert len(frame) == 4 + 17 * 4 + 2 and frame[-2:] == b"\x00\x00"


def test_status_lights_over_fake_spi_with_power_pin(factory: Any, wait_until: Any) -> None:
    config = parse_config(
        {
            "gpio": {
                "leds": {
                    "driver": "apa102",
                    "apa102_count": 12,
                    "apa102_power_pin": 5,
                    "brightness": 1.0,
                }
            }
        }
    ).gpio.leds
    spi = FakeSpiDevice()
    lights = StatusLights.from_config(config, factory, spi=spi)
    power = factory.pin(5)
    try:
        assert power.state  # the 4-mic array's LED supply is switched on first
        lights.show(AgentState.LISTENING)  # on blue
        assert lights.settled(5)
        assert spi.transfers[-1] == datasheet_frame([(31, 0, 0, 255)] * 12)
        lights.show(AgentState.MUTED)  # on red
        assert lights.settled(5)
        assert spi.transfers[-1] == datasheet_frame([(31, 255, 0, 0)] * 12)
        lights.show(AgentState.THINKING)  # spin cyan: one bright head moving round
        start = len(spi.transfers)
        assert spi.wait_for(start + 10, timeout=5)
        heads = []
        for frame in spi.transfers[start : start + 10]:
            greens = [frame[4 + 4 * i + 2] for i in range(12)]
            heads.append(greens.index(max(greens)))
            assert all(frame[4 + 4 * i + 1] == frame[4 + 4 * i + 2] for i in range(12))  # cyan
        assert len(set(heads)) >= 3, heads
    finally:
        lights.close()
    assert spi.transfers[-1] == datasheet_frame([(0, 0, 0, 0)] * 12)  # dark on close
    assert spi.closed and not power.state


def test_driver_close_is_idempotent() -> None:
    spi = FakeSpiDevice()
    driver = Apa102(3, spi, brightness=0.5)
    driver.render([(1.0, 1.0, 1.0)])  # fewer pixels than LEDs: the rest stay dark
    assert spi.transfers[-1] == datasheet_frame([(16, 255, 255, 255), (16, 0, 0, 0), (16, 0, 0, 0)])
    driver.close()
    driver.close()
    assert len(spi.transfers) == 2
