"""`agentd devices` GPIO data and `agentd test-hardware`: the installer's first check.

test-hardware plays a 1 kHz tone on the playback device, records 2 s from the capture
device and reports its RMS level in dBFS, lights each LED in turn, and waits (with a
timeout) for each fitted button. It runs with `gpio.pin_factory = "mock"` too, which
is how the tests drive it. Audio goes through pyalsaaudio directly unless `play` /
`record` callables are passed.
"""

from __future__ import annotations

import array
import glob
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from agentd.config import Config
from agentd.errors import AgentdError
from agentd.gpio.buttons import BUTTON_NAMES
from agentd.gpio.patterns import COLOURS
from agentd.gpio.pins import make_pin_factory, probe_factories

TONE_HZ = 1000.0
TONE_S = 1.0
TONE_DBFS = -12.0  # loud enough to hear, far from clipping
RECORD_S = 2.0
SILENT_DBFS = -75.0  # below this a live mic is not plugged in / muted (16-bit floor ~ -96)
LED_ON_S = 0.5

Play = Callable[[bytes, int], None]  # (S16_LE mono PCM, rate_hz)
Record = Callable[[float, int, int], bytes]  # (seconds, rate_hz, channels) -> S16_LE PCM


def describe_gpio(dev_dir: str = "/dev") -> dict[str, Any]:
    """GPIO chips, SPI devices and which gpiozero pin factories import here."""
    return {
        "gpio_chips": sorted(glob.glob(f"{dev_dir}/gpiochip*")),
        "spi_devices": sorted(glob.glob(f"{dev_dir}/spidev*")),
        "pin_factories": probe_factories(),
    }


def tone(rate_hz: int, seconds: float = TONE_S, freq_hz: float = TONE_HZ) -> bytes:
    """A sine tone at TONE_DBFS as S16_LE mono."""
    amplitude = 32767 * 10 ** (TONE_DBFS / 20)
    samples = array.array(
        "h",
        (
            round(amplitude * math.sin(2 * math.pi * freq_hz * i / rate_hz))
            for i in range(int(rate_hz * seconds))
        ),
    )
    return samples.tobytes()


def rms_dbfs(pcm: bytes, channels: int = 1, channel: int = -1) -> float:
    """RMS level of S16_LE `pcm` in dBFS (-inf for digital silence); -1 = all channels."""
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if channel >= 0 and channels > 1:
        samples = samples[channel::channels]
    if not samples:
        return -math.inf
    mean_square = sum(s * s for s in samples) / len(samples)
    return -math.inf if mean_square == 0 else 10 * math.log10(mean_square / 32768**2)


def alsa_player(device: str) -> Play:
    def play(pcm: bytes, rate_hz: int) -> None:
        import alsaaudio

        period = rate_hz // 50  # 20 ms periods
        out = alsaaudio.PCM(
            alsaaudio.PCM_PLAYBACK,
            device=device,
            channels=1,
            rate=rate_hz,
            format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=period,
        )
        try:
            for i in range(0, len(pcm), period * 2):
                out.write(pcm[i : i + period * 2])
            out.drain()
        finally:
            out.close()

    return play


def alsa_recorder(device: str) -> Record:
    def record(seconds: float, rate_hz: int, channels: int) -> bytes:
        import alsaaudio

        period = rate_hz // 50
        mic = alsaaudio.PCM(
            alsaaudio.PCM_CAPTURE,
            device=device,
            channels=channels,
            rate=rate_hz,
            format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=period,
        )
        want = int(seconds * rate_hz) * channels * 2
        data = bytearray()
        try:
            while len(data) < want:
                frames, chunk = mic.read()
                if frames < 0:  # overrun: keep going, the level is still meaningful
                    continue
                data.extend(chunk)
        finally:
            mic.close()
        return bytes(data[:want])

    return record


def test_hardware(
    config: Config,
    out: TextIO,
    *,
    button_timeout_s: float = 10.0,
    factory: Any = None,
    spi: Any = None,
    play: Play | None = None,
    record: Record | None = None,
    led_on_s: float = LED_ON_S,
) -> int:
    """Run every check, print one line per result; 0 if all passed, 1 otherwise."""
    failures = _check_audio(config, out, play, record)
    if config.gpio.enabled:
        try:
            if factory is None:
                factory = make_pin_factory(config.gpio.pin_factory)
            failures += _check_leds(config, out, factory, spi, led_on_s)
            failures += _check_buttons(config, out, factory, button_timeout_s)
        except AgentdError as exc:
            _say(out, f"FAIL gpio: {exc}")
            failures += 1
    else:
        _say(out, "SKIP gpio: gpio.enabled = false")
    _say(out, "hardware check passed" if not failures else f"{failures} check(s) failed")
    return 0 if not failures else 1


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


def _check_audio(config: Config, out: TextIO, play: Play | None, record: Record | None) -> int:
    pb, cap = config.audio.playback, config.audio.capture
    failures = 0
    _say(out, f"playing a {TONE_HZ:.0f} Hz tone on {pb.device!r} for {TONE_S:.0f} s")
    try:
        (play or alsa_player(pb.device))(tone(pb.rate_hz), pb.rate_hz)
        _say(out, "OK playback (did you hear it?)")
    except Exception as exc:  # ALSA raises plain errors; report them all
        _say(out, f"FAIL playback {pb.device!r}: {exc}")
        failures += 1
    _say(out, f"recording {RECORD_S:.0f} s from {cap.device!r}: speak now")
    try:
        pcm = (record or alsa_recorder(cap.device))(RECORD_S, cap.rate_hz, cap.channels)
    except Exception as exc:  # ALSA raises plain errors; report them all
        _say(out, f"FAIL capture {cap.device!r}: {exc}")
        return failures + 1
    level = rms_dbfs(pcm, cap.channels, cap.channel)
    if level < SILENT_DBFS:
        _say(out, f"FAIL capture level {level:.1f} dBFS: microphone silent (muted or unplugged?)")
        return failures + 1
    _say(out, f"OK capture level {level:.1f} dBFS")
    return failures


def _check_leds(config: Config, out: TextIO, factory: Any, spi: Any, on_s: float) -> int:
    from agentd.gpio.leds import make_driver

    leds = config.gpio.leds
    if leds.driver == "none":
        _say(out, "SKIP leds: driver = none")
        return 0
    driver = make_driver(leds, factory, spi=spi)
    try:
        white = COLOURS["white"]
        for i in range(driver.count):
            _say(out, f"LED {i + 1}/{driver.count} on ({leds.driver})")
            pixels = [(0.0, 0.0, 0.0)] * driver.count
            pixels[i] = white
            driver.render(pixels)
            time.sleep(on_s)  # a person has to see it; this is the CLI, not the loop
            driver.render([(0.0, 0.0, 0.0)] * driver.count)
        _say(out, "OK leds (did each one light?)")
    finally:
        driver.close()
    return 0


def _check_buttons(config: Config, out: TextIO, factory: Any, timeout_s: float) -> int:
    from gpiozero import Button

    failures = 0
    for name in BUTTON_NAMES:
        cfg = getattr(config.gpio.buttons, name)
        if cfg.pin < 0:
            continue
        pressed = threading.Event()
        button = Button(
            cfg.pin,
            pull_up=cfg.pull_up,
            bounce_time=cfg.bounce_ms / 1000 if cfg.bounce_ms else None,
            pin_factory=factory,
        )
        try:
            button.when_pressed = pressed.set
            _say(out, f"press the {name} button (GPIO{cfg.pin}) within {timeout_s:.0f} s")
            if pressed.wait(timeout_s):
                _say(out, f"OK button {name}")
            else:
                _say(out, f"FAIL button {name}: no press within {timeout_s:.0f} s")
                failures += 1
        finally:
            button.close()
    return failures
