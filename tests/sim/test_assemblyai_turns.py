"""The emulator's transcript at an end of turn: what was said, no more and no less.

A fast talker's segment ("Can you book me", 4 words in 700 ms: under the emulator's
200 ms per word) ended by a pause is transcribed whole - a real STT transcribes all the
audio it was sent; only an end of turn in the middle of the segment's speech cuts it.
"""

from __future__ import annotations

from agentd.sim.assemblyai_turns import Endpointer, TurnParams

RATE = 22050  # not a webrtcvad rate: the endpointer judges voice by energy alone here
FRAME = RATE * 10 // 1000 * 2
LOUD = (b"\x00\x40" + b"\x00\xc0") * (FRAME // 4)  # a loud square wave, 10 ms
QUIET = b"\x00\x00" * (FRAME // 2)


def endpointer() -> Endpointer:
    ep = Endpointer(
        RATE, TurnParams.from_query({"max_turn_silence": "3000"}),
        confidence=1.0, partial_interval_ms=500,
    )  # fmt: skip
    ep.segments = ["Can you book me", "a taxi to the station."]
    ep.segmented = True
    return ep


def feed(ep: Endpointer, voiced_ms: int, quiet_ms: int) -> None:
    ep.feed(LOUD * (voiced_ms // 10) + QUIET * (quiet_ms // 10))


def test_a_fast_segment_ended_by_a_pause_is_transcribed_whole() -> None:
    ep = endpointer()
    feed(ep, 700, 300)
    assert ep.speaking
    assert ep.heard(end=True) == ("Can you book me", ["a taxi to the station."])


def test_an_end_of_turn_mid_speech_cuts_the_segment_where_the_speech_got_to() -> None:
    ep = endpointer()
    feed(ep, 700, 0)
    text, rest = ep.heard(end=True)
    assert text == "Can you"
    assert rest == ["book me", "a taxi to the station."]


def test_a_partial_at_a_short_pause_never_shows_an_unfinished_segment_whole() -> None:
    ep = endpointer()
    feed(ep, 700, 100)
    text, _ = ep.heard(end=False)
    assert text != "Can you book me"


def test_the_emulator_serves_as_u3_every_model_the_daemon_treats_as_u3() -> None:
    """Both follow the SDK's SpeechModel; a model one side took for Universal-Streaming
    (unformatted finals, then a formatted copy) would make the daemon wait for a copy
    that never comes, or take an unformatted final, in every simulated run."""
    from assemblyai.streaming.v3 import SpeechModel

    from agentd.sim.assemblyai_turns import U3_MODELS as SERVED_AS_U3
    from agentd.stt.model_family import U3_MODELS as TREATED_AS_U3

    assert SERVED_AS_U3 == TREATED_AS_U3
    assert TREATED_AS_U3.issubset(m.value for m in SpeechModel)
