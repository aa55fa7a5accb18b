"""What the AssemblyAI session is asked for, which depends on the speech model's family.

The two families take different parameters and end a turn differently (protocols.md,
"Model families differ"; assemblyai 1.8.2 `streaming/v3/models.py`):
- U3 Pro (`u3-rt-pro`, `universal-3-5-pro`, ...) formats every end of turn itself and
  ignores `format_turns` / `end_of_turn_confidence_threshold`, so they are not sent; it
  takes an `interruption_delay` (its early partial, the barge-in confirmation, comes
  that long + ~250 ms into speech). Its single end-of-turn Turn is the final.
- Universal-Streaming with `format_turns` sends an unformatted end of turn, then a
  formatted copy: the copy is the final (an empty end of turn has nothing to format and
  is final at once).
Sending a parameter the model ignores would hide a misconfiguration, so none is sent.
"""

from __future__ import annotations

from typing import Any

from agentd.config.sections_stt import SttConfig
from agentd.errors import ConfigError

# speech_model values of the U3 Pro family (assemblyai 1.8.2 SpeechModel).
U3_MODELS = frozenset(
    {
        "u3-rt-pro",
        "u3-pro",
        "u3-rt-pro-beta-1",
        "universal-3-5-pro",
        "universal-3-6",
        "universal-3-6-pro",
    }
)


def is_u3(config: SttConfig) -> bool:
    return config.speech_model in U3_MODELS


def punctuates(config: SttConfig) -> bool:
    """The finals carry punctuation (U3 Pro always; Universal-Streaming with format_turns),
    so a transcript without a full stop is an unfinished sentence (conversation.turn_end)."""
    return is_u3(config) or config.format_turns


def awaits_formatted_copy(config: SttConfig) -> bool:
    """An unformatted end of turn is not final yet: its formatted copy follows."""
    return not is_u3(config) and config.format_turns


def session_parameters(config: SttConfig, rate_hz: int) -> Any:
    """The SDK's RealTimeParameters for this config; a value the SDK refuses is a
    ConfigError naming the `stt.*` key (so a bad speech_model fails at boot, exit 78)."""
    from assemblyai.streaming.v3 import RealTimeParameters
    from pydantic import ValidationError

    params: dict[str, Any] = {
        "sample_rate": rate_hz,
        "encoding": "pcm_s16le",
        "speech_model": config.speech_model,
        "min_turn_silence": config.min_turn_silence_ms,
        "max_turn_silence": config.max_turn_silence_ms,
        "keyterms_prompt": list(config.keyterms) or None,
    }
    if is_u3(config):
        params["interruption_delay"] = config.interruption_delay_ms
    else:
        params["format_turns"] = config.format_turns
        params["end_of_turn_confidence_threshold"] = config.end_of_turn_confidence
    try:
        return RealTimeParameters.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first.get("loc", ())) or "params"
        raise ConfigError(f"stt.{key}", str(first.get("msg")), first.get("input")) from None
