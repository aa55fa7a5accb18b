"""How long a barge-in waits for words with u3-rt-pro's partial cadence (bench audio).

A confirmed barge-in holds the reply until STT shows words (then it is cancelled) or
`barge_in.resume_after_false_s` passes (then it resumes). U3 Pro sends no word-by-word
partials: the first words come in ONE early partial after `interruption_delay` + ~250 ms
of continuous speech, or at a pause. This runs the daemon's real STT link
(agentd.stt.assemblyai) against the u3-rt-pro emulator the way a barge-in feeds it -
the onset replayed at once when the detector fires, then live 20 ms periods - and
times the first TranscriptPartial from the speech onset.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

from agentd.audio import dsp
from agentd.config.sections_stt import SttConfig
from agentd.events import TranscriptPartial

RATE_HZ = 16000
PERIOD_MS = 20  # the capture side delivers 20 ms periods
DETECT_MS = 100  # the barge-in detector's reaction target (bench audio p95)
ONSET_DB = -42.0  # the emulator's energy floor: where its speech starts
LINES = (
    "Sorry, wait, I wanted to ask about the parking.",
    "Actually I need the second floor instead.",
    "No, I meant the meeting with Anna tomorrow.",
)
KEY = "confirm-key"


def _onset_bytes(pcm: bytes) -> int:
    """Offset of the first 10 ms frame above the energy floor (espeak's lead-in skipped)."""
    frame = RATE_HZ // 100 * 2
    for i in range(0, len(pcm) - frame, frame):
        mean_sq = dsp.mean_square(pcm[i : i + frame])
        if 10 * math.log10(mean_sq / 32768.0**2 + 1e-12) >= ONSET_DB:
            return i
    return 0


async def confirmation_ms(text: str, config: SttConfig | None = None) -> float:
    """Speech onset -> first TranscriptPartial through the real link, u3-rt-pro emulator."""
    from agentd.sim.assemblyai_server import AssemblyAiEmulator
    from agentd.sim.speech import render_speech
    from agentd.stt.assemblyai import AssemblyAiStt

    pcm = render_speech(text, RATE_HZ)
    pcm = pcm[_onset_bytes(pcm) :]
    emu = AssemblyAiEmulator(transcripts=[text], api_key=KEY)
    await emu.start()
    words = asyncio.Event()
    first_at: list[float] = []

    def on_event(event: object) -> None:
        if isinstance(event, TranscriptPartial) and event.text.strip() and not first_at:
            first_at.append(time.monotonic())
            words.set()

    base = config or SttConfig()
    cfg = dataclasses.replace(base, api_host=emu.url, speech_model="u3-rt-pro")
    stt = AssemblyAiStt(cfg, KEY, RATE_HZ, on_event)
    await stt.start()
    period = RATE_HZ * PERIOD_MS // 1000 * 2
    detect = RATE_HZ * DETECT_MS // 1000 * 2
    try:
        onset = time.monotonic()
        await asyncio.sleep(DETECT_MS / 1000)
        stt.begin_utterance()
        stt.feed(pcm[:detect])  # the onset, replayed when the detector fires
        for i in range(detect, len(pcm), period):
            due = onset + (i + period) / 2 / RATE_HZ
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            stt.feed(pcm[i : i + period])
            if words.is_set():
                break
        stt.end_utterance()
        async with asyncio.timeout(5.0):
            await words.wait()
        return (first_at[0] - onset) * 1000
    finally:
        await stt.close()
        await emu.stop()


async def measure(config: SttConfig | None = None) -> list[float]:
    """One confirmation time per line in LINES (ms)."""
    return [await confirmation_ms(line, config) for line in LINES]
