"""Local, offline wake word: microWakeWord models through pymicro-wakeword (Apache-2.0).

pymicro-wakeword (optional extra `wakeword`) ships okay_nabu, hey_jarvis, alexa and
hey_mycroft models in its wheel and runs them with the TensorFlow Lite C library it
bundles; a custom model is a microWakeWord `.json` with its `.tflite` beside it. Audio
must be 16 kHz S16_LE mono (the front end's rate; other capture rates are a ConfigError).
Cost: ~0.3-0.8 % of one x86 core per audio second (`agentd bench engagement`).

A bad model path, a missing package or an unloadable model is a ConfigError at start-up
(exit 78), never a kiosk that silently never wakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentd.config.sections_engagement import BUILTIN_WAKE_WORDS, WakeWordConfig
from agentd.errors import ConfigError

RATE_HZ = 16000  # microWakeWord features are computed on 16 kHz audio
FEATURE_STEP_MS = 10  # pymicro-wakeword: one feature window per 10 ms of audio


@dataclass(frozen=True, slots=True)
class WakeWordDetected:
    """The wake word ended at about `at_ms` (monotonic ms of the audio)."""

    at_ms: float
    wake_word: str
    probability: float


class WakeWordDetector:
    """Feed mono chunks; `process` returns a detection at most once per refractory time."""

    def __init__(self, config: WakeWordConfig, rate_hz: int = RATE_HZ) -> None:
        if rate_hz != RATE_HZ:
            raise ConfigError(
                "audio.capture.rate_hz",
                "the wake word needs 16 kHz capture",
                rate_hz,
                str(RATE_HZ),
            )
        self.config = config
        self._model, self._features = _load(config)
        self.wake_word: str = str(self._model.wake_word)
        self.cutoff: float = config.probability_cutoff or float(self._model.probability_cutoff)
        self._refractory_ms = config.refractory_s * 1000.0
        self._last_ms = float("-inf")
        self.detections = 0
        # The highest sliding-window probability heard: how close a miss came (diagnostics:
        # `agentd bench engagement --wake-voices`, tests); `reset_peak` starts afresh.
        self.peak_probability = 0.0

    def process(self, pcm: bytes, at_ms: float) -> WakeWordDetected | None:
        """One chunk captured at `at_ms` (its start); a detection as it completes."""
        found: WakeWordDetected | None = None
        step = 0
        for features in self._features.process_streaming(pcm):
            step += 1
            probability = self._model.process_streaming_prob(features)
            if probability is None:
                continue
            self.peak_probability = max(self.peak_probability, float(probability))
            if probability <= self.cutoff:
                continue
            end_ms = at_ms + step * FEATURE_STEP_MS
            if found is None and end_ms - self._last_ms >= self._refractory_ms:
                self._last_ms = end_ms
                self.detections += 1
                found = WakeWordDetected(end_ms, self.wake_word, round(float(probability), 3))
        return found

    def reset_peak(self) -> float:
        """The peak probability so far, and start measuring a new one."""
        peak, self.peak_probability = self.peak_probability, 0.0
        return peak

    def close(self) -> None:
        self._model.close()


def _load(config: WakeWordConfig) -> tuple[Any, Any]:
    key = "engagement.wake_word.model"
    try:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
    except ImportError:
        raise ConfigError(
            key,
            "the wake word needs pymicro-wakeword (pip install 'agentd[wakeword]')",
            config.model,
        ) from None
    try:
        if config.model in BUILTIN_WAKE_WORDS:
            model = MicroWakeWord.from_builtin(Model(config.model))
        else:
            path = Path(config.model)
            if not path.is_file():
                raise ConfigError(key, "model file not found", str(path), "a readable .json")
            model = MicroWakeWord.from_config(path)
            if not Path(model.tflite_model).is_file():
                raise ConfigError(key, "the model's .tflite is missing", str(model.tflite_model))
    except ConfigError:
        raise
    except Exception as exc:  # json, key or TFLite errors from a third-party loader
        raise ConfigError(key, f"cannot load wake-word model: {exc}", config.model) from None
    return model, MicroWakeWordFeatures()
