"""espeak-ng + sox rendering: the local voice of the fallback path (and of the simulator).

Both tools are Debian packages (no binaries shipped). Output is always raw S16_LE mono
at the requested rate, the one format every part of agentd speaks. Nothing is cached
here: the fallback voice renders arbitrary reply text, and a cache would only hold
memory on a Pi (each second of 16 kHz speech is 32 kB). The simulator, whose scenarios
repeat lines, caches on its side (`agentd.sim.speech`).
"""

from __future__ import annotations

import shutil
import subprocess

from agentd.errors import AudioError

_TIMEOUT_S = 20.0


def tools_available() -> bool:
    """espeak-ng and sox are both on PATH (Debian packages `espeak-ng`, `sox`)."""
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def render_speech(text: str, rate_hz: int, voice: str = "en-us", wpm: int = 165) -> bytes:
    """Speak `text` with espeak-ng and resample to `rate_hz`; raw S16_LE mono PCM.

    sox dithers when it resamples espeak's 22.05 kHz to 16 bits at `rate_hz`, from a random
    seed unless `-R`: without it the same line renders differently every run, and the
    simulator's lobbies and benchmarks (which speak through here) would not repeat."""
    if not text.strip():
        return b""
    try:
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", "--", text],
            check=True,
            capture_output=True,
            timeout=_TIMEOUT_S,
        ).stdout
        return sox_to_raw(["-t", "wav", "-"], wav, rate_hz, [], extra_global=["-R"])
    except (OSError, subprocess.SubprocessError) as exc:
        raise AudioError(f"espeak-ng/sox failed rendering speech: {exc}") from None


def sox_to_raw(
    input_args: list[str],
    stdin: bytes,
    rate_hz: int,
    effects: list[str],
    extra_global: list[str] | None = None,
) -> bytes:
    """Run sox from `input_args` (fed `stdin`) to raw S16_LE mono at `rate_hz`."""
    out = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(rate_hz), "-"]
    argv = ["sox", *(extra_global or []), "-q", *input_args, *out, *effects]
    try:
        return subprocess.run(
            argv, input=stdin, check=True, capture_output=True, timeout=_TIMEOUT_S
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise AudioError(f"sox failed: {exc}") from None
