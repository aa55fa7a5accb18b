"""Every hardware profile: its config snippet validates and its asound.conf parses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agentd.config import load_config

pytestmark = pytest.mark.timeout(30)

HARDWARE = Path(__file__).resolve().parents[2] / "hardware"
# profile -> barge-in mode it must default to (aec only where the hardware cancels echo)
PROFILES = {
    "respeaker-2mic-hat": "reference",
    "respeaker-4mic-array": "reference",
    "respeaker-usb-mic-array-v2": "aec",
    "usb-speakerphone": "aec",
    "generic-usb": "reference",
}
# profile -> ALSA card ids its (capture, playback) PCMs end at, as the devices register
CARDS = {
    "respeaker-2mic-hat": ("seeed2micvoicec", "seeed2micvoicec"),
    "respeaker-4mic-array": ("seeed4micvoicec", "Headphones"),
    "respeaker-usb-mic-array-v2": ("ArrayUAC10", "ArrayUAC10"),
    "usb-speakerphone": ("USB", "USB"),
    "generic-usb": ("Device", "Device"),
}


# Add-ons complement an audio profile (no ALSA config of their own): a README with the
# wiring, and a config snippet to include beside the profile's.
ADDONS = ("presence-sensor",)


def test_every_profile_folder_is_listed() -> None:
    found = {p.name for p in HARDWARE.iterdir() if p.is_dir()}
    assert found == set(PROFILES) | set(ADDONS)
    for name in ADDONS:
        assert (HARDWARE / name / "README.md").is_file(), f"{name}/README.md missing"
    for name in PROFILES:
        for part in ("README.md", "asound.conf", "agentd.toml"):
            assert (HARDWARE / name / part).is_file(), f"{name}/{part} missing"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_snippet_validates_through_include(name: str, tmp_path: Path) -> None:
    main = tmp_path / "agentd.toml"
    main.write_text(f'include = ["{HARDWARE / name / "agentd.toml"}"]\n[device]\n')
    config = load_config(main)
    assert config.audio.barge_in.mode == PROFILES[name]
    assert config.audio.capture.device.startswith("agentd_capture")
    assert config.audio.playback.device.startswith("agentd_playback")
    if config.gpio.enabled:
        assert config.gpio.claimed_pins(), "an enabled GPIO profile should use some pin"


def alsa_env(conf: Path, tmp_path: Path) -> dict[str, str]:
    """Environment in which alsa-lib loads only alsa.conf and `conf`."""
    top = tmp_path / "top.conf"
    top.write_text(f"</usr/share/alsa/alsa.conf>\n<{conf}>\n")
    return {**os.environ, "ALSA_CONFIG_PATH": str(top)}


def alsa(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=20, check=False)


def aplay_list(conf: Path, tmp_path: Path) -> tuple[list[str], str]:
    """PCM names alsa-lib lists with the config loaded, and its stderr."""
    done = alsa(["aplay", "-L"], alsa_env(conf, tmp_path))
    names = [line for line in done.stdout.splitlines() if line and not line[0].isspace()]
    return names, done.stderr


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_asound_conf_parses_with_alsa_lib(name: str, tmp_path: Path) -> None:
    names, errors = aplay_list(HARDWARE / name / "asound.conf", tmp_path)
    assert "ALSA lib" not in errors, errors
    assert "null" in names  # the listing really ran with our config loaded


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_pcms_resolve_down_to_the_card(name: str, tmp_path: Path) -> None:
    """Opening the configured devices walks every plugin to the hw card, which is absent
    here: the only error allowed is "no such card", naming the card the device registers."""
    env = alsa_env(HARDWARE / name / "asound.conf", tmp_path)
    snippet = load_config(HARDWARE / name / "agentd.toml")
    capture_card, playback_card = CARDS[name]
    for tool, device, card in (
        ("arecord", snippet.audio.capture.device, capture_card),
        ("aplay", snippet.audio.playback.device, playback_card),
    ):
        done = alsa([tool, "-q", "-D", device, "-d", "1", "/dev/null"], env)
        assert done.returncode != 0
        assert f"Cannot get card index for {card}" in done.stderr, done.stderr
        assert "Unknown PCM" not in done.stderr


def test_a_broken_asound_conf_is_detected(tmp_path: Path) -> None:
    """The parse check above can fail: a syntax error shows up as an ALSA lib error."""
    bad = tmp_path / "bad.conf"
    bad.write_text("pcm.agentd_capture { type plug slave.pcm \n")
    names, errors = aplay_list(bad, tmp_path)
    assert "ALSA lib" in errors and "agentd_capture" not in names


@pytest.mark.parametrize("name", ADDONS)
def test_addon_snippet_validates_through_include(name: str, tmp_path: Path) -> None:
    main = tmp_path / "agentd.toml"
    main.write_text(f'include = ["{HARDWARE / name / "agentd.toml"}"]\n[device]\n')
    config = load_config(main)
    assert config.engagement.presence.pin >= 0


# profile -> (array geometry, what the wake word hears); docs/engagement.md "Front beam"
WAKE_INPUT = {
    "respeaker-4mic-array": ("respeaker-4mic", "beam"),
    "respeaker-usb-mic-array-v2": ("respeaker-4mic", "mix"),  # channel 0: the firmware's beam
}


@pytest.mark.parametrize("name", sorted(WAKE_INPUT))
def test_array_profiles_give_the_wake_word_its_input(name: str, tmp_path: Path) -> None:
    from agentd.conversation.engagement import wake_beam_for

    main = tmp_path / "agentd.toml"
    main.write_text(f'include = ["{HARDWARE / name / "agentd.toml"}"]\n[device]\n')
    config = load_config(main)
    capture = config.audio.capture
    geometry, heard = WAKE_INPUT[name]
    assert capture.array_geometry == geometry
    assert len(capture.mic_positions_mm()) == len(capture.mic_channels())
    assert config.engagement.wake_word.input == heard
    beam = wake_beam_for(config.engagement, capture, capture.rate_hz)
    assert (beam is not None) == (heard == "beam")
