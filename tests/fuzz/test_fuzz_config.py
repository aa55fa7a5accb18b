"""Config fuzzing: any TOML a person (or a broken deploy) can write -> Config or ConfigError.

Three layers: random TOML-able trees (unknown keys, wrong shapes), structure-aware
mutations of the real default config (one leaf replaced by a wrong type, an extreme
number, a huge or odd unicode string, a table, NaN/inf), and whole files through
`agentd check-config` (exit 0 or 78, never a traceback).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentd.config import Config, load_config, parse_config, to_dict
from agentd.errors import ConfigError

pytestmark = pytest.mark.timeout(120)
FUZZ = settings(
    max_examples=400,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

keys = st.text(min_size=1, max_size=12) | st.sampled_from(["audio", "llm", "tools", "vad", "x"])
scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.just("x" * 100_000)
)
trees = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def _leaf_paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        out = [prefix] if prefix else []
        for key, value in data.items():
            out += _leaf_paths(value, (*prefix, key))
        return out
    return [prefix]


DEFAULTS = to_dict(parse_config({}))
DEFAULTS["llm"]["tools"] = [{"name": "hours", "kind": "opening_hours"}]
PATHS = _leaf_paths(DEFAULTS)


def _outcome(data: Any) -> Config | ConfigError:
    """parse_config's result; any exception other than ConfigError fails the test."""
    try:
        return parse_config(data)
    except ConfigError as exc:
        assert str(exc) and exc.problem, "a ConfigError must say what is wrong"
        return exc


@FUZZ
@given(trees)
def test_random_trees_give_config_or_config_error(data: Any) -> None:
    if not isinstance(data, dict):
        data = {"audio": data}
    _outcome(data)


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(data))  # deep copy of plain data
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _key_path(path: tuple[Any, ...]) -> str:
    """The key path as ConfigError spells it (`audio.capture.rate_hz`)."""
    return ".".join(map(str, path))


def _holds(got: Any, value: Any) -> bool:
    """`got` (re-read from the Config) carries `value`; a table may gain its defaults."""
    if isinstance(value, dict):
        return isinstance(got, dict) and all(
            k in got and _holds(got[k], v) for k, v in value.items()
        )
    if isinstance(value, list):
        return (
            isinstance(got, list)
            and len(got) == len(value)
            and all(_holds(g, v) for g, v in zip(got, value, strict=True))
        )
    return bool(got == value)


def _same_type_as_default(path: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """Values of the leaf's own type (often accepted), so the accepted branch is exercised."""
    default = _get(DEFAULTS, path)
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(min_value=-10, max_value=10) | st.integers(-(10**7), 10**7)
    if isinstance(default, float):
        return st.floats(min_value=-10.0, max_value=10.0) | st.floats(-1e7, 1e7)
    if isinstance(default, str):
        return st.text(max_size=40) | st.sampled_from(["", " padded ", "a b", default])
    return st.just(default)


@FUZZ
@given(st.sampled_from(PATHS), trees)
def test_one_bad_leaf_is_named_in_the_error(path: tuple[Any, ...], value: Any) -> None:
    _check_one_leaf(path, value)


@FUZZ
@given(st.sampled_from(PATHS).flatmap(lambda p: st.tuples(st.just(p), _same_type_as_default(p))))
def test_one_well_typed_leaf_is_kept_or_named(where: tuple[tuple[Any, ...], Any]) -> None:
    _check_one_leaf(*where)


def _check_one_leaf(path: tuple[Any, ...], value: Any) -> None:
    """The default config with `value` at `path`: an error naming that key, or a Config
    that keeps the value as given and round-trips."""
    result = _outcome(_set(DEFAULTS, path, value))
    named = _key_path(path)
    if isinstance(result, ConfigError):
        # The message leads to the key: exactly the leaf that was set, or (when the bad
        # value is itself a table or a list) a key or an item inside that value.
        inside = result.key_path.startswith((named + ".", named + "["))
        assert result.key_path == named or (inside and isinstance(value, dict | list)), (
            result.key_path,
            named,
        )
    else:
        # Accepted: then it is kept as given, and the Config survives a trip through
        # plain (TOML-able) data unchanged.
        again = json.loads(json.dumps(to_dict(result)))
        assert _holds(_get(again, path), value), (named, value)
        assert parse_config(again) == result


# Every table that refuses unknown keys: the root and each section holding a leaf.
TABLES = sorted({path[:-1] for path in PATHS}, key=len)


@st.composite
def unknown_keys(draw: st.DrawFn) -> tuple[tuple[Any, ...], str]:
    """A section and a key it does not have (every example fits: none is skipped)."""
    table = draw(st.sampled_from(TABLES))
    known = _get(DEFAULTS, table)
    return table, draw(keys.filter(lambda k: k not in known))


@FUZZ
@given(unknown_keys(), trees)
def test_unknown_keys_are_refused(where: tuple[tuple[Any, ...], str], value: Any) -> None:
    table, key = where
    result = _outcome(_set(DEFAULTS, (*table, key), value))
    assert isinstance(result, ConfigError), (table, key)
    assert result.key_path == _key_path((*table, key))
    assert result.problem == "unknown key"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e308, -(2**63)])
def test_extreme_numbers_in_every_float_setting(value: float) -> None:
    floats = [p for p in PATHS if isinstance(_get(DEFAULTS, p), float)]
    assert len(floats) > 20  # not vacuous: the config has many float settings
    for path in floats:
        result = _outcome(_set(DEFAULTS, path, value))
        if math.isnan(value):
            assert isinstance(result, ConfigError), path  # NaN passes every range check


# --- whole files, through the command line ------------------------------------------

BAD_FILES: list[bytes] = [
    b"\xff\xfe not utf-8 \x00",
    b"[audio\nrate = ",
    "[llm]\nsystem_prompt = '''{}'''\n".format("\u202e\u0000" * 10).encode(),
    ("[llm]\nmodel = " + json.dumps("\u00e9\U0001f600" * 50_000) + "\n").encode(),
    b"[audio.capture]\nrate_hz = 1e999\n",
    b"[audio.playback]\nvolume = nan\n",
    b"[[llm.tools]]\nname = 'x'\nkind = 'opening_hours'\n[[llm.tools]]\nname = 'x'\n",
    b"include = ['self.toml']\n",
    ("a = " + "[" * 200 + "]" * 200 + "\n").encode(),
    ("[" + ".".join(["t"] * 300) + "]\n").encode(),
]


@pytest.mark.parametrize("content", BAD_FILES, ids=range(len(BAD_FILES)))
def test_load_config_on_bad_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "self.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError):
        load_config(path)


def test_check_config_exits_78_without_traceback(tmp_path: Path) -> None:
    for i in (0, 3, 5, 7):
        path = tmp_path / "self.toml"
        path.write_bytes(BAD_FILES[i])
        proc = subprocess.run(
            [sys.executable, "-m", "agentd", "check-config", str(path)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        stderr = proc.stderr.decode(errors="replace")
        assert proc.returncode == 78, (i, stderr[-500:])
        assert "configuration error" in stderr and "Traceback" not in stderr
        assert len(stderr) < 2000, "a huge bad value must be shortened in the message"
