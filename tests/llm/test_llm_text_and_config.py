"""SpeakableStream across delta boundaries; LlmConfig validation messages."""

from __future__ import annotations

from typing import Any

import pytest
from _llm_support import llm_config

from agentd.errors import ConfigError
from agentd.tts.speakable import TAG_MAX_CHARS, SpeakableStream

pytestmark = pytest.mark.timeout(10)


def speak(*deltas: str) -> str:
    spoken = SpeakableStream()
    return "".join(spoken.feed(d) for d in deltas) + spoken.flush()


def test_tags_split_across_deltas_are_removed() -> None:
    assert speak("Hello <bre", 'ak time="1s"', "/> there") == "Hello  there"


def test_markdown_and_controls_removed_words_kept() -> None:
    assert speak("**Open** today\x00\x07 # now `9`\u200b") == "Open today  now 9"
    assert speak("line one\nline\ttwo") == "line one\nline\ttwo"


def test_lone_angle_bracket_is_not_a_tag() -> None:
    long_tail = "x" * (TAG_MAX_CHARS + 10)
    assert speak("3 < 5 and ", long_tail) == "3  5 and " + long_tail
    assert speak("ends with <unfinished") == "ends with unfinished"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"opening_hours": {"monday": "9-5"}}, "llm.opening_hours.monday"),
        ({"opening_hours": {"friday": "17:00-09:00"}}, "llm.opening_hours.friday"),
        ({"opening_hours": {"timezone": "Mars/Base"}}, "llm.opening_hours.timezone"),
        (
            {"tools": [{"name": "a", "kind": "time"}, {"name": "a", "kind": "time"}]},
            "llm.tools[1].name",
        ),
        ({"tools": [{"name": "w", "kind": "webhook", "url": "ftp://x"}]}, "llm.tools[0].url"),
        (
            {
                "tools": [
                    {
                        "name": "w",
                        "kind": "webhook",
                        "url": "http://x",
                        "parameters": {"type": "array"},
                    }
                ]
            },
            "llm.tools[0].parameters",
        ),
        ({"tools": [{"name": "bad name!", "kind": "time"}]}, "llm.tools[0].name"),
        ({"base_url": "localhost:8080"}, "llm.base_url"),
    ],
)
def test_bad_config_names_the_key(overrides: dict[str, Any], key: str) -> None:
    base_url = overrides.pop("base_url", "http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError) as info:
        llm_config(base_url, **overrides)
    assert info.value.key_path == key


def test_split_hours_parse() -> None:
    config = llm_config("http://x/v1", opening_hours={"friday": "09:00-12:00, 13:00-15:30"})
    assert config.opening_hours.ranges(4) == [(540, 720), (780, 930)]
    assert config.opening_hours.ranges(6) == []
