"""The self-test's advice: what in a measurement stands out, and the config key to change.

Each `Recommendation` names one key and says what was measured and what it is set to,
so an operator can act on it from afar. The near-field gate's advice is
agentd.diagnostics.near_field_check's.
"""

from __future__ import annotations

import math

from agentd.config import Config
from agentd.diagnostics import probe as p
from agentd.diagnostics.report import Recommendation

LOUD_NOISE_DBFS = -40.0  # a quiet lobby is -60..-50 dBFS on a kiosk mic; -40 is a busy one
DEAD_MIC_DBFS = -95.0  # 16-bit dither alone is ~-101 dBFS: below this the mic sends zeros
CLIP_PERCENT = 0.1  # more than 1 sample in 1000 at full scale is audible distortion
STRONG_ECHO_DB = -3.0  # echo within 3 dB of what was played: speaker next to the mic
LONG_DELAY_MS = 250.0  # over this, barge-in replays and the echo model's window strain


def recommend(m: p.Measurement, config: Config) -> list[Recommendation]:
    """Advice naming the config key to change; empty when nothing stands out."""
    audio = config.audio
    out: list[Recommendation] = []
    if m.mic_peak_dbfs <= DEAD_MIC_DBFS:
        out.append(
            Recommendation(
                "audio.capture.channel",
                (
                    "the microphone delivers digital silence: check audio.capture.device "
                    f"({audio.capture.device!r}), audio.capture.channel ({audio.capture.channel}) "
                    "and the mixer's capture switch"
                ),
            )
        )
        return out  # nothing else is meaningful on a dead mic
    if m.clipped_percent > CLIP_PERCENT:
        out.append(
            Recommendation(
                "audio.playback.volume",
                (
                    f"{m.clipped_percent} % of mic samples clip: lower the capture gain "
                    f"(alsamixer) or, if only the agent's own voice clips, audio.playback.volume "
                    f"({audio.playback.volume})"
                ),
            )
        )
    if m.vad_gate_opened or m.noise_floor_dbfs > LOUD_NOISE_DBFS:
        out.append(
            Recommendation(
                "audio.vad.energy_margin_db",
                (
                    f"the room's noise ({m.noise_floor_dbfs} dBFS, {m.vad_voiced_percent} % of "
                    f"frames voiced{', opens the gate' if m.vad_gate_opened else ''}) may start "
                    f"turns: raise "
                    f"audio.vad.energy_margin_db ({audio.vad.energy_margin_db}) or "
                    f"audio.vad.aggressiveness ({audio.vad.aggressiveness})"
                ),
            )
        )
    out.extend(_echo_advice(m, config))
    return out


def _echo_advice(m: p.Measurement, config: Config) -> list[Recommendation]:
    barge_in, playback = config.audio.barge_in, config.audio.playback
    if not m.echo_detected:
        if barge_in.mode == "aec":
            return []  # a hardware AEC mic removes the echo: nothing heard is right
        return [
            Recommendation(
                "audio.playback.device",
                (
                    "the test sweep was not heard back: check audio.playback.device "
                    f"({playback.device!r}) and the amplifier, or whether audio.capture.channel "
                    "picks a channel the speaker does not reach"
                ),
            )
        ]
    out: list[Recommendation] = []
    coupling, delay = m.echo_coupling_db, m.echo_delay_ms
    if coupling is not None and coupling > barge_in.echo_prior_db:
        out.append(
            Recommendation(
                "audio.barge_in.echo_prior_db",
                (
                    f"the echo ({coupling} dB) is louder than audio.barge_in.echo_prior_db "
                    f"({barge_in.echo_prior_db}) assumes: set it to {math.ceil(coupling)}"
                ),
            )
        )
    if coupling is not None and coupling > STRONG_ECHO_DB:
        out.append(
            Recommendation(
                "audio.barge_in.echo_margin_db",
                (
                    f"the echo is nearly as loud as the playback ({coupling} dB): lower "
                    f"audio.playback.volume ({playback.volume}) or move the speaker away; if it "
                    f"interrupts itself raise audio.barge_in.echo_margin_db "
                    f"({barge_in.echo_margin_db})"
                ),
            )
        )
    if delay is not None and delay > LONG_DELAY_MS:
        out.append(
            Recommendation(
                "audio.playback.buffer_periods",
                (
                    f"the echo arrives {delay} ms after playback: reduce "
                    f"audio.playback.buffer_periods ({playback.buffer_periods}) or remove "
                    "resampling/AEC plugins from the PCM chain"
                ),
            )
        )
    return out
