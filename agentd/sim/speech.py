"""Real speech and noise for the simulator and the fallback voice: espeak-ng + sox.

Both tools are Debian packages (no binaries shipped). Output is always raw S16_LE mono
at the requested rate, the one format every part of agentd speaks. Renders are cached
in-process because espeak-ng costs ~50-100 ms per sentence and scenarios repeat lines.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

from agentd.errors import AudioError

_TIMEOUT_S = 20.0


def tools_available() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


@functools.lru_cache(maxsize=256)
def render_speech(text: str, rate_hz: int, voice: str = "en-us", wpm: int = 165) -> bytes:
    """Cached `render_speech_uncached`: for the simulator, whose scenarios repeat lines."""
    return render_speech_uncached(text, rate_hz, voice, wpm)


def render_speech_uncached(text: str, rate_hz: int, voice: str = "en-us", wpm: int = 165) -> bytes:
    """Speak `text` with espeak-ng and resample to `rate_hz`; raw S16_LE mono PCM.

    The daemon's fallback voice calls this one: a cache of arbitrary reply text would
    only hold memory on a Pi (each second of 16 kHz speech is 32 kB).
    """
    if not text.strip():
        return b""
    try:
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", "--", text],
            check=True,
            capture_output=True,
            timeout=_TIMEOUT_S,
        ).stdout
        return _sox(["-t", "wav", "-"], wav, rate_hz, [])
    except (OSError, subprocess.SubprocessError) as exc:
        raise AudioError(f"espeak-ng/sox failed rendering speech: {exc}") from None


@functools.lru_cache(maxsize=64)
def render_noise(duration_ms: int, rate_hz: int, level_db: float, seed: int = 1) -> bytes:
    """Pink noise at roughly `level_db` dBFS RMS (sox synth), raw S16_LE mono."""
    if duration_ms <= 0:
        return b""
    seconds = f"{duration_ms / 1000:.3f}"
    # sox's pinknoise has a peak near 0 dBFS and an RMS about 13.7 dB lower (measured).
    gain = level_db + 13.7
    return _sox(
        ["-n"],
        b"",
        rate_hz,
        ["synth", seconds, "pinknoise", "gain", f"{gain:.1f}"],
        extra_global=["-R"] if seed else [],
    )


def _sox(
    input_args: list[str],
    stdin: bytes,
    rate_hz: int,
    effects: list[str],
    extra_global: list[str] | None = None,
) -> bytes:
    out = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(rate_hz), "-"]
    argv = ["sox", *(extra_global or []), "-q", *input_args, *out, *effects]
    try:
        return subprocess.run(
            argv, input=stdin, check=True, capture_output=True, timeout=_TIMEOUT_S
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise AudioError(f"sox failed: {exc}") from None
