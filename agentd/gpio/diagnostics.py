"""`agentd devices` GPIO data and `agentd test-hardware`: the installer's first check.

test-hardware runs the audio self-test (agentd.diagnostics.self_test, the same one MQTT
`cmd/self_test` runs) on the configured playback and capture devices: a sweep out, the
room back in, with echo delay and coupling, noise floor, mic level, clipping and advice
naming the config key to change. Asked to (`voice_s`), it then prompts the installer to
say a sentence at the kiosk and calibrates the near-field gate from it, or from a level
the installer gives (`visitor_level_dbfs`); with a mic array, the channels' agreement
too. Then it lights each LED in turn and waits (with a timeout) for each fitted button.
It runs with `gpio.pin_factory = "mock"` too, which is how the tests drive it; the
device backends (`alsa`, or the simulator's) are passed in.
"""

from __future__ import annotations

import asyncio
import functools
import glob
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.config import Config
from agentd.diagnostics.agreement_check import AgreementCheck
from agentd.diagnostics.near_field_check import NearFieldCheck
from agentd.diagnostics.self_test import DeviceProbe, run_self_test
from agentd.errors import AgentdError
from agentd.events import LinkState
from agentd.gpio.buttons import BUTTON_NAMES
from agentd.gpio.patterns import COLOURS
from agentd.gpio.pins import make_pin_factory, probe_factories
from agentd.service.composition import (
    BUILTIN_BACKENDS,
    AudioDevices,
    DeviceBackends,
    DeviceBridges,
    build_audio,
)

LED_ON_S = 0.5


def describe_gpio(dev_dir: str = "/dev") -> dict[str, Any]:
    """GPIO chips, SPI devices and which gpiozero pin factories import here."""
    return {
        "gpio_chips": sorted(glob.glob(f"{dev_dir}/gpiochip*")),
        "spi_devices": sorted(glob.glob(f"{dev_dir}/spidev*")),
        "pin_factories": probe_factories(),
    }


def test_hardware(
    config: Config,
    out: TextIO,
    *,
    button_timeout_s: float = 10.0,
    factory: Any = None,
    spi: Any = None,
    backends: DeviceBackends = BUILTIN_BACKENDS,
    led_on_s: float = LED_ON_S,
    voice_s: float = 0.0,
    visitor_level_dbfs: float | None = None,
) -> int:
    """Run every check, print one line per result; 0 if all passed, 1 otherwise.

    `voice_s` > 0: after the sweep, ask for a sentence and record it that long (the
    near-field calibration); a given `visitor_level_dbfs` takes its place."""
    voice_ms = 0.0 if visitor_level_dbfs is not None else voice_s * 1000.0
    failures = _check_audio(config, out, backends, voice_ms, visitor_level_dbfs)
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


def _check_audio(
    config: Config,
    out: TextIO,
    backends: DeviceBackends,
    voice_ms: float = 0.0,
    visitor_level_dbfs: float | None = None,
) -> int:
    """The audio self-test on freshly opened devices; one line per finding."""
    pb, cap = config.audio.playback, config.audio.capture
    _say(out, f"audio self-test: a sweep on {pb.device!r}, recording {cap.device!r} (stay quiet)")
    lost: list[str] = []

    def link(name: str, state: LinkState, detail: str) -> None:
        if state is not LinkState.CONNECTED:
            lost.append(f"{name}: {detail or state.value}")

    try:
        audio = build_audio(config, backends, DeviceBridges(link, lambda _event: None))
    except AgentdError as exc:
        _say(out, f"FAIL audio devices: {exc}")
        return 1
    try:
        probe = _probe(audio, cap.rate_hz, pb.volume)
        ask = (
            "say a sentence at the kiosk now, as a visitor would (about 1 m away), "
            f"within {voice_ms / 1000:.0f} s"
        )
        prompt = functools.partial(_say, out, ask)  # said when the sweep's echo is over
        report = asyncio.run(
            run_self_test(probe, config, voice_ms=voice_ms, prompt=prompt,
                          visitor_level_dbfs=visitor_level_dbfs)
        )  # fmt: skip
    finally:
        audio.capture.close()
        audio.playback.close()
    if report.measurement is None:
        _say(out, f"FAIL audio self-test: {report.error}" + (f" ({lost[0]})" if lost else ""))
        return 1
    m = report.measurement
    delay = f"{m.echo_delay_ms} ms, {m.echo_coupling_db} dB" if m.echo_detected else "none heard"
    _say(out, f"capture level {m.mic_rms_dbfs} dBFS, noise floor {m.noise_floor_dbfs} dBFS, "
              f"clipped {m.clipped_percent} %, echo {delay}")  # fmt: skip
    if report.near_field is not None:
        _say(out, near_field_line(report.near_field))
        if report.near_field.agreement is not None:
            _say(out, agreement_line(report.near_field.agreement))
    for advice in report.recommendations:
        _say(out, f"ADVICE {advice.key}: {advice.advice}")
    _say(out, "OK audio" if report.ok else "FAIL audio (see ADVICE)")
    return 0 if report.ok else 1


def near_field_line(near: NearFieldCheck) -> str:
    """The near-field check in one line: room, threshold, visitor, both margins."""
    head = (
        f"near-field{'' if near.enabled else ' (off)'}: room {near.noise_floor_dbfs} dBFS, "
        f"gate threshold {near.threshold_dbfs} dBFS"
    )
    if near.visitor_level_dbfs is None:
        return f"{head}; {near.note}"
    return (
        f"{head}; visitor {near.visitor_level_dbfs} dBFS ({near.visitor_source}), margin "
        f"{near.visitor_margin_db:+} dB; a bystander at 3 m, margin "
        f"{near.bystander_margin_db:+} dB; calibrated: min_level_dbfs "
        f"{near.recommended_min_level_dbfs}, min_snr_db {near.recommended_min_snr_db}"
    )


def agreement_line(check: AgreementCheck) -> str:
    """A mic array's agreement in one line: room, threshold, visitor, margins, advice."""
    off = " (off)" if check.min_coherence <= 0 else ""
    room = "n/a" if check.room_coherence is None else check.room_coherence
    head = f"near-field array ({check.channels} mics{off}): room coherence {room}"
    head += f", gate min_coherence {check.min_coherence}"
    if check.room_margin is not None:
        head += f" (room margin {check.room_margin:+})"
    if check.visitor_coherence is None:
        return f"{head}; {check.note}" if check.note else head
    margin = "" if check.visitor_margin is None else f", margin {check.visitor_margin:+}"
    return (
        f"{head}; visitor {check.visitor_coherence} (spoken){margin}; calibrated: "
        f"min_coherence {check.recommended_min_coherence}"
    )


def _probe(audio: AudioDevices, rate_hz: int, gain: float) -> DeviceProbe:
    """A DeviceProbe on devices the CLI opened: the mic's thread hands chunks to the probe."""
    tap: list[Callable[[AudioChunk], None]] = []

    def deliver(chunk: AudioChunk) -> None:  # capture thread
        if tap:
            tap[0](chunk)

    def attach(on_chunk: Callable[[AudioChunk], None]) -> Callable[[], None]:
        tap.append(on_chunk)
        audio.capture.start(deliver)
        return tap.clear

    return DeviceProbe(audio.playback, attach, AudioFormat(rate_hz), gain)


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
