"""10,000 hypothesis-generated command payloads through the command parser.

The broker-level fuzz (test_mqtt_fuzz.py) sends 2,000 through a real Mosquitto; this one
covers the issue's >= 10,000 bar at the validation boundary itself, where every remote
payload is decided: the only outcomes allowed are a Command or a CommandError.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentd.errors import CommandError
from agentd.mqtt.commands import DANGEROUS, parse_command

NAMES = ["say", "mute", "unmute", "volume", "cancel", "reset_conversation", "reload_config",
         "status", "set_prompt", "restart", "bogus", "", "say/../restart", "+", "#"]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["text", "level", "prompt", "id", "x"]), json_values, max_size=3
    ).map(lambda d: json.dumps(d).encode()),
    st.integers(min_value=4000, max_value=9000).map(lambda n: b"{" + b" " * n + b"}"),
)


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(NAMES), payload=payloads, allow=st.booleans())
@example(name="mute", payload=b" off ", allow=False)  # what HA's switch sends, any case
def test_any_payload_is_a_command_or_a_clear_error(name: str, payload: bytes, allow: bool) -> None:
    try:
        command = parse_command(name, payload, max_bytes=4096, allow_dangerous=allow)
    except CommandError as exc:
        assert exc.code in {"unknown_command", "malformed", "invalid", "too_large", "forbidden"}
        assert str(exc)
        return
    # Home Assistant's mute switch sends a plain OFF to `mute`: that is an unmute.
    switch_off = name == "mute" and payload.decode("utf-8", "replace").strip().upper() == "OFF"
    assert command.name == ("unmute" if switch_off else name)
    assert allow or name not in DANGEROUS
    assert len(payload) <= 4096
