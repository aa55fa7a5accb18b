"""Near-field calibration in the audio self-test: room, visitor, and the gate's margins.

The self-test already records the quiet room before its sweep. With a visitor's level -
measured while the operator says a sentence at the kiosk when `agentd test-hardware`
asks, or given by the operator (`--visitor-level-dbfs`, MQTT `cmd/self_test
{"visitor_level_dbfs": ...}`) - `near_field.thresholds` turns the two into the
`engagement.near_field.*` values a calibrated kiosk would use, and the check reports how
the configured gate stands: how far a visitor at 1 m is above its threshold, and how
far the nearest bystander (3 m, NEAREST_BYSTANDER_REL_DB) is below it.

Levels are those of `near_field.calibrate`: the visitor's 90th percentile of 20 ms frame
levels (of the frames webrtcvad calls voiced: the pauses of a spoken sentence are not
the visitor), the room's median. The gate's own floor is a tracked minimum, a little
below the median in steady noise, so the threshold reported here errs on the high side.

With a mic array the self-test records its mics too, and the channels' agreement is
checked and calibrated beside the level (agentd.diagnostics.agreement_check).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from agentd.audio import dsp
from agentd.audio.format import AudioFormat
from agentd.audio.near_field import (
    FRAME_MS,
    frame_levels,
    gate_threshold_dbfs,
    loud_level,
    thresholds,
)
from agentd.config import Config
from agentd.config.sections_audio import VadConfig
from agentd.diagnostics.agreement_check import AgreementCheck, agreement_advice, check_agreement
from agentd.diagnostics.probe import Recording

VOICE_MS = 5000.0  # "say a sentence at the kiosk now": one sentence is 2-4 s, plus reaction
MIN_VOICED_MS = 600.0  # less voiced audio than this is a cough, not a sentence
# A visitor's loud-syllable level varies about +-3 dB between sentences and voices
# (tests/audio/test_near_field.py passes visitors at -3..+3 dB): a margin under this on
# either side is advice.
MIN_MARGIN_DB = 3.0
NEAREST_BYSTANDER_REL_DB = -15.0  # issue 14: 3 m away, -15 dB on a visitor at 1 m
VOICED_ABOVE_FLOOR_DB = 6.0  # a frame webrtcvad calls voiced must also stand above the room


@dataclass(frozen=True, slots=True)
class NearFieldCheck:
    """The room, the visitor (if known), the configured gate's margins and the advice's
    values. Margins > 0 are good: the visitor passes, the bystander does not."""

    enabled: bool
    noise_floor_dbfs: float
    threshold_dbfs: float  # the configured gate's threshold in this room
    visitor_level_dbfs: float | None
    visitor_source: str  # "spoken", "provided", or "" (not calibrated)
    voiced_ms: float | None  # spoken: how much voiced audio was heard
    visitor_margin_db: float | None  # visitor level - threshold
    bystander_margin_db: float | None  # threshold - (visitor + NEAREST_BYSTANDER_REL_DB)
    recommended_min_level_dbfs: float | None
    recommended_min_snr_db: float | None
    note: str = ""
    agreement: AgreementCheck | None = None  # a mic array's channels; None: a mono capture

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_near_field(
    recording: Recording, config: Config, visitor_level_dbfs: float | None = None
) -> NearFieldCheck:
    """The near-field check of one self-test recording (its room, and its voice if any)."""
    fmt = AudioFormat(recording.rate_hz)
    near = config.engagement.near_field
    room = frame_levels(recording.room, fmt) or frame_levels(recording.mic, fmt)[:1]
    floor = room[len(room) // 2] if room else dsp.SILENCE_DB
    threshold = gate_threshold_dbfs(near, floor)
    voiced_ms: float | None = None
    voiced_at: tuple[float, ...] | None = None  # the sentence's voiced frames (ms in voice)
    source = "provided" if visitor_level_dbfs is not None else ""
    if visitor_level_dbfs is None and recording.voice:
        frames = voiced_frames(recording.voice, fmt, config.audio.vad, floor)
        levels = sorted(level for _, level in frames)
        voiced_ms = float(len(levels) * FRAME_MS)
        if voiced_ms >= MIN_VOICED_MS:
            visitor_level_dbfs, source = loud_level(levels), "spoken"
            voiced_at = tuple(float(i * FRAME_MS) for i, _ in frames)
    check = NearFieldCheck(
        enabled=near.enabled,
        noise_floor_dbfs=round(floor, 1),
        threshold_dbfs=round(threshold, 1),
        visitor_level_dbfs=None,
        visitor_source="",
        voiced_ms=voiced_ms,
        visitor_margin_db=None,
        bystander_margin_db=None,
        recommended_min_level_dbfs=None,
        recommended_min_snr_db=None,
        agreement=check_agreement(recording, config, voiced_at),
    )
    if visitor_level_dbfs is None:
        note = (
            f"no sentence heard ({voiced_ms:.0f} ms voiced): near-field not calibrated"
            if voiced_ms is not None
            else "near-field not calibrated: say a sentence when agentd test-hardware asks, "
            "or give the visitor's level (visitor_level_dbfs)"
        )
        return replace(check, note=note)
    calibrated = thresholds(visitor_level_dbfs, floor)
    bystander = visitor_level_dbfs + NEAREST_BYSTANDER_REL_DB
    return replace(
        check,
        visitor_level_dbfs=round(visitor_level_dbfs, 1),
        visitor_source=source,
        visitor_margin_db=round(visitor_level_dbfs - threshold, 1),
        bystander_margin_db=round(threshold - bystander, 1),
        recommended_min_level_dbfs=calibrated.min_level_dbfs,
        recommended_min_snr_db=calibrated.min_snr_db,
    )


def voiced_frames(
    pcm: bytes, fmt: AudioFormat, vad: VadConfig, floor_dbfs: float
) -> list[tuple[int, float]]:
    """(index, dBFS) of the FRAME_MS frames webrtcvad calls speech and that stand above
    the room (a sentence's pauses, and noise webrtcvad misjudges, are not the visitor),
    in time order (frame i starts at i * FRAME_MS)."""
    import webrtcvad

    size = fmt.bytes_for_ms(FRAME_MS)
    detector = webrtcvad.Vad(vad.aggressiveness)
    out: list[tuple[int, float]] = []
    for i in range(0, len(pcm) - size + 1, size):
        frame = pcm[i : i + size]
        level = dsp.energy_db(dsp.mean_square(frame))
        if level >= floor_dbfs + VOICED_ABOVE_FLOOR_DB and detector.is_speech(frame, fmt.rate_hz):
            out.append((i // size, level))
    return out


def near_field_advice(check: NearFieldCheck, config: Config) -> list[tuple[str, str]]:
    """(config key, advice) for the near-field gate: its level, then a mic array's
    agreement; none while it is off, uncalibrated, or both have their margins."""
    return level_advice(check, config) + agreement_advice(check.agreement, config)


def level_advice(check: NearFieldCheck, config: Config) -> list[tuple[str, str]]:
    """(config key, advice) for the gate's level; none while it is off or uncalibrated."""
    near = config.engagement.near_field
    visitor, level = check.visitor_level_dbfs, check.recommended_min_level_dbfs
    snr, above, below = (
        check.recommended_min_snr_db,
        check.visitor_margin_db,
        check.bystander_margin_db,
    )
    if not check.enabled or None in (visitor, level, snr, above, below):
        return []  # off, or not calibrated: nothing to compare with
    threshold = f"the gate's threshold ({check.threshold_dbfs} dBFS)"
    if above is not None and above < MIN_MARGIN_DB:
        where = f"only {above} dB above" if above >= 0 else f"{-above} dB under"
        why = (
            f"a visitor at 1 m ({visitor} dBFS, {check.visitor_source}) is {where} "
            f"{threshold}: visitors who speak softly are ignored"
        )
    elif below is not None and below < MIN_MARGIN_DB:
        bystander = round((visitor or 0.0) + NEAREST_BYSTANDER_REL_DB, 1)
        where = f"only {below} dB under" if below >= 0 else f"{-below} dB above"
        why = (
            f"a bystander 3 m away (about {bystander} dBFS) is {where} {threshold}: "
            "lobby chatter may start turns"
        )
    else:
        return []
    out: list[tuple[str, str]] = []
    level, snr = level or 0.0, snr or 0.0  # not None: checked above
    if abs(near.min_level_dbfs - level) > 0.5:
        out.append((
            "engagement.near_field.min_level_dbfs",
            f"{why}; set engagement.near_field.min_level_dbfs to {level} "
            f"(now {near.min_level_dbfs})",
        ))  # fmt: skip
    if check.noise_floor_dbfs + near.min_snr_db > level and abs(near.min_snr_db - snr) > 0.5:
        out.append((
            "engagement.near_field.min_snr_db",
            f"{why}; the room's noise ({check.noise_floor_dbfs} dBFS) lifts the threshold: "
            f"set engagement.near_field.min_snr_db to {snr} (now {near.min_snr_db})",
        ))  # fmt: skip
    if not out:  # already calibrated: the room itself is too loud for the level to decide
        out.append((
            "engagement.modes",
            f"{why}, with calibrated thresholds: the level cannot tell them apart in this "
            "room; add wake_word or presence to engagement.modes",
        ))  # fmt: skip
    return out
