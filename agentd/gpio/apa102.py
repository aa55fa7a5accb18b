"""A small APA102 ("DotStar") LED driver over spidev, and a fake SPI device for tests.

Wire format (APA102 datasheet, and cpldcpu's "Understanding the APA102 Superled",
https://cpldcpu.wordpress.com/2014/11/30/understanding-the-apa102-superled/):

- start frame: 32 zero bits (4 x 0x00);
- one 32-bit frame per LED: 0b111 + 5-bit global brightness, then Blue, Green, Red;
- end frame: the data lags half a clock per LED, so at least n/2 more clock edges are
  needed for the last LED to latch: ceil(n / 16) bytes. We send 0x00 (as Seeed's and
  tinue's APA102_Pi drivers do) rather than the datasheet's 0xFF, because 0xFF bytes
  can be taken as a white LED frame by a chain longer than configured.

ReSpeaker HATs: the LEDs sit on SPI0 chip select 1 (/dev/spidev0.1) in Seeed's own
driver (respeaker/mic_hat, `bus=0, device=1`); the 4-mic array also gates their 5 V
with GPIO5, which must be driven high first (`apa102_power_pin = 5`).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from agentd.errors import GpioError
from agentd.gpio.patterns import Rgb

START_FRAME = b"\x00\x00\x00\x00"
LED_FRAME_MARKER = 0b1110_0000  # the three 1-bits leading every LED frame
MAX_GLOBAL = 0b1_1111  # 5-bit global brightness


class SpiDevice(Protocol):
    """The part of spidev.SpiDev this driver uses."""

    def writebytes2(self, data: Sequence[int] | bytes) -> None: ...

    def close(self) -> None: ...


class FakeSpiDevice:
    """Records every transfer instead of clocking it out (tests, `test-hardware --mock`)."""

    def __init__(self) -> None:
        self.transfers: list[bytes] = []
        self.closed = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def writebytes2(self, data: Sequence[int] | bytes) -> None:
        if self.closed:
            raise OSError("fake SPI device is closed")
        with self._changed:
            self.transfers.append(bytes(data))
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until at least `count` transfers were recorded (False on timeout)."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.transfers) >= count, timeout)

    def close(self) -> None:
        self.closed = True


def open_spidev(bus: int, device: int, speed_hz: int) -> SpiDevice:
    """Open /dev/spidev<bus>.<device> (mode 0, MSB first); GpioError if impossible."""
    try:
        import spidev
    except ImportError as exc:
        raise GpioError("APA102 LEDs need the 'spidev' package (pip install spidev)") from exc
    spi = spidev.SpiDev()
    try:
        spi.open(bus, device)
    except OSError as exc:
        raise GpioError(
            f"cannot open /dev/spidev{bus}.{device}: {exc} (enable SPI: dtparam=spi=on)"
        ) from exc
    spi.max_speed_hz = speed_hz
    spi.mode = 0
    dev: SpiDevice = spi
    return dev


def encode_frame(pixels: Sequence[Rgb], brightness: float) -> bytes:
    """One complete APA102 transfer for `pixels` (RGB 0..1) at global `brightness` 0..1."""
    global_level = min(MAX_GLOBAL, math.ceil(brightness * MAX_GLOBAL)) if brightness > 0 else 0
    out = bytearray(START_FRAME)
    for red, green, blue in pixels:
        out.append(LED_FRAME_MARKER | global_level)
        out.extend((_byte(blue), _byte(green), _byte(red)))
    out.extend(b"\x00" * math.ceil(len(pixels) / 16))
    return bytes(out)


def _byte(value: float) -> int:
    return max(0, min(255, round(value * 255)))


class Apa102:
    """A chain of `count` APA102 LEDs: a colour LED driver for StatusLights."""

    colour = True

    def __init__(
        self, count: int, spi: SpiDevice, *, brightness: float, power: Any | None = None
    ) -> None:
        self.count = count
        self._spi = spi
        self._brightness = brightness
        self._power = power  # a gpiozero DigitalOutputDevice, already on, or None
        self._closed = False

    def render(self, pixels: Sequence[Rgb]) -> None:
        """Show one frame; missing pixels are dark, extra ones ignored."""
        frame = list(pixels[: self.count]) + [(0.0, 0.0, 0.0)] * (self.count - len(pixels))
        self._spi.writebytes2(encode_frame(frame, self._brightness))

    def close(self) -> None:
        """Dark LEDs, power off, SPI released; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):  # the device is going away anyway
            self._spi.writebytes2(encode_frame([(0.0, 0.0, 0.0)] * self.count, 0.0))
        self._spi.close()
        if self._power is not None:
            self._power.close()
