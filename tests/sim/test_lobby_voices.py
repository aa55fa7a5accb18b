"""The lobby's voices are the voices it claims (issue 14).

espeak-ng 1.51 silently ignores a variant after "en-gb": "en-gb+f2" and "en-gb+m3" render
plain en-gb, so a lobby that listed them had four distinct voices, not six (and one
female one, not two). British variants are spelled "en+...".
"""

from __future__ import annotations

import numpy as np
import pytest

from agentd.sim.lobby import BYSTANDER_VOICES, RATE, VISITOR_VOICES
from agentd.sim.speech import render_speech, tools_available

pytestmark = pytest.mark.skipif(not tools_available(), reason="espeak-ng and sox are needed")


def same_voice(a: str, b: str) -> bool:
    """The same audio but for sox's dither (a few LSB when it resamples espeak's 22 kHz)."""
    x, y = (np.frombuffer(render_speech("Okay Nabu", RATE, v), dtype="<i2") for v in (a, b))
    return len(x) == len(y) and int(np.abs(x.astype(np.int32) - y).max()) <= 8


@pytest.mark.parametrize("voices", [VISITOR_VOICES, BYSTANDER_VOICES])
def test_every_lobby_voice_sounds_different(voices: tuple[str, ...]) -> None:
    for i, a in enumerate(voices):
        for b in voices[i + 1 :]:
            assert not same_voice(a, b), (a, b)


def test_espeak_ignores_a_variant_after_en_gb() -> None:
    """Why the lobby spells British variants "en+f2": the quirk the old list fell into."""
    assert same_voice("en-gb+f2", "en-gb") and same_voice("en-gb+m3", "en-gb")
    assert not same_voice("en+f2", "en") and not same_voice("en+m3", "en")
