"""[stt] config: keyterms the service would refuse or ignore fail at load (exit 78)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentd.cli import EX_CONFIG, main
from agentd.config import load_config
from agentd.errors import ConfigError


def write(tmp_path: Path, terms: list[str]) -> Path:
    path = tmp_path / "agentd.toml"
    path.write_text(f"[stt]\nkeyterms = {json.dumps(terms)}\n")
    return path


def test_100_keyterms_of_50_characters_load(tmp_path: Path) -> None:
    terms = [f"{i:03d}" + "x" * 47 for i in range(100)]
    assert load_config(write(tmp_path, terms)).stt.keyterms == tuple(terms)


def test_101_keyterms_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, [f"term {i}" for i in range(101)]))
    assert info.value.key_path == "stt.keyterms"
    assert "at most 100" in str(info.value)


def test_a_keyterm_over_50_characters_names_its_index(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, ["Anna Schmidt", "y" * 51]))
    assert info.value.key_path == "stt.keyterms[1]"
    assert "50 characters" in str(info.value)


def test_bad_keyterms_exit_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, [f"term {i}" for i in range(101)])
    assert main(["check-config", str(path)]) == EX_CONFIG == 78
    assert "stt.keyterms" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [-1, 1001])
def test_interruption_delay_bounds(tmp_path: Path, bad: int) -> None:
    path = tmp_path / "agentd.toml"
    path.write_text(f"[stt]\ninterruption_delay_ms = {bad}\n")
    with pytest.raises(ConfigError, match=r"stt\.interruption_delay_ms.*0 to 1000"):
        load_config(path)
