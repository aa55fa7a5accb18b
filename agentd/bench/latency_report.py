"""Measurement and report for `agentd bench latency` (definitions: agentd.bench.latency).

Ground truth comes from the simulated devices (SimMic spans + the rendered speech,
SimSpeaker first-audio periods) and the emulators' own records and settings; the
daemon's TurnRecord marks are used only to split the overhead into stages.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from agentd.sim.stack import ServiceProfile, StackRecords

VOICE_BLOCK_MS = 5  # resolution of the true voice end
TARGETS = (  # (name, limit ms or ratio) from issue 3, item 8
    ("overhead p50 ms", 20.0),
    ("overhead p95 ms", 40.0),
    ("voice-to-voice p50 ms", 900.0),
    ("streamed/seed voice-to-voice", 0.5),
)
STAGES = ("to_stt", "stt_delivery", "to_llm", "llm", "tts", "playback")
STAGE_HELP = {
    "to_stt": "true voice end -> STT final sent, minus stt_final_ms (capture period, "
    "gate, 50 ms STT chunks, websocket; the emulator's VAD decides the end it hears)",
    "stt_delivery": "final sent -> TurnFinalized on the daemon loop (SDK, loop)",
    "to_llm": "TurnFinalized -> LLM request started (conversation, history)",
    "llm": "LLM request -> first TTS request, minus TTFT and first-clause streaming "
    "(HTTP, SSE parsing, splitter)",
    "tts": "TTS request -> first audio byte, minus TTFB (SDK, HTTP)",
    "playback": "first byte -> first sample written to the speaker, minus emulator "
    "pacing (queue, wait for the next playback period)",
}

# The llm and tts stages split at the emulators' own timestamps (diagnostics only).
SERVICE_SPLIT = ("llm_send", "llm_slack", "llm_receive", "tts_send", "tts_slack", "tts_receive")


@dataclass
class TurnRecord:
    """One reply pipeline the bench's factory built, with the strategy it used."""

    strategy: str
    pipeline: Any


@dataclass
class Sample:
    strategy: str
    visitor: str = ""
    voice_to_voice_ms: float = math.nan
    service_ms: float = math.nan
    overhead_ms: float = math.nan
    daemon_voice_to_voice_ms: float | None = None
    gate_end_vs_true_ms: float | None = None  # the daemon's idea of the voice end - truth
    service: dict[str, float] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    reply_chars: int = 0  # the model's whole reply, as sanitised for TTS
    tts_chars: int = 0  # sent to TTS by this reply (the seed sends it all at once)
    stages: dict[str, float] = field(default_factory=dict)
    error: str = ""


def tts_texts(replies: list[str], min_clause_chars: int) -> list[str]:
    """Every text the TTS emulator will be asked for (clauses, whole replies), to pre-render."""
    from agentd.tts.speakable import speakable
    from agentd.tts.splitter import ClauseSplitter

    texts: set[str] = set()
    for reply in replies:
        splitter = ClauseSplitter(min_clause_chars)
        texts.update(speakable(c) for c in [*splitter.feed(reply), *splitter.flush()])
        texts.add(speakable(reply))
    return sorted(texts)


def true_voice_end_ms(span: Any, speech: bytes, rate_hz: int) -> float:
    """Mic-clock time of the last 5 ms block of `speech` above the onset threshold."""
    from agentd.audio import dsp
    from agentd.sim.mic import ONSET_DB

    block = rate_hz * VOICE_BLOCK_MS // 1000 * 2
    start_ms = span.end_ms - len(speech) / 2 / rate_hz * 1000
    for end in range(len(speech) - len(speech) % block, 0, -block):
        if dsp.energy_db(dsp.mean_square(speech[end - block : end])) > ONSET_DB:
            return float(start_ms + end / 2 / rate_hz * 1000)
    return float(span.start_ms)


def clause_event(text: str, splitter: Any, *, streamed: bool) -> int:
    """Index of the SSE event that lets the reply start: the first clause, or [DONE]."""
    from agentd.sim.openai_server import split_tokens

    pieces = split_tokens(text)
    if streamed:
        for index, piece in enumerate(pieces, 1):
            if splitter.feed(piece):  # SSE event `index` carries this piece
                return index
    # Released only by the end of the stream: pieces, finish, usage chunk, then [DONE].
    return len(pieces) + 3


def llm_service_ms(text: str, profile: ServiceProfile, splitter: Any, *, streamed: bool) -> float:
    """The LLM emulator's waits until the first clause can be released (or [DONE]).

    Event 0 (the role) goes out at once, event 1 after TTFT, each further one
    `llm_chunk_ms` later (the emulator paces on deadlines from the request's arrival).
    """
    index = clause_event(text, splitter, streamed=streamed)
    return profile.llm_ttft_ms + (index - 1) * profile.llm_chunk_ms


def tts_service_ms(emulated: StackRecords, text: str, rate_hz: int, *, streamed: bool) -> float:
    """The TTS emulator's waits until the first chunk (streamed) or the last (seed)."""
    if streamed:
        return float(emulated.tts_ttfb_ms)
    from agentd.sim.speech import render_speech

    size = rate_hz * emulated.tts_chunk_ms // 1000 * 2
    chunks = math.ceil(len(render_speech(text, rate_hz, emulated.tts_voice)) / size)
    step_ms = emulated.tts_chunk_delay_ms + emulated.tts_pace * emulated.tts_chunk_ms
    return float(emulated.tts_ttfb_ms + max(0, chunks - 1) * step_ms)


def measure(
    records: list[TurnRecord], kiosk: Any, profile: ServiceProfile, emulated: StackRecords
) -> list[Sample]:
    """One Sample per streamed/seed reply (warm-up skipped); problems go to Sample.error."""
    finals = _emulator_marks(emulated, "final")
    endpoints = _emulator_marks(emulated, "endpoint")
    metrics = {m.turn_id: m for m in kiosk.observed.records}
    samples = []
    for record in records:
        if record.strategy not in ("streamed", "seed"):
            continue
        sample = Sample(record.strategy)
        try:
            _measure_one(
                sample, record, kiosk, emulated, finals=finals, endpoints=endpoints, profile=profile
            )
        except (LookupError, ValueError, TypeError) as exc:
            sample.error = f"{type(exc).__name__}: {exc}"
        clock = record.pipeline.record
        if clock.turn_id in metrics:
            sample.daemon_voice_to_voice_ms = metrics[clock.turn_id].voice_to_voice_ms
        samples.append(sample)
    return samples


def _emulator_marks(emulated: StackRecords, wanted: str) -> list[float]:
    """When the STT emulator recorded `wanted` events (ms, the now_ms clock)."""
    return sorted(
        at * 1000
        for session in emulated.stt_sessions
        for at, kind, _ in session.events
        if kind == wanted
    )


def _measure_one(
    sample: Sample,
    record: TurnRecord,
    kiosk: Any,
    emulated: StackRecords,
    *,
    finals: list[float],
    endpoints: list[float],
    profile: ServiceProfile,
) -> None:
    from agentd.conversation.turn_record import decide_outcome
    from agentd.sim.mic import spoken
    from agentd.sim.speech import render_speech
    from agentd.tts.speakable import speakable

    mic, speaker = kiosk.mic, kiosk.speaker

    clock = record.pipeline.record
    marks = ("final_ms", "llm_request_ms", "tts_request_ms", "tts_first_byte_ms")
    missing = [m for m in marks if getattr(clock, m) is None]
    if missing:
        raise ValueError(
            f"reply never reached {', '.join(missing)} (outcome {decide_outcome(clock).value})"
        )
    span = max((s for s in mic.spans if s.start_ms < clock.final_ms), key=lambda s: s.start_ms)
    sample.visitor = span.text
    rate_in = mic.format.rate_hz
    voice_end = true_voice_end_ms(span, render_speech(spoken(span.text), rate_in), rate_in)
    # the instant the reply's first sample was written to the (idle) simulated device
    first_sample = min(x for x in speaker.first_audio_ms if x >= clock.llm_request_ms)
    final_sent = max(f for f in finals if f <= clock.final_ms)
    endpoint = max(e for e in endpoints if e <= final_sent)
    streamed = record.strategy == "streamed"
    parts = kiosk.conversation.parts
    text = record.pipeline.result.full_text
    service = {
        "stt": profile.stt_final_ms,
        "llm": llm_service_ms(text, profile, parts.new_splitter(), streamed=streamed),
        "tts": tts_service_ms(emulated, speakable(text), speaker.format.rate_hz, streamed=streamed),
    }
    sample.service = service
    sample.reply_chars = len(speakable(text))
    sample.tts_chars = clock.tts_characters
    sample.service_ms = sum(service.values())
    sample.voice_to_voice_ms = first_sample - voice_end
    sample.overhead_ms = sample.voice_to_voice_ms - sample.service_ms
    if clock.speech_end_ms is not None:
        sample.gate_end_vs_true_ms = clock.speech_end_ms - voice_end
    # Diagnostics: when the emulator endpointed (ForceEndpoint from the daemon's gate, or
    # its own silence timer), and how long it then still held the final back.
    sample.marks = {
        "stt_endpoint_after_voice_end": endpoint - voice_end,
        "stt_final_after_endpoint": final_sent - endpoint,
    }
    _split_service_stages(sample, record, kiosk, emulated, text=text, streamed=streamed)
    sample.stages = {
        "to_stt": final_sent - voice_end - service["stt"],
        "stt_delivery": clock.final_ms - final_sent,
        "to_llm": clock.llm_request_ms - clock.final_ms,
        "llm": clock.tts_request_ms - clock.llm_request_ms - service["llm"],
        "tts": clock.tts_first_byte_ms - clock.tts_request_ms - profile.tts_ttfb_ms,
        "playback": first_sample - clock.tts_first_byte_ms - (service["tts"] - profile.tts_ttfb_ms),
    }


def _split_service_stages(
    sample: Sample,
    record: TurnRecord,
    kiosk: Any,
    emulated: StackRecords,
    *,
    text: str,
    streamed: bool,
) -> None:
    """Diagnostics: the llm and tts stages split at the emulators' own timestamps.

    *_send = our mark -> the request arrived; *_slack = the emulator's late start of
    the deciding event against its deadline (its own cost, kept inside the stage so the
    stages still add up); *_receive = the event left the emulator -> our next mark.
    """
    clock, profile = record.pipeline.record, kiosk.profile
    parts = kiosk.conversation.parts
    llm = next(r for r in emulated.llm_requests if r.received_at * 1000 >= clock.llm_request_ms)
    index = clause_event(text, parts.new_splitter(), streamed=streamed)
    due = llm.received_at + (profile.llm_ttft_ms + (index - 1) * profile.llm_chunk_ms) / 1000
    if index < len(llm.sent_at):
        sample.marks["llm_send"] = llm.received_at * 1000 - clock.llm_request_ms
        sample.marks["llm_slack"] = (llm.sent_at[index] - due) * 1000
        sample.marks["llm_receive"] = clock.tts_request_ms - llm.sent_at[index] * 1000
    tts = next(r for r in emulated.tts_requests if r.arrived_s * 1000 >= clock.tts_request_ms)
    if tts.first_chunk_s is not None:
        sample.marks["tts_send"] = tts.arrived_s * 1000 - clock.tts_request_ms
        sample.marks["tts_slack"] = (tts.first_chunk_s - tts.arrived_s) * 1000 - profile.tts_ttfb_ms
        sample.marks["tts_receive"] = clock.tts_first_byte_ms - tts.first_chunk_s * 1000


# --- statistics and report -------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1)}


def _strategy_report(samples: list[Sample]) -> dict[str, Any]:
    good = [s for s in samples if not s.error]
    daemon = [s.daemon_voice_to_voice_ms for s in good if s.daemon_voice_to_voice_ms is not None]
    gate = [s.gate_end_vs_true_ms for s in good if s.gate_end_vs_true_ms is not None]
    return {
        "turns": len(good),
        "errors": [s.error for s in samples if s.error],
        "voice_to_voice_ms": _summary([s.voice_to_voice_ms for s in good]),
        "service_ms": _summary([s.service_ms for s in good]),
        "overhead_ms": _summary([s.overhead_ms for s in good]),
        "daemon_voice_to_voice_ms": _summary(daemon),
        "gate_end_vs_true_ms": _summary(gate),
        "stt_endpoint_after_voice_end_ms": _summary(
            [s.marks["stt_endpoint_after_voice_end"] for s in good]
        ),
        "stt_final_after_endpoint_ms": _summary(
            [s.marks["stt_final_after_endpoint"] for s in good]
        ),
        "stages_p50_ms": {k: round(percentile([s.stages[k] for s in good], 50), 1) for k in STAGES},
        "service_split_p50_ms": {
            k: round(percentile([s.marks[k] for s in good if k in s.marks], 50), 1)
            for k in SERVICE_SPLIT
        },
        "samples": [_rounded(asdict(s)) for s in samples],
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 1)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def build_report(samples: list[Sample], profile: ServiceProfile, turns: int) -> dict[str, Any]:
    streamed = _strategy_report([s for s in samples if s.strategy == "streamed"])
    seed = _strategy_report([s for s in samples if s.strategy == "seed"])
    seed_v2v = seed["voice_to_voice_ms"]["p50"]
    ratio = streamed["voice_to_voice_ms"]["p50"] / seed_v2v if seed_v2v else math.nan
    # Informational: the seed without TTS whole-synthesis time (as if tts_pace were 0).
    unpaced = [
        s.voice_to_voice_ms - (s.service["tts"] - profile.tts_ttfb_ms)
        for s in samples
        if s.strategy == "seed" and not s.error
    ]
    unpaced_p50 = percentile(unpaced, 50)
    values = (
        streamed["overhead_ms"]["p50"],
        streamed["overhead_ms"]["p95"],
        streamed["voice_to_voice_ms"]["p50"],
        round(ratio, 3),
    )
    targets = [
        {"name": name, "value": value, "limit": limit, "pass": bool(value <= limit)}
        for (name, limit), value in zip(TARGETS, values, strict=True)
    ]
    complete = streamed["turns"] == turns and seed["turns"] == turns
    return {
        "profile": asdict(profile),
        "turns_per_strategy": turns,
        "streamed": streamed,
        "seed": seed,
        "ratio_streamed_to_seed": round(ratio, 3),
        "ratio_streamed_to_unpaced_seed": round(
            streamed["voice_to_voice_ms"]["p50"] / unpaced_p50, 3
        )
        if unpaced
        else None,
        "targets": targets,
        "complete": complete,
        "pass": complete and all(t["pass"] for t in targets),
    }


def print_report(report: dict[str, Any], out: TextIO) -> None:
    p = report["profile"]
    out.write(
        f"profile: STT final {p['stt_final_ms']:.0f} ms, LLM TTFT {p['llm_ttft_ms']:.0f} ms "
        f"+ {p['llm_chunk_ms']:.0f} ms/token, TTS TTFB {p['tts_ttfb_ms']:.0f} ms "
        f"(pace {p['tts_pace']} x real time)\n\n"
    )
    out.write(f"{'(ms)':<26}{'streamed p50':>14}{'p95':>8}{'seed p50':>12}{'p95':>8}\n")
    rows = (
        ("voice-to-voice (truth)", "voice_to_voice_ms"),
        ("voice-to-voice (daemon)", "daemon_voice_to_voice_ms"),
        ("emulated service time", "service_ms"),
        ("daemon overhead", "overhead_ms"),
        ("gate voice end - truth", "gate_end_vs_true_ms"),
        ("STT endpoint - voice end", "stt_endpoint_after_voice_end_ms"),
        ("STT final - endpoint", "stt_final_after_endpoint_ms"),
    )
    st, sd = report["streamed"], report["seed"]
    for label, key in rows:
        a, b = st[key], sd[key]
        out.write(
            f"{label:<26}{a['p50']:>14.1f}{a['p95']:>8.1f}{b['p50']:>12.1f}{b['p95']:>8.1f}\n"
        )
    out.write("\noverhead by stage, p50 (ms):\n")
    for stage in STAGES:
        out.write(
            f"  {stage:<13}{st['stages_p50_ms'][stage]:>7.1f}{sd['stages_p50_ms'][stage]:>8.1f}"
            f"  {STAGE_HELP[stage]}\n"
        )
    out.write(
        "  split (streamed): "
        + ", ".join(f"{k} {st['service_split_p50_ms'][k]:.1f}" for k in SERVICE_SPLIT)
        + "\n  (send: our request mark -> the emulator has the request; slack: the emulator "
        "late against its deadline; receive: the event left it -> our next mark)\n"
    )
    out.write(f"\nstreamed/seed ratio (p50): {report['ratio_streamed_to_seed']:.2f}")
    if report["ratio_streamed_to_unpaced_seed"] is not None:
        out.write(
            f"  (vs a seed with instant whole-text TTS: "
            f"{report['ratio_streamed_to_unpaced_seed']:.2f}, informational)"
        )
    out.write("\n\n")
    for target in report["targets"]:
        verdict = "PASS" if target["pass"] else "FAIL"
        out.write(f"{verdict}  {target['name']}: {target['value']} (<= {target['limit']})\n")
    for name in ("streamed", "seed"):
        for error in report[name]["errors"]:
            out.write(f"FAIL  {name} turn not measured: {error}\n")
    if not report["complete"]:
        out.write("FAIL  not every turn was measured\n")
