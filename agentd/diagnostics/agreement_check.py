"""A mic array's channel agreement in the self-test: the room, the visitor, min_coherence.

When the capture is a mic array (chunks carry `AudioChunk.array`) the self-test records
the raw mics beside the mono mix: over its quiet lead (the room) and while the operator
says a sentence at the kiosk (the visitor). `array_agreement.band_coherence` of each is
the figure the near-field gate compares with `engagement.near_field.min_coherence` at
every onset the level passes, and `calibrate_agreement` puts the threshold half way
between them. The check reports how far the visitor is above the configured threshold
and how far the quiet room is below it: the room's tone arrives from everywhere, as a
talker's across the lobby does (its reverberant field), so it stands in for them.
Without a sentence (MQTT `cmd/self_test`, or a given level) only the room is measured.
A mono capture has no agreement check at all (None).

The visitor's coherence is measured as the gate measures it: at the onset of each of
their utterances (a voiced frame after a pause long enough to close the VAD gate), over
the window the gate would take - its ONSET_LOOKBACK_MS before the VAD gate opens, which
is `start_voiced_frames` periods into the speech. An onset is more coherent than the
sentence as a whole, because the room's reverberation has not built up yet: in the room
model a visitor at 0.7 m reads 0.77-0.89 at the onset against 0.71-0.73 over the whole
sentence, a talker at 4 m 0.15-0.25 against 0.15-0.18. One sentence is usually one onset,
one sample: it varies by about +-0.06 between sentences and voices there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from agentd.audio.array_agreement import agreement_threshold, band_coherence, deinterleave
from agentd.audio.format import AudioFormat
from agentd.audio.near_field import FRAME_MS, ONSET_LOOKBACK_MS
from agentd.config import Config
from agentd.diagnostics.probe import Recording

# A margin under this on either side is advice. In the room model (agentd/sim/room.py):
# a visitor's onset varies about +-0.06 between sentences and voices (module docstring),
# and one standing 0.3 m further back (1 m instead of 0.7 m) reads ~0.15 less; a talker
# at 4 m reads up to 0.25 at onsets where the quiet room reads 0.15. The gate's own
# re-check asks 0.1 more for the same scatter (near_field.RECHECK_MARGIN).
MIN_MARGIN = 0.1
# A quiet room this coherent is not a diffuse field. Diffuse room tone reads the mean of
# (sin(kd)/(kd))^2 over 1.5-4 kHz: 0.06-0.18 for mics 4.5-6.5 cm apart (the ReSpeaker
# boards; 0.15 and 0.09 measured in the room model for its 4-mic square and 6 cm pair).
# 0.4 or more is a steady source close to the mics (a fan, a hum, the kiosk's own
# electronics) or mics under ~3.5 cm apart (0.34 at 3.5 cm, 0.45 at 3 cm): either way a
# talker across the room reads about as coherent as one at the kiosk.
COHERENT_ROOM = 0.4
KEY = "engagement.near_field.min_coherence"


@dataclass(frozen=True, slots=True)
class AgreementCheck:
    """The array's agreement in this room; margins > 0 are good: the visitor passes the
    configured `min_coherence`, the room (the lobby's diffuse sound) does not."""

    channels: int
    min_coherence: float  # configured; 0 = the agreement check is off
    room_coherence: float | None  # None: too short, or a mic of the array is silent
    visitor_coherence: float | None  # at the sentence's onset(s); None: no sentence
    visitor_margin: float | None  # visitor_coherence - min_coherence
    room_margin: float | None  # min_coherence - room_coherence
    recommended_min_coherence: float | None  # agreement_threshold; needs the visitor
    silent_mics: tuple[int, ...] = ()  # capture channels of the array with digital silence
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_agreement(
    recording: Recording, config: Config, voiced_at_ms: tuple[float, ...] | None
) -> AgreementCheck | None:
    """The agreement check of one self-test recording; None for a mono capture.
    `voiced_at_ms`: where the sentence's voiced frames start in `voice`, in time order
    (None: no sentence heard)."""
    channels, rate = recording.array_channels, recording.rate_hz
    if channels < 2 or not recording.array:
        return None
    fmt = AudioFormat(rate, channels)
    minimum = config.engagement.near_field.min_coherence
    room_pcm = recording.array_room
    room = band_coherence(room_pcm, channels, rate)
    visitor_pcm = b"".join(
        recording.array_voice[fmt.bytes_for_ms(start) : fmt.bytes_for_ms(end)]
        for start, end in onset_windows(voiced_at_ms or (), config)
    )
    visitor = band_coherence(visitor_pcm, channels, rate) if visitor_pcm else None
    recommended = None
    if room is not None and visitor is not None:
        recommended = agreement_threshold(visitor, room)
    silent = _silent_mics(recording.array + recording.array_voice, channels, config)
    on = minimum > 0
    return AgreementCheck(
        channels=channels,
        min_coherence=minimum,
        room_coherence=_rounded(room),
        visitor_coherence=_rounded(visitor),
        visitor_margin=_rounded(visitor - minimum) if on and visitor is not None else None,
        room_margin=_rounded(minimum - room) if on and room is not None else None,
        recommended_min_coherence=recommended,
        silent_mics=silent,
        note=_note(room, visitor, voiced_at_ms is not None, silent, on),
    )


def onset_windows(voiced_at_ms: tuple[float, ...], config: Config) -> list[tuple[float, float]]:
    """(start, end) in ms of the windows the near-field gate would judge the agreement on:
    one per utterance (a voiced frame after a pause that closes the VAD gate), ending
    where the VAD gate opens (start_voiced_frames periods in) and starting
    ONSET_LOOKBACK_MS before that (the gate's lookback)."""
    vad, period = config.audio.vad, config.audio.capture.period_ms
    pause = vad.stop_unvoiced_frames * period + vad.hangover_ms  # closes the VAD gate
    opens = vad.start_voiced_frames * period
    windows, last = [], -math.inf
    for at in voiced_at_ms:
        if at - (last + FRAME_MS) >= pause:  # the unvoiced run since the last frame
            windows.append((max(0.0, at + opens - ONSET_LOOKBACK_MS), at + opens))
        last = at
    return windows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _silent_mics(pcm: bytes, channels: int, config: Config) -> tuple[int, ...]:
    """The capture channels (audio.capture numbering) of the array's mics that sent only
    zeros: a wrong array_channels entry or a dead capsule; coherence needs every mic."""
    mics = config.audio.capture.mic_channels() or tuple(range(channels))
    x = deinterleave(pcm, channels)
    if x.shape[1] == 0:
        return ()
    dead = np.flatnonzero(~np.any(x != 0.0, axis=1))
    return tuple(mics[i] if i < len(mics) else int(i) for i in dead)


def _note(
    room: float | None, visitor: float | None, asked: bool, silent: tuple[int, ...], on: bool
) -> str:
    if silent:
        return f"array mic(s) on capture channel(s) {list(silent)} silent: no coherence"
    if room is None:
        return "the room's array recording is too short for a coherence"
    parts = [] if on else ["agreement check off (min_coherence = 0)"]
    if visitor is None:
        parts.append(
            "no sentence heard: min_coherence not calibrated"
            if asked
            else "room only: say a sentence when agentd test-hardware asks to calibrate "
            "min_coherence"
        )
    return "; ".join(parts)


def agreement_advice(check: AgreementCheck | None, config: Config) -> list[tuple[str, str]]:
    """(config key, advice) for the array's agreement; none for a mono capture, while the
    gate or its agreement check is off, or when both margins are MIN_MARGIN or more."""
    if check is None:
        return []
    if check.silent_mics:
        return [(
            "audio.capture.array_channels",
            f"capture channel(s) {list(check.silent_mics)} of the mic array deliver digital "
            "silence, so the channels' agreement is never measured and the near-field gate "
            "falls back to the level alone: check audio.capture.array_channels "
            f"({list(config.audio.capture.array_channels)}) and the array's wiring",
        )]  # fmt: skip
    room, visitor = check.room_coherence, check.visitor_coherence
    if not config.engagement.near_field.enabled or check.min_coherence <= 0 or room is None:
        return []
    if room >= COHERENT_ROOM:
        return [_coherent_room(room, visitor)]
    if visitor is not None and visitor - room < 2 * MIN_MARGIN:
        return [(
            KEY,
            f"a visitor at the kiosk reads coherence {visitor}, hardly more than the quiet "
            f"room ({room}): the channels' agreement cannot tell the kiosk from the lobby "
            "here (a live room, or the speaker stood too far away); "
            f"{_set_to(check)} so visitors are not lost, and add wake_word or presence to "
            "engagement.modes",
        )]  # fmt: skip
    return _margin_advice(check)


def _set_to(check: AgreementCheck) -> str:
    now = f"(now {check.min_coherence})"
    if check.recommended_min_coherence is None:
        return f"calibrate {KEY} {now}: run agentd test-hardware and say a sentence when asked"
    return f"set {KEY} to {check.recommended_min_coherence} {now}"


def _coherent_room(room: float, visitor: float | None) -> tuple[str, str]:
    heard = f"; a visitor at the kiosk {visitor}" if visitor is not None else ""
    return (
        "engagement.modes",
        f"the quiet room itself is coherent at the mic array ({room}{heard}; a diffuse room "
        "reads under 0.2 with mics 4.5 cm or more apart): a steady sound close to the mics "
        "(a fan, a hum, the kiosk's own electronics), or mics too close together. The "
        f"channels' agreement ({KEY}) cannot tell a talker across the room from one at the "
        "kiosk here: the check is of no use. Silence or move the source and run the test "
        "again, or add wake_word or presence to engagement.modes",
    )


def _margin_advice(check: AgreementCheck) -> list[tuple[str, str]]:
    """A thin margin on the visitor's side (visitors lost) or the room's (lobby passes)."""
    visitor, room, minimum = check.visitor_coherence, check.room_coherence, check.min_coherence
    above, below = check.visitor_margin, check.room_margin
    if above is not None and above < MIN_MARGIN:
        if above < 0:
            why = (
                f"a visitor at the kiosk reads coherence {visitor}, under {KEY} ({minimum}): "
                "the kiosk would ignore its visitors"
            )
        else:
            why = (
                f"a visitor at the kiosk reads coherence {visitor}, only {above} above {KEY} "
                f"({minimum}): a visitor standing a little further back is ignored"
            )
        return [(KEY, f"{why}; {_set_to(check)}")]
    if below is not None and below < MIN_MARGIN:
        where = f"only {below} under" if below >= 0 else f"{-below} above"
        return [(
            KEY,
            f"the quiet room reads coherence {room}, {where} {KEY} ({minimum}): a talker "
            f"across the lobby may pass as a visitor; {_set_to(check)}",
        )]  # fmt: skip
    return []
