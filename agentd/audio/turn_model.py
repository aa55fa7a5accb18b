"""The local audio turn model: pipecat's smart-turn v3.2 (BSD-2) run with onnxruntime.

smart-turn v3 (Copyright (c) 2024-2026 Daily, BSD 2-Clause; the licence text is fetched
beside the model and is in docs/third-party-notices.md) is an 8 M-parameter Whisper-encoder
classifier that hears the last 8 s of a turn (16 kHz mono) and gives the probability
that the speaker has finished. The model ships inside the `pipecat-ai` wheel
(`pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx`);
`scripts/fetch-turn-model.sh` takes just that file (and the licence) out of the wheel,
so none of pipecat's dependencies are installed. onnxruntime comes with the optional
extra `turnmodel` (cp311 wheels for x86_64 and aarch64).

It is one signal for the turn-end policy, never the only one: on espeak-ng speech it
scores at chance, and its thresholds must not be tuned on synthetic speech. A missing
extra or model file with `[turn_end] audio_model = true` is a ConfigError (exit 78).
The model runs only when the policy asks about a pause, on the turn-audio thread
(`agentd.conversation.turn_audio`), never on the loop or the ALSA thread.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentd.audio.turn_features import RATE_HZ, last_window, log_mel, pcm16_to_float
from agentd.config.sections_turn import TurnEndConfig
from agentd.errors import ConfigError

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
# Where scripts/fetch-turn-model.sh puts it: inside the venv, beside agentd itself.
DEFAULT_MODEL = Path(sys.prefix) / "share" / "agentd" / "smart-turn" / MODEL_FILE
INPUT_NAME = "input_features"  # the ONNX graph's input: (batch, 80, 800) float32
# pipecat (local_smart_turn_v3.py) runs it on one thread, sequentially: a kiosk has 4
# small cores and the audio path, STT and TTS need them more.
THREADS = 1


class SmartTurnModel:
    """`complete_probability(pcm)`: P(the visitor has finished) for a turn's audio."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort  # lazy: the extra is optional

        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = THREADS
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self._session: Any = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def complete_probability(self, pcm: bytes) -> float:
        """16 kHz S16_LE mono audio of the turn (its last 8 s count) -> probability."""
        features = log_mel(last_window(pcm16_to_float(pcm)))[np.newaxis]
        (output,) = self._session.run(None, {INPUT_NAME: features})
        # The graph ends in a sigmoid (pipecat reads outputs[0][0] as a probability).
        return float(np.asarray(output).reshape(-1)[0])


def model_path(config: TurnEndConfig) -> Path:
    return Path(config.audio_model_path) if config.audio_model_path else DEFAULT_MODEL


def load_turn_model(config: TurnEndConfig, rate_hz: int) -> SmartTurnModel:
    """The model for `[turn_end] audio_model = true`; ConfigError if it cannot run."""
    key = "turn_end.audio_model"
    if rate_hz != RATE_HZ:
        raise ConfigError(
            "audio.capture.rate_hz", "the audio turn model needs 16 kHz capture", rate_hz, "16000"
        )
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError(
            key,
            "the audio turn model needs onnxruntime (pip install 'agentd[turnmodel]')",
            config.audio_model,
        ) from None
    path = model_path(config)
    if not path.is_file():
        raise ConfigError(
            f"{key}_path",
            "model file not found (run scripts/fetch-turn-model.sh)",
            str(path),
            f"a readable {MODEL_FILE}",
        )
    try:
        return SmartTurnModel(path)
    except Exception as exc:  # onnxruntime's own errors (a corrupt or foreign file)
        raise ConfigError(f"{key}_path", f"cannot load the model: {exc}", str(path)) from None


@dataclass
class FakeTurnModel:
    """A turn model that answers `probability`; records the audio length of every call.

    `hold`: while set and not yet released, each call blocks until `release()` - so a
    test decides when the answer arrives, as a slow Pi would; `entered` is set as a call
    begins.
    """

    probability: float = 0.5
    hold: bool = False
    calls: list[int] = field(default_factory=list)  # bytes of audio per call
    entered: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)

    def complete_probability(self, pcm: bytes) -> float:
        self.entered.set()
        if self.hold:
            self._released.wait(timeout=10.0)  # a test that forgets to release fails, not hangs
        self.calls.append(len(pcm))
        return self.probability

    def release(self) -> None:
        self._released.set()
