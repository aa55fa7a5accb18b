"""Config validation: every class of bad input -> exit 78 and a message naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentd.config import load_config, parse_config
from agentd.config.example import render
from agentd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "agentd.toml"


def agentd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


BAD_CONFIGS = [
    # (toml text, key path that must be named, fragment of the rule)
    ("[audio.vad]\naggressivenes = 2\n", "audio.vad.aggressivenes", "unknown key"),
    ("[audio.vad]\naggressiveness = 'high'\n", "audio.vad.aggressiveness", "an integer"),
    ("[audio.vad]\naggressiveness = 9\n", "audio.vad.aggressiveness", "0 to 3"),
    ("[audio.capture]\nrate_hz = 44100\n", "audio.capture.rate_hz", "16000"),
    ("[audio.capture]\nbackend = 'pulse'\n", "audio.capture.backend", "'alsa'"),
    ("[mqtt]\nport = 70000\n", "mqtt.port", "1 to 65535"),
    ("[mqtt]\nenabled = 'yes'\n", "mqtt.enabled", "true or false"),
    ("[[llm.tools]]\nkind = 'time'\n", "llm.tools[0].name", "missing required value"),
    ("[[llm.tools]]\nname = 'hook'\nkind = 'webhook'\n", "llm.tools[0].url", "http"),
    ("[llm]\ntemperature = 3.5\n", "llm.temperature", "0.0 to 2.0"),
    ("[stt]\nkeyterms = 'Anna'\n", "stt.keyterms", "array"),
    ("audio = 3\n", "audio", "table"),
    ("[llm\nmodel = 'x'\n", "", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "key", "rule"), BAD_CONFIGS)
def test_bad_config_is_exit_78_naming_the_key(
    tmp_path: Path, text: str, key: str, rule: str
) -> None:
    path = tmp_path / "agentd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert key in message
    assert rule in message


def test_cli_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[audio.vad]\naggressiveness = 9\n")
    result = agentd("check-config", str(bad))
    assert result.returncode == 78
    assert "audio.vad.aggressiveness" in result.stderr and "got 9" in result.stderr
    missing = agentd("check-config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 78
    run_bad = agentd("run", "--config", str(bad))
    assert run_bad.returncode == 78
    assert agentd("version").stdout.startswith("agentd ")


def test_example_config_is_generated_from_the_code_and_valid() -> None:
    assert EXAMPLE.read_text() == render(), "regenerate: python -m agentd.config.example"
    config = load_config(EXAMPLE)
    assert config.audio.vad.preroll_ms >= 300
    result = agentd("check-config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr


def test_check_config_shows_secrets_only_as_set_or_unset(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    canary = "sk-canary-3f9a1c7e55d04b2b"
    (creds / "openai_api_key").write_text(canary + "\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "CREDENTIALS_DIRECTORY": str(creds),
        "ELEVENLABS_API_KEY": "xi-canary-77",
    }
    result = agentd("check-config", str(EXAMPLE), env=env)
    assert result.returncode == 0, result.stderr
    assert canary not in result.stdout + result.stderr
    assert "xi-canary-77" not in result.stdout + result.stderr
    assert 'openai_api_key = "set (credential)"' in result.stdout
    assert 'elevenlabs_api_key = "set (environment)"' in result.stdout
    assert 'assemblyai_api_key = "unset"' in result.stdout


def test_includes_layer_profiles_under_the_main_file(tmp_path: Path) -> None:
    (tmp_path / "profile.toml").write_text("[audio.capture]\nchannels = 2\nchannel = 0\n")
    (tmp_path / "main.toml").write_text(
        'include = ["profile.toml"]\n[audio.capture]\nchannel = 1\n'
    )
    config = load_config(tmp_path / "main.toml")
    assert config.audio.capture.channels == 2
    assert config.audio.capture.channel == 1


def test_defaults_are_valid_and_frozen() -> None:
    config = parse_config({})
    with pytest.raises(AttributeError):
        config.llm.model = "x"  # type: ignore[misc]
