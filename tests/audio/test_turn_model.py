"""The smart-turn v3.2 ONNX model (extra `turnmodel`) on real features of espeak-ng speech.

Only sanity here: the answer is a probability and inference is far from absurd; what
the model is worth, and its cost, are measured in the benchmarks (docs/benchmarks.md).
On espeak-ng speech it scores at chance, so no test expects a particular answer.
A missing extra or model file with `audio_model = true` is a ConfigError (exit 78).
"""

from __future__ import annotations

import math
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentd.audio.turn_model import DEFAULT_MODEL, load_turn_model
from agentd.config.sections_turn import TurnEndConfig
from agentd.errors import ConfigError
from agentd.tts.espeak import render_speech

ON = TurnEndConfig(audio_model=True)
SANITY_MS = 3000.0  # an 8 s window takes ~100 ms on one x86 core; this only catches a hang

try:
    import onnxruntime  # noqa: F401

    HAVE_ORT = True
except ImportError:
    HAVE_ORT = False
needs_model = pytest.mark.skipif(
    not (HAVE_ORT and DEFAULT_MODEL.is_file()),
    reason="extra `turnmodel` or its model file not installed (scripts/setup.sh installs both)",
)


@needs_model
def test_the_real_model_gives_a_probability_for_real_speech_features() -> None:
    model = load_turn_model(ON, 16000)
    silence = bytes(32 * 200)  # the 200 ms tail pipecat's VAD stop leaves
    finished = render_speech("I would like to see Anna Schmidt, please.", 16000) + silence
    fragment = render_speech("I would like to see", 16000) + silence
    model.complete_probability(finished)  # the first run also builds the session's caches
    timings, answers = [], []
    for pcm in (finished, fragment, finished, fragment, finished):
        started = time.perf_counter()
        answers.append(model.complete_probability(pcm))
        timings.append((time.perf_counter() - started) * 1000)
    for p in answers:
        assert math.isfinite(p) and 0.0 <= p <= 1.0
    assert answers[0] == pytest.approx(answers[2], abs=1e-6)  # deterministic
    assert statistics.median(timings) < SANITY_MS


@needs_model
def test_a_file_that_is_no_model_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"not an onnx graph")
    with pytest.raises(ConfigError, match=r"turn_end\.audio_model_path: cannot load the model"):
        load_turn_model(TurnEndConfig(audio_model=True, audio_model_path=str(bogus)), 16000)


@pytest.mark.skipif(not HAVE_ORT, reason="extra `turnmodel` not installed")
def test_a_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    config = TurnEndConfig(audio_model=True, audio_model_path=str(tmp_path / "nope.onnx"))
    with pytest.raises(ConfigError, match=r"turn_end\.audio_model_path: model file not found"):
        load_turn_model(config, 16000)


def test_a_missing_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import -> ImportError
    with pytest.raises(ConfigError, match=r"turn_end\.audio_model: .*agentd\[turnmodel\]"):
        load_turn_model(ON, 16000)


def test_the_model_needs_16_khz_capture() -> None:
    with pytest.raises(ConfigError, match=r"audio\.capture\.rate_hz: .*16 kHz"):
        load_turn_model(ON, 48000)


async def test_the_daemon_does_not_start_without_its_model(tmp_path: Path) -> None:
    """Through the real start-up: the ConfigError that run_daemon turns into exit 78."""
    from agentd.sim.harness import SimulatedKiosk

    scenario = Path(__file__).resolve().parents[2] / "agentd/sim/scenarios/front-desk.toml"
    kiosk = SimulatedKiosk(
        scenario,
        tmp_path,
        extra_toml=f'[turn_end]\naudio_model = true\naudio_model_path = "{tmp_path}/nope.onnx"\n',
    )
    with pytest.raises(ConfigError, match=r"turn_end\.audio_model_path: model file not found"):
        await kiosk.start()
    # The process exits 78 from here; what start-up had opened is closed first ...
    assert kiosk.speaker.closed
    # ... and the harness still stops its emulators when the daemon's task failed.
    with pytest.raises(ConfigError):
        await kiosk.stop()
    assert kiosk.stack is None


# The unit's hardening, emulated in a child: SystemCallFilter=~@resources with
# SystemCallErrorNumber=EPERM (through libseccomp), and MemoryDenyWriteExecute=yes (the
# kernel's prctl(PR_SET_MDWE) equivalent, as tests/test_unit_file.py does). onnxruntime
# pins a probe thread with sched_setaffinity and numpy calls mbind: both must survive EPERM.
SANDBOX_PROBE = textwrap.dedent(
    """
    import ctypes, errno, subprocess, sys
    out = subprocess.run(["systemd-analyze", "syscall-filter", "@resources"],
                         capture_output=True, text=True, check=True).stdout
    names = [w for w in out.split() if w.replace("_", "").isalpha() and w.islower()]
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ALLOW, ERRNO = 0x7FFF0000, 0x00050000  # seccomp.h: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO(0)
    ctx = lib.seccomp_init(ALLOW)
    blocked = 0
    for name in names:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr >= 0:
            assert lib.seccomp_rule_add(ctx, ERRNO | errno.EPERM, nr, 0) == 0
            blocked += 1
    assert lib.seccomp_load(ctx) == 0
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.setpriority(0, 0, 5) == -1 and ctypes.get_errno() == errno.EPERM
    mdwe = libc.prctl(65, 1, 0, 0, 0) == 0  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    from agentd.audio.turn_model import load_turn_model
    from agentd.config.sections_turn import TurnEndConfig
    model = load_turn_model(TurnEndConfig(audio_model=True), 16000)
    p = model.complete_probability(bytes(32 * 1000))
    print("OK", blocked, mdwe, 0.0 <= p <= 1.0)
    """
)


@needs_model
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_model_runs_under_the_units_syscall_filter_and_mdwe() -> None:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", SANDBOX_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    if "libseccomp.so.2" in result.stderr and "OSError" in result.stderr:
        pytest.skip("libseccomp.so.2 not available")
    out = result.stdout.strip()
    assert result.returncode == 0 and out.startswith("OK"), out + result.stderr[-2000:]
    _, blocked, _mdwe, in_range = out.split()
    assert int(blocked) >= 10 and in_range == "True"
