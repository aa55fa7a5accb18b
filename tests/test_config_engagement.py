"""The [engagement] section (issue 14): modes, bounds and start-up errors name the key."""

from __future__ import annotations

import pytest

from agentd.config import parse_config
from agentd.errors import ConfigError


def test_defaults_keep_open_speech_with_near_field_gating() -> None:
    engagement = parse_config({}).engagement
    assert engagement.modes == ("open", "button")
    assert engagement.near_field.enabled
    assert engagement.wake_word.model == "okay_nabu"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"modes": ["open", "clap"]}, "engagement.modes[1]"),
        ({"modes": []}, "engagement.modes"),
        ({"modes": ["presence"]}, "engagement.presence.pin"),
        ({"wake_word": {"model": "okay_bob"}}, "engagement.wake_word.model"),
        ({"follow_up_s": 0.2}, "engagement.follow_up_s"),
        ({"presence": {"sensor": "camera"}}, "engagement.presence.sensor"),
        ({"led_engaged": "wobble"}, "engagement.led_engaged"),
    ],
)
def test_bad_values_name_the_key(section: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"engagement": section})
    assert info.value.key_path == key


def test_combined_modes_and_a_custom_model_path() -> None:
    config = parse_config(
        {
            "engagement": {
                "modes": ["wake_word", "presence", "button"],
                "presence": {"pin": 23, "sensor": "pir", "greeting": "Hello!"},
                "wake_word": {"model": "/opt/agentd/models/hey_kiosk.json"},
            }
        }
    ).engagement
    assert set(config.modes) == {"wake_word", "presence", "button"}
    assert str(config.model_path()) == "/opt/agentd/models/hey_kiosk.json"
