"""The diagnostics commands' parsing: every bad input an error naming the field, the
target untouched; good input reaches the target with exactly its arguments."""

from __future__ import annotations

import pytest

from agentd.errors import CommandError
from agentd.mqtt.commands import DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES, dispatch, parse_command
from tests.mqtt.conftest import RecordingTarget


def parse(name: str, payload: str) -> object:
    return parse_command(name, payload.encode(), max_bytes=4096, allow_dangerous=False)


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        ("self_test", '{"volume": 3}', "'volume'"),  # unknown field
        ("config", '{"full": true}', "'full'"),
        ("capture", "{}", "'turns'"),  # missing
        ("capture", '{"turns": 21}', "'turns'"),  # over the hard limit
        ("capture", '{"turns": -1}', "'turns'"),
        ("capture", '{"turns": 1.5}', "'turns'"),
        ("capture", '{"turns": true}', "'turns'"),
        ("capture", '{"turns": 2, "max_bytes": 9}', "'max_bytes'"),
        ("capture", "lots", "'turns'"),
        ("capture_get", '{"offset": 0}', "'offset'"),  # offset without a file
        ("capture_get", '{"length": 10}', "'length'"),
        ("capture_get", '{"file": "../../etc/passwd"}', "'file'"),  # no paths
        ("capture_get", '{"file": 7}', "'file'"),
        ("capture_get", '{"file": "a.wav", "offset": -1}', "'offset'"),
        ("capture_get", f'{{"file": "a.wav", "length": {MAX_CHUNK_BYTES + 1}}}', "'length'"),
        ("capture_get", '{"file": "a.wav", "length": 0}', "'length'"),
        ("capture_get", '{"file": "a.wav", "chunk": 1}', "'chunk'"),
    ],
)
def test_bad_input_names_the_field(name: str, payload: str, field: str) -> None:
    with pytest.raises(CommandError) as err:
        parse(name, payload)
    assert field in str(err.value), str(err.value)
    assert err.value.code in ("invalid", "malformed")


async def test_good_input_reaches_the_target() -> None:
    target = RecordingTarget()
    result = await dispatch(parse("self_test", "PRESS"), target)
    assert result == {"ok": True, "echo_delay_ms": 40.0}
    assert await dispatch(parse("capture", '{"turns": 2}'), target) == {"armed_turns": 2}
    assert await dispatch(parse("capture", "0"), target) == {"armed_turns": 0}
    await dispatch(parse("capture_get", ""), target)
    await dispatch(parse("capture_get", '{"file": "t1.wav", "offset": 65536}'), target)
    config = await dispatch(parse("config", ""), target)
    assert config["config"] == {"llm": {"max_tokens": 300}}  # config keys are not scrubbed
    assert target.calls == [
        ("self_test", None),
        ("capture", 2),
        ("capture", 0),
        ("capture_get", (None, 0, DEFAULT_CHUNK_BYTES)),
        ("capture_get", ("t1.wav", 65536, DEFAULT_CHUNK_BYTES)),
    ]
