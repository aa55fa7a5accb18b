"""`agentd bench engagement`: phantom turns and visitor recall in a simulated lobby.

The lobby (`agentd.sim.lobby`: bystanders at -15/-20 dB, TV speech and music, door
slams, footsteps, passers-by tripping the PIR, and visitors who walk up and talk with
and without the wake word, with and without presence) plays on a virtual clock through
the daemon's own front end: `VadGate` -> `Engagement.front_end` (near-field gate, wake
word, conversation windows) with presence facts at their times. A turn is a
SpeechStarted that reaches the conversation; while a turn runs the bench stands in for
the rest of the daemon (the reply takes 2 s after the visitor stops, then
`reply_finished`), and hands the visitor's line to `on_turn` (goodbyes end the
conversation). The agent's own voice is not played: echo is `agentd bench audio`'s job.

Per mode: phantom turns per hour (a turn that starts outside every visitor utterance),
visitor activation recall (visitors the mode should hear, who got a turn), time from the
spoken end of the wake word to the turn, CPU per audio second, RSS. Targets (issue 14):
phantom <= 0.5/h (wake_word, presence), <= 2/h (open + near-field); recall >= 95 %;
wake word <= 2 % of a core. Exit 0 when met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

from agentd.audio.format import AudioChunk, AudioFormat
from agentd.audio.vad_gate import VadGate
from agentd.audio.wake_word import WakeWordDetector
from agentd.config.sections_audio import VadConfig
from agentd.config.sections_engagement import (
    EngagementConfig,
    NearFieldConfig,
    PresenceConfig,
    WakeWordConfig,
)
from agentd.conversation.engagement import EngagementState, engagement_from_config
from agentd.events import SpeechEnded, SpeechStarted
from agentd.service.reporting import rss_kb
from agentd.sim.lobby import RATE, Lobby, Visitor, build_lobby

FORMAT = AudioFormat(RATE)
FRAME_MS = 20
REPLY_MS = 2000  # thinking + speaking, stood in for by the bench
# A turn belongs to a visitor whose speech starts at most this long after the gate
# opened (the near-field gate decides within decide_ms = 300 ms of the opening; another
# sound may have opened the gate a moment before the visitor spoke).
ONSET_SLACK_MS = 400
END_SLACK_MS = 700  # hangover + near-field hold after the voice ended
PHANTOM_TARGET = {"wake_word": 0.5, "presence": 0.5, "open+near_field": 2.0}
RECALL_TARGET = 0.95
WAKE_CPU_TARGET = 0.02

# name -> (modes, near-field on)
MODES: dict[str, tuple[tuple[str, ...], bool]] = {
    "open (today, no near-field)": (("open", "button"), False),
    "open+near_field": (("open", "button"), True),
    "wake_word": (("wake_word", "button"), True),
    "presence": (("presence", "button"), True),
}


class _Quiet:
    """Reporter stand-in: counts what the daemon would publish."""

    def __init__(self) -> None:
        self.engagements = 0

    def engagement_changed(self, state: EngagementState, reason: str) -> None:
        if state is EngagementState.ENGAGED:
            self.engagements += 1

    def event(self, name: str, payload: dict[str, object]) -> None:
        pass


@dataclass(slots=True)
class ModeResult:
    name: str
    turns: int = 0
    phantoms: list[float] = field(default_factory=list)
    phantom_sources: list[str] = field(default_factory=list)
    expected: int = 0
    activated: int = 0
    wake_latency_ms: list[float] = field(default_factory=list)  # spoken end -> turn
    wake_detect_ms: list[float] = field(default_factory=list)  # spoken end -> detection
    missed: list[Visitor] = field(default_factory=list)
    missed_ids: list[int] = field(default_factory=list)
    wake_peaks: dict[int, float] = field(default_factory=dict)  # visitor -> peak probability
    wake_words_far: int = 0  # detections the near-field check ignored as too quiet
    engagements: int = 0
    cpu_s: float = 0.0
    audio_s: float = 0.0


def calibrated_near_field(enabled: bool) -> NearFieldConfig:
    """Thresholds as `agentd test-hardware` sets them: a visitor line at 1 m, the room."""
    from agentd.audio.near_field import calibrate
    from agentd.sim.lobby import ROOM_TONE_DBFS, VISITOR_DBFS, at_level
    from agentd.sim.speech import render_noise, render_speech

    line = render_speech("Hello, could you tell me where the meeting rooms are?", RATE)
    visitor = at_level(line, VISITOR_DBFS).astype("<i2").tobytes()
    result = calibrate(visitor, render_noise(3000, RATE, ROOM_TONE_DBFS), FORMAT)
    return NearFieldConfig(
        enabled=enabled, min_level_dbfs=result.min_level_dbfs, min_snr_db=result.min_snr_db
    )


def _visitor_at(lobby: Lobby, at_ms: float) -> int:
    """The visitor whose utterance this turn start belongs to, or -1."""
    for span in lobby.spans:
        if span.source != "visitor":
            continue
        if span.start_ms - ONSET_SLACK_MS <= at_ms <= span.end_ms + END_SLACK_MS:
            return span.visitor
    return -1


def _sources_at(lobby: Lobby, at_ms: float) -> str:
    """What was sounding when a phantom turn started (for the report)."""
    found = {s.source for s in lobby.spans if s.start_ms - ONSET_SLACK_MS <= at_ms <= s.end_ms}
    return "+".join(sorted(found)) or "room"


def _expected(mode: str, lobby: Lobby, k: int) -> bool:
    visitor = lobby.visitors[k]
    if mode.startswith("wake_word"):
        return visitor.says_wake_word
    if mode.startswith("presence"):
        return visitor.trips_presence
    return True


def run_mode(
    name: str,
    lobby: Lobby,
    near_field: NearFieldConfig | None = None,
    wake_word: str = "okay_nabu",
) -> ModeResult:
    modes, near = MODES[name]
    config = EngagementConfig(
        modes=modes,
        near_field=near_field or calibrated_near_field(near),
        presence=PresenceConfig(pin=17),  # the bench posts the sensor's facts itself
        wake_word=WakeWordConfig(model=wake_word),
    )
    reporter = _Quiet()
    engagement = engagement_from_config(config, reporter, RATE)
    gate = VadGate(VadConfig(), RATE, FRAME_MS)
    result = ModeResult(name)
    presence = list(lobby.presence)
    busy_until: float | None = None  # None: idle; inf: a turn is being heard
    activated: set[int] = set()
    turn_visitor = -1
    wakes: list[float] = []
    period = FORMAT.bytes_for_ms(FRAME_MS)
    pcm = lobby.pcm
    windows = _wake_windows(lobby)
    start = time.process_time()
    for offset in range(0, len(pcm) - period + 1, period):
        at = offset / 2 / RATE * 1000
        if windows and engagement.wake_word is not None and at >= windows[0][0]:
            _note_wake_peak(windows, at, engagement.wake_word, result)
        while presence and presence[0][0] <= at:
            engagement.on_presence(presence.pop(0)[1], at)
        chunk = AudioChunk(
            pcm[offset : offset + period], FORMAT, at, _array_chunk(lobby, offset, at)
        )
        idle = busy_until is None
        for event in engagement.front_end(chunk, gate.process(chunk), idle):
            if isinstance(event, SpeechStarted):
                result.turns += 1
                turn_visitor = _visitor_at(lobby, event.at_ms)
                if turn_visitor < 0:
                    result.phantoms.append(event.at_ms)
                    result.phantom_sources.append(_sources_at(lobby, event.at_ms))
                else:
                    _note_activation(lobby, turn_visitor, event.at_ms, activated, result)
                busy_until = float("inf")
            elif isinstance(event, SpeechEnded):
                text = _line(lobby, turn_visitor, event.at_ms) if turn_visitor >= 0 else "hm"
                engagement.on_turn(text, event.at_ms)
                busy_until = event.at_ms + REPLY_MS
        if engagement.last_wake_ms is not None and (
            not wakes or wakes[-1] != engagement.last_wake_ms
        ):
            wakes.append(engagement.last_wake_ms)
        if busy_until is not None and at >= busy_until:
            busy_until = None
            engagement.reply_finished(at)
    result.cpu_s = time.process_time() - start
    result.audio_s = len(pcm) / 2 / RATE
    result.engagements = reporter.engagements
    result.wake_words_far = engagement.stats.wake_words_far
    _tally(result, lobby, wakes, activated)
    return result


def _tally(result: ModeResult, lobby: Lobby, wakes: list[float], activated: set[int]) -> None:
    """Detection times per visitor and who was heard, once the lobby has played."""
    for visitor in lobby.visitors:
        end = visitor.wake_end_ms
        heard = [w - end for w in wakes if end is not None and end - 500 <= w <= end + 2000]
        if heard:
            result.wake_detect_ms.append(heard[0])
    expected = [k for k in range(len(lobby.visitors)) if _expected(result.name, lobby, k)]
    result.expected = len(expected)
    result.activated = len([k for k in expected if k in activated])
    result.missed_ids = [k for k in expected if k not in activated]
    result.missed = [lobby.visitors[k] for k in result.missed_ids]


def _wake_windows(lobby: Lobby) -> list[tuple[float, int]]:
    """(time, visitor) marks around each spoken wake word: start listening 1.5 s before
    its end (the phrase), read the peak 1 s after (detection comes 150-250 ms late)."""
    marks: list[tuple[float, int]] = []
    for k, visitor in enumerate(lobby.visitors):
        if visitor.wake_end_ms is not None:
            marks += [(visitor.wake_end_ms - 1500, -1), (visitor.wake_end_ms + 1000, k)]
    return sorted(marks)


def _note_wake_peak(
    windows: list[tuple[float, int]], at: float, detector: WakeWordDetector, result: ModeResult
) -> None:
    """At a mark: reset the detector's peak probability (-1) or record it for a visitor."""
    while windows and at >= windows[0][0]:
        _, k = windows.pop(0)
        peak = detector.reset_peak()
        if k >= 0:
            result.wake_peaks[k] = peak


def _array_chunk(lobby: Lobby, offset: int, at: float) -> AudioChunk | None:
    """The mics' span beside the mix, for a lobby heard by an array (engagement_array)."""
    channels = lobby.array_channels
    if not channels:
        return None
    size = FORMAT.bytes_for_ms(FRAME_MS) * channels
    start = offset * channels
    return AudioChunk(lobby.array[start : start + size], AudioFormat(RATE, channels), at)


def _note_activation(
    lobby: Lobby, k: int, at_ms: float, activated: set[int], result: ModeResult
) -> None:
    if k in activated:
        return
    activated.add(k)
    wake_end = lobby.visitors[k].wake_end_ms
    if wake_end is not None and at_ms >= wake_end and result.name.startswith("wake_word"):
        result.wake_latency_ms.append(at_ms - wake_end)


def _line(lobby: Lobby, k: int, at_ms: float) -> str:
    spans = [s for s in lobby.spans if s.visitor == k and s.start_ms - ONSET_SLACK_MS <= at_ms]
    return spans[-1].text if spans else ""


def wake_word_cpu(
    lobby: Lobby, seconds: float, model: str = "okay_nabu", *, emphasis: bool = False
) -> float:
    """CPU seconds per audio second of the wake-word detector (and, if asked, the
    near-field emphasis in front of it)."""
    from agentd.audio.wake_emphasis import WakeEmphasis

    detector = WakeWordDetector(WakeWordConfig(model=model))
    emphasiser = WakeEmphasis(RATE) if emphasis else None
    threshold = calibrated_near_field(True).min_level_dbfs
    period = FORMAT.bytes_for_ms(FRAME_MS)
    end = min(len(lobby.pcm), int(seconds * RATE) * 2)
    start = time.process_time()
    for offset in range(0, end - period + 1, period):
        pcm = lobby.pcm[offset : offset + period]
        if emphasiser is not None:
            pcm = emphasiser.process(pcm, threshold)
        detector.process(pcm, offset / 32)
    return (time.process_time() - start) / (end / 2 / RATE)


def _checks(results: list[ModeResult], wake_cpu: float) -> list[tuple[str, str, bool]]:
    checks: list[tuple[str, str, bool]] = []
    for r in results:
        hours = r.audio_s / 3600
        per_hour = len(r.phantoms) / hours
        target = PHANTOM_TARGET.get(r.name)
        checks.append(
            (
                f"{r.name}: phantom turns / h",
                f"{per_hour:.1f} ({len(r.phantoms)})",
                target is None or per_hour <= target,
            )
        )
        recall = r.activated / r.expected if r.expected else 1.0
        checks.append(
            (
                f"{r.name}: visitor recall",
                f"{100 * recall:.0f} % ({r.activated}/{r.expected})",
                recall >= RECALL_TARGET,
            )
        )
        if r.phantom_sources:
            causes = ", ".join(
                f"{c} {r.phantom_sources.count(c)}" for c in sorted(set(r.phantom_sources))
            )
            checks.append((f"{r.name}: phantoms started by", causes, True))
        if r.missed:
            checks.append((f"{r.name}: missed visitors' voices", _missed(r), True))
        if r.wake_words_far:
            checks.append(
                (f"{r.name}: wake words ignored as far-field", str(r.wake_words_far), True)
            )
        checks.append((f"{r.name}: engagements", str(r.engagements), True))
        checks.append((f"{r.name}: CPU / audio s", f"{r.cpu_s / r.audio_s:.4f}", True))
        if r.wake_detect_ms:
            p50 = statistics.median(r.wake_detect_ms)
            checks.append(
                (
                    f"{r.name}: wake word end -> detected p50/max (ms)",
                    f"{p50:.0f}/{max(r.wake_detect_ms):.0f}",
                    True,
                )
            )
        if r.wake_latency_ms:
            p50 = statistics.median(r.wake_latency_ms)
            checks.append(
                (
                    f"{r.name}: wake word end -> turn starts p50/max (ms)",
                    f"{p50:.0f}/{max(r.wake_latency_ms):.0f}",
                    True,
                )
            )
    checks.append(("wake word CPU (core fraction)", f"{wake_cpu:.4f}", wake_cpu <= WAKE_CPU_TARGET))
    checks.append(("RSS (kB)", str(rss_kb()), True))
    return checks


def _print_trials(lobby: Lobby, trials: int, model: str) -> None:
    from agentd.bench.wake_voices import lobby_trials

    for emphasis in (False, True):
        r = lobby_trials(lobby, trials, model, emphasis=emphasis)
        lo, hi = r.interval()
        print(
            f"wake words in the lobby ({'with' if emphasis else 'without'} near-field emphasis): "
            f"{r.detected}/{r.trials} = {100 * r.detected / max(1, r.trials):.0f} % "
            f"(95 % CI {100 * lo:.0f}-{100 * hi:.0f} %); "
            f"over silence {r.detected_clear}/{r.clear}; "
            f"far-field ignored {r.far_ignored}; false accepts {r.false_accepts}"
        )
    seconds = min(120.0, lobby.duration_ms / 1000)
    cpu = wake_word_cpu(lobby, seconds, model, emphasis=True)
    print(f"wake word CPU with near-field emphasis (core fraction): {cpu:.4f}")


def _missed(r: ModeResult) -> str:
    """voice@wpm of each missed visitor, with the detector's peak when they said it."""
    out = []
    for k, v in zip(r.missed_ids, r.missed, strict=True):
        peak = r.wake_peaks.get(k)
        out.append(f"{v.voice}@{v.wpm}" + (f" (peak p {peak:.2f})" if peak is not None else ""))
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentd bench engagement", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI-sized lobby (4 minutes)")
    parser.add_argument("--minutes", type=float, default=0.0, help="lobby length (default 30)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--wake-word",
        default="okay_nabu",
        help="model under test (a built-in or a .json); visitors say its phrase",
    )
    parser.add_argument(
        "--mode",
        action="append",
        choices=tuple(MODES),
        help="run only this mode (repeatable; default: all)",
    )
    parser.add_argument(
        "--wake-trials",
        type=int,
        default=0,
        help="also mix this many wake words into the lobby (with and without emphasis)",
    )
    parser.add_argument(
        "--wake-voices",
        action="store_true",
        help="print which espeak voices the model hears in isolation, and stop",
    )
    args = parser.parse_args(argv)
    import logging

    agentd_log = logging.getLogger("agentd")
    level = agentd_log.level
    agentd_log.setLevel(logging.ERROR)  # the policy's journal lines, for this run only
    try:
        return _run(args)
    finally:
        agentd_log.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    from agentd.sim.speech import tools_available

    if not tools_available():
        print("agentd bench engagement needs espeak-ng and sox on PATH")
        return 1
    if args.wake_voices:
        from agentd.bench.wake_voices import markdown, voice_table

        print(markdown(args.wake_word, voice_table(args.wake_word)))
        return 0
    minutes = args.minutes or (4.0 if args.quick else 30.0)
    started = time.monotonic()
    from agentd.bench.wake_voices import phrase_of

    lobby = build_lobby(minutes, seed=args.seed, wake_phrase=phrase_of(args.wake_word))
    rendered = time.monotonic() - started
    results = [run_mode(name, lobby, wake_word=args.wake_word) for name in args.mode or MODES]
    seconds = min(120.0, lobby.duration_ms / 1000)
    checks = _checks(results, wake_word_cpu(lobby, seconds, args.wake_word))
    for name, value, ok in checks:
        print(f"{name:<52} {value:>14}  {'ok' if ok else 'MISSED TARGET'}")
    if args.wake_trials:
        _print_trials(lobby, args.wake_trials, args.wake_word)
    bystander = sum(1 for s in lobby.spans if s.source == "bystander")
    print(
        f"(lobby {minutes:g} min, seed {args.seed}, wake word {args.wake_word}: "
        f"{len(lobby.visitors)} visitors, "
        f"{bystander} bystander lines; rendered in {rendered:.1f} s, "
        f"total {time.monotonic() - started:.1f} s)"
    )
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
