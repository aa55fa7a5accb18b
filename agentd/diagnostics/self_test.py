"""The audio self-test: play a sweep, record the room, report and recommend.

With a visitor's level (spoken when `agentd test-hardware` asks, or given) it also
calibrates the near-field gate (agentd.diagnostics.near_field_check); with a mic array
it records the mics too, for the gate's channel agreement (agreement_check). One implementation
for `agentd test-hardware` (devices opened by the CLI) and MQTT `cmd/self_test` (the
running kiosk's devices, mic taken from the conversation for the test's two seconds).
`DeviceProbe` plays and records on any `PlaybackDevice` and any source of mic chunks;
`run_self_test` analyses and recommends; `SelfTestService` is the daemon's side: refusal
while a visitor is talking, one test at a time, the last result kept for `health` and
written to the journal.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.ports import PlaybackDevice
from agentd.config import Config
from agentd.diagnostics import probe as p
from agentd.diagnostics.near_field_check import NearFieldCheck, check_near_field, near_field_advice
from agentd.errors import CommandError
from agentd.events import AgentState
from agentd.logs import fields

log = logging.getLogger("agentd.diagnostics")

TIMEOUT_S = 10.0  # the bound on one self-test, devices included
SETTLE_MS = 60.0  # after the last echo may arrive: one period or two of capture buffering
BUSY_STATES = (AgentState.LISTENING, AgentState.THINKING, AgentState.SPEAKING)
LOUD_NOISE_DBFS = -40.0  # a quiet lobby is -60..-50 dBFS on a kiosk mic; -40 is a busy one
DEAD_MIC_DBFS = -95.0  # 16-bit dither alone is ~-101 dBFS: below this the mic sends zeros
CLIP_PERCENT = 0.1  # more than 1 sample in 1000 at full scale is audible distortion
STRONG_ECHO_DB = -3.0  # echo within 3 dB of what was played: speaker next to the mic
LONG_DELAY_MS = 250.0  # over this, barge-in replays and the echo model's window strain
MAX_AUDIO_FACTOR = 4  # more audio than 4 x the test's length: the device is not paced

Prompt = Callable[[], None]  # "say a sentence at the kiosk now"
OnChunk = Callable[[AudioChunk], None]
Attach = Callable[[OnChunk], Callable[[], None]]  # start delivering mic chunks; -> detach


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One thing to change, and the config key that changes it."""

    key: str
    advice: str


@dataclass(frozen=True, slots=True)
class SelfTestReport:
    """The result: the measurement (None if the test could not run) and advice."""

    ok: bool
    at_unix_s: float
    duration_ms: float
    measurement: p.Measurement | None
    recommendations: tuple[Recommendation, ...]
    error: str = ""
    near_field: NearFieldCheck | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "at_unix_s": round(self.at_unix_s, 1),
            "duration_ms": round(self.duration_ms),
            **(asdict(self.measurement) if self.measurement is not None else {}),
            "recommendations": [asdict(r) for r in self.recommendations],
            "near_field": self.near_field.to_dict() if self.near_field is not None else None,
            **({"error": self.error} if self.error else {}),
        }

    def summary(self) -> dict[str, object]:
        """What `health` carries: the numbers Home Assistant's sensors show."""
        m, near = self.measurement, self.near_field
        agreement = near.agreement if near is not None else None
        return {
            "ok": self.ok,
            "at_unix_s": round(self.at_unix_s, 1),
            "echo_delay_ms": m.echo_delay_ms if m else None,
            "echo_coupling_db": m.echo_coupling_db if m else None,
            "noise_floor_dbfs": m.noise_floor_dbfs if m else None,
            "clipped_percent": m.clipped_percent if m else None,
            "recommendations": len(self.recommendations),
            "near_field_threshold_dbfs": near.threshold_dbfs if near else None,
            "near_field_margin_db": near.visitor_margin_db if near else None,
            # a mic array's agreement (None for a mono capture)
            "near_field_visitor_coherence": agreement.visitor_coherence if agreement else None,
            "near_field_room_coherence": agreement.room_coherence if agreement else None,
            "near_field_coherence_margin": agreement.visitor_margin if agreement else None,
            **({"error": self.error} if self.error else {}),
        }


class DeviceProbe:
    """Plays the sweep on `playback` and records the mic chunks `attach` delivers."""

    def __init__(
        self, playback: PlaybackDevice, attach: Attach, capture: AudioFormat, gain: float = 1.0
    ) -> None:
        self.playback = playback
        self.attach = attach
        self.capture = capture
        self.gain = gain  # the playback volume the device applies (its set_volume)

    async def record(self, voice_ms: float = 0.0, prompt: Prompt | None = None) -> p.Recording:
        """Lead (noise only), the sweep, then until its last echo can have arrived; then,
        with `voice_ms`, `prompt()` and that much more audio (the operator speaking)."""
        loop = asyncio.get_running_loop()
        chunks: list[AudioChunk] = []
        lock = threading.Lock()
        progress = asyncio.Event()

        limit_ms = (p.record_ms() + voice_ms) * MAX_AUDIO_FACTOR
        received = [0.0]  # ms of audio taken, guarded by `lock`

        def on_chunk(chunk: AudioChunk) -> None:  # capture thread or loop
            with lock:
                if received[0] > limit_ms:
                    return  # an unpaced device: stop hoarding, `until` reports it
                received[0] += chunk.duration_ms
                chunks.append(chunk)
            loop.call_soon_threadsafe(progress.set)

        def covered_ms() -> float:
            with lock:
                if not chunks:
                    return 0.0
                return chunks[-1].at_ms + chunks[-1].duration_ms - chunks[0].at_ms

        async def until(done: Callable[[], bool]) -> None:
            while not done():
                with lock:
                    flooded = received[0] > limit_ms
                if flooded:
                    raise RuntimeError(
                        "the capture device delivers audio faster than real time (not paced)"
                    )
                progress.clear()
                await progress.wait()

        detach = self.attach(on_chunk)
        try:
            await until(lambda: covered_ms() >= p.LEAD_MS)
            tap = self.playback.reference
            sweep = p.chirp(tap.format.rate_hz, 0.4 * self.capture.rate_hz)
            self.playback.write(sweep)

            def echo_over() -> bool:
                if self.playback.is_playing:
                    return False
                with lock:
                    end = chunks[-1].at_ms + chunks[-1].duration_ms
                return end >= tap.last_played_ms() + p.MAX_DELAY_MS + SETTLE_MS

            await until(echo_over)
            with lock:
                mark = len(chunks)
            if voice_ms > 0:
                if prompt is not None:
                    prompt()

                def voice_over() -> bool:
                    with lock:
                        return sum(c.duration_ms for c in chunks[mark:]) >= voice_ms

                await until(voice_over)
        finally:
            detach()
        with lock:
            taken = list(chunks)
        voice = b"".join(c.pcm for c in taken[mark:])
        return p.with_array(replace(self._recording(taken[:mark], sweep), voice=voice), taken, mark)

    def _recording(self, chunks: list[AudioChunk], sweep: bytes) -> p.Recording:
        mic = b"".join(c.pcm for c in chunks)
        # The window's start on the monotonic clock: each chunk's stamp minus its offset,
        # the median over all of them (an ALSA stamp jitters by a scheduling delay).
        offsets, elapsed = [], 0.0
        for chunk in chunks:
            offsets.append(chunk.at_ms - elapsed)
            elapsed += chunk.duration_ms
        start = statistics.median(offsets)
        tap = self.playback.reference
        rate_out, rate_in = tap.format.rate_hz, self.capture.rate_hz
        count = math.ceil(len(mic) / 2 * rate_out / rate_in)
        reference = p.resample(tap.samples(start, count), rate_out, rate_in)
        ref = reference
        first = next((i for i in range(0, len(ref) - 1, 2) if ref[i] or ref[i + 1]), len(ref))
        played = p.energy(p.resample(sweep, rate_out, rate_in)) * self.gain**2
        return p.Recording(mic, reference, rate_in, first / 2 / rate_in * 1000.0, played)


async def run_self_test(
    probe: DeviceProbe,
    config: Config,
    *,
    voice_ms: float = 0.0,
    prompt: Prompt | None = None,
    visitor_level_dbfs: float | None = None,
) -> SelfTestReport:
    """Record and analyse within TIMEOUT_S (plus `voice_ms` when the operator is asked
    to speak); a device failure is a report, not a raise. Near-field advice never makes
    the test fail: it is tuning, not a broken device."""
    started, wall = time.monotonic(), time.time()
    limit_s = TIMEOUT_S + voice_ms / 1000.0
    try:
        async with asyncio.timeout(limit_s):
            recording = await probe.record(voice_ms, prompt)
        measurement = await asyncio.to_thread(
            p.analyse, recording, config.audio.vad, config.audio.capture.period_ms
        )
        near = await asyncio.to_thread(check_near_field, recording, config, visitor_level_dbfs)
    except TimeoutError:
        return _failed(wall, started, f"no result within {limit_s:.0f} s (is the mic running?)")
    except Exception as exc:  # device errors come as plain exceptions from ALSA
        return _failed(wall, started, f"{type(exc).__name__}: {exc}")
    advice = tuple(recommend(measurement, config))
    ok = not any(r.key.startswith("audio.capture") for r in advice)
    if measurement.mic_peak_dbfs > DEAD_MIC_DBFS:  # a dead mic has no room to calibrate on
        advice += tuple(Recommendation(k, a) for k, a in near_field_advice(near, config))
    duration = (time.monotonic() - started) * 1000.0
    return SelfTestReport(ok, wall, duration, measurement, advice, near_field=near)


def _failed(wall: float, started: float, error: str) -> SelfTestReport:
    return SelfTestReport(False, wall, (time.monotonic() - started) * 1000.0, None, (), error)


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


class SelfTestService:
    """The daemon's self-test: refused while a visitor talks, one at a time, remembered."""

    def __init__(
        self,
        *,
        state: Callable[[], AgentState | None],
        probe: Callable[[], DeviceProbe],
        config: Callable[[], Config],
    ) -> None:
        self._state = state
        self._probe = probe
        self._config = config
        self.running = False
        self.last: SelfTestReport | None = None

    async def run(self, visitor_level_dbfs: float | None = None) -> SelfTestReport:
        """Raises CommandError (naming why) when it must not run now. A visitor's level
        (dBFS) calibrates the near-field gate (nobody is asked to speak remotely)."""
        state = self._state()
        if state in BUSY_STATES and state is not None:
            raise CommandError(
                "busy", f"a visitor is talking (state {state.value}); try again when idle"
            )
        if self.running:
            raise CommandError("busy", "a self-test is already running")
        self.running = True
        try:
            report = await run_self_test(
                self._probe(), self._config(), visitor_level_dbfs=visitor_level_dbfs
            )
        finally:
            self.running = False
        self.last = report
        log_report(report)
        return report

    def health(self) -> dict[str, object] | None:
        return self.last.summary() if self.last is not None else None


def log_report(report: SelfTestReport) -> None:
    """One journal line, STAGE=self_test, every number a field of its own."""
    m, near = report.measurement, report.near_field
    numbers = asdict(m) if m is not None else {}
    if near is not None:
        numbers |= {
            "near_field_floor_dbfs": near.noise_floor_dbfs,
            "near_field_threshold_dbfs": near.threshold_dbfs,
            "near_field_visitor_dbfs": near.visitor_level_dbfs,
            "near_field_margin_db": near.visitor_margin_db,
            "near_field_bystander_margin_db": near.bystander_margin_db,
        }
        if (agreement := near.agreement) is not None:  # a mic array; mono: no such fields
            numbers |= {
                "near_field_room_coherence": agreement.room_coherence,
                "near_field_visitor_coherence": agreement.visitor_coherence,
                "near_field_min_coherence": agreement.min_coherence,
                "near_field_coherence_margin": agreement.visitor_margin,
                "near_field_room_coherence_margin": agreement.room_margin,
                "near_field_recommended_min_coherence": agreement.recommended_min_coherence,
            }
    keys = ",".join(r.key for r in report.recommendations)
    log.log(
        logging.INFO if report.ok else logging.WARNING,
        "self-test %s: %s",
        "ok" if report.ok else "failed",
        report.error or "; ".join(r.advice for r in report.recommendations) or "no advice",
        extra=fields(
            stage="self_test",
            self_test_ok=int(report.ok),
            recommend_keys=keys or None,
            **{k: (int(v) if isinstance(v, bool) else v) for k, v in numbers.items()},
        ),
    )
