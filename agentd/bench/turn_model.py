"""`agentd bench turn_model`: what the optional audio turn model costs on this machine.

Loads smart-turn v3.2 as the daemon does (`[turn_end] audio_model = true`, one
onnxruntime thread) and reports:

- the resident memory it adds: RSS after importing onnxruntime and loading the session,
  and after its first run (the session's buffers), each minus RSS before;
- per inference on an espeak-ng utterance (the model always hears an 8 s window, so the
  cost does not depend on the utterance's length): wall time p50/p95 and CPU time (this
  process's user+system time, all threads), split into the numpy features and the ONNX
  session;
- its answers on a finished sentence and on the same sentence cut mid-phrase - for
  information only: espeak-ng speech is not what the model was trained on, and it
  scores at chance on it, so nothing here is a target and nothing is tuned to it.

Exit 0 unless the model cannot be loaded (78, as the daemon).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

FINISHED = "I would like to see Anna Schmidt, please."
FRAGMENT = "I would like to see"
TAIL_MS = 200  # the silence after the voice that the daemon's question includes


def _rss_kib() -> tuple[int, int]:
    """(current, peak) resident set size of this process, KiB (Linux /proc)."""
    current = peak = 0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return current, peak


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(runs: int) -> dict[str, Any]:
    import numpy as np

    from agentd.audio.turn_features import last_window, log_mel, pcm16_to_float
    from agentd.audio.turn_model import INPUT_NAME, load_turn_model
    from agentd.config.sections_turn import TurnEndConfig
    from agentd.tts.espeak import render_speech

    silence = bytes(32 * TAIL_MS)
    finished = render_speech(FINISHED, 16000) + silence
    fragment = render_speech(FRAGMENT, 16000) + silence
    rss0, _ = _rss_kib()
    model = load_turn_model(TurnEndConfig(audio_model=True), 16000)
    rss1, _ = _rss_kib()
    model.complete_probability(finished)  # warm-up: the session's first run allocates
    rss2, _ = _rss_kib()
    session: Any = model._session
    feature_ms, model_ms, total_ms = [], [], []
    feature_cpu = model_cpu = 0.0
    for _ in range(runs):
        started, cpu0 = time.perf_counter(), time.process_time()
        features = log_mel(last_window(pcm16_to_float(finished)))[np.newaxis]
        featured, cpu1 = time.perf_counter(), time.process_time()
        session.run(None, {INPUT_NAME: features})
        done, cpu2 = time.perf_counter(), time.process_time()
        feature_ms.append((featured - started) * 1000)
        model_ms.append((done - featured) * 1000)
        total_ms.append((done - started) * 1000)
        feature_cpu += cpu1 - cpu0
        model_cpu += cpu2 - cpu1
    return {
        "runs": runs,
        "model": str(model.path),
        "rss_added_mib": round((rss2 - rss0) / 1024, 1),
        "rss_after_load_mib": round((rss1 - rss0) / 1024, 1),
        "rss_before_mib": round(rss0 / 1024, 1),
        "cpu_ms_per_inference": round((feature_cpu + model_cpu) * 1000 / runs, 1),
        "features_cpu_ms": round(feature_cpu * 1000 / runs, 1),
        "onnx_cpu_ms": round(model_cpu * 1000 / runs, 1),
        "wall_ms_p50": round(statistics.median(total_ms), 1),
        "wall_ms_p95": round(_pct(total_ms, 0.95), 1),
        "features_ms_p50": round(statistics.median(feature_ms), 1),
        "onnx_ms_p50": round(statistics.median(model_ms), 1),
        "p_complete_finished": round(model.complete_probability(finished), 3),
        "p_complete_fragment": round(model.complete_probability(fragment), 3),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agentd bench turn_model", description=__doc__)
    parser.add_argument("--runs", type=int, default=50, help="inferences to time")
    parser.add_argument("--quick", action="store_true", help="10 runs (CI)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    from agentd.errors import ConfigError

    try:
        report = measure(10 if args.quick else max(1, args.runs))
    except ConfigError as exc:
        print(f"agentd bench turn_model: {exc}", file=sys.stderr)
        return 78
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for key, value in report.items():
            print(f"{key:24s} {value}")
    return 0


__all__ = ["main", "measure"]
