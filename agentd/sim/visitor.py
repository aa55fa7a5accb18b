"""The simulated visitor's voice: one scenario turn rendered with its pauses, and its truth.

Each segment of the line (`agentd.sim.utterance`) is rendered by espeak-ng alone, in one
breath; between segments the pause is silence of exactly the scripted length (espeak's
own lead-in and trailing silence trimmed, so the scripted pause is the real one). A turn
with a `wav` plays that recording instead, and its pauses are measured from the audio.
The ground truth - where the voice starts, every silence inside the turn, where the
voice ends - is kept as offsets from the start of the rendered audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentd.audio import dsp
from agentd.audio.format import AudioFormat
from agentd.sim.scenario import ScenarioTurn
from agentd.sim.utterance import MIN_PAUSE_MS, parse

ONSET_DB = -45.0  # a 5 ms block above this is voice (the latency bench's definition)
BLOCK_MS = 5


def spoken(text: str) -> str:
    """Text for espeak-ng without punctuation: one segment is said in one breath (the
    pauses between segments are inserted exactly, not left to espeak's prosody)."""
    return " ".join("".join(c if c.isalnum() or c in "'" else " " for c in text).split())


@dataclass(frozen=True, slots=True)
class RenderedTurn:
    """A turn's audio and its truth (ms offsets from the start of `pcm`)."""

    pcm: bytes
    voice_start_ms: float
    voice_end_ms: float
    pauses: tuple[tuple[float, float], ...]  # (start, end) of each silence inside the turn
    mid_sentence: tuple[bool, ...]  # per pause: it falls inside a sentence


def render_turn(turn: ScenarioTurn, fmt: AudioFormat) -> RenderedTurn:
    """The visitor's audio for one turn at `fmt`'s rate, with its ground truth."""
    if turn.wav:
        return _recorded(turn.wav, fmt)
    from agentd.sim.speech import render_speech

    segments = parse(turn.visitor)
    pcm = bytearray()
    pauses: list[tuple[float, float]] = []
    mids: list[bool] = []
    start_ms = end_ms = 0.0
    for i, seg in enumerate(segments):
        speech = render_speech(spoken(seg.text), fmt.rate_hz)
        first, last = voice_bounds(speech, fmt)
        if len(segments) > 1:
            # Trim espeak's lead-in (not for the first: the turn's onset stays as rendered)
            # and its trailing silence (not for the last) so scripted pauses are exact.
            speech = speech[: fmt.bytes_for_ms(last)] if i < len(segments) - 1 else speech
            if i > 0:
                speech = speech[fmt.bytes_for_ms(first) :]
                last -= first
                first = 0.0
        offset = fmt.duration_ms(len(pcm))
        if i == 0:
            start_ms = offset + first
        elif pauses:
            pauses[-1] = (pauses[-1][0], offset + first)
        end_ms = offset + last
        pcm += speech
        if seg.pause_after_ms and i < len(segments) - 1:
            pauses.append((end_ms, 0.0))
            mids.append(not seg.ends_sentence)
            pcm += bytes(fmt.bytes_for_ms(seg.pause_after_ms))
    return RenderedTurn(bytes(pcm), start_ms, end_ms, tuple(pauses), tuple(mids))


def voice_bounds(pcm: bytes, fmt: AudioFormat) -> tuple[float, float]:
    """(first, last) ms of audio above ONSET_DB, in 5 ms blocks; (0, 0) for silence."""
    block = fmt.bytes_for_ms(BLOCK_MS)
    loud = [
        k
        for k in range(0, len(pcm) - block + 1, block)
        if dsp.energy_db(dsp.mean_square(pcm[k : k + block])) > ONSET_DB
    ]
    if not loud:
        return 0.0, 0.0
    return fmt.duration_ms(loud[0]), fmt.duration_ms(loud[-1] + block)


def measured_pauses(pcm: bytes, fmt: AudioFormat) -> tuple[tuple[float, float], ...]:
    """Silences of at least MIN_PAUSE_MS between voiced blocks (for recorded turns)."""
    block = fmt.bytes_for_ms(BLOCK_MS)
    pauses: list[tuple[float, float]] = []
    last_voice: float | None = None
    for k in range(0, len(pcm) - block + 1, block):
        if dsp.energy_db(dsp.mean_square(pcm[k : k + block])) <= ONSET_DB:
            continue
        at = fmt.duration_ms(k)
        if last_voice is not None and at - last_voice >= MIN_PAUSE_MS:
            pauses.append((last_voice, at))
        last_voice = at + BLOCK_MS
    return tuple(pauses)


def _recorded(path: str, fmt: AudioFormat) -> RenderedTurn:
    """A recorded utterance (any format sox reads), converted to mono at fmt's rate."""
    from agentd.tts.espeak import sox_to_raw

    if not Path(path).is_file():
        raise FileNotFoundError(f"scenario wav not found: {path}")
    pcm = sox_to_raw([path], b"", fmt.rate_hz, ["remix", "-"])
    start, end = voice_bounds(pcm, fmt)
    pauses = measured_pauses(pcm, fmt)
    # A recording says nothing about syntax: its pauses count as mid-sentence ones.
    return RenderedTurn(pcm, start, end, pauses, tuple(True for _ in pauses))
