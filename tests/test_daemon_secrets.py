"""Secrets and privacy of `agentd run`: canary keys never leave, audio never hits the disk.

Canary values (not shaped like any provider's key, so only the known-value redaction can
catch them) are placed in a CREDENTIALS_DIRECTORY as systemd's LoadCredential= would; the
emulators accept only the canary, so a completed turn proves the daemon really used it.
The daemon logs at debug level to a real journald, is sent a SIGHUP with the canary
pasted into the config (an error path that echoes bad values), then crashes on SIGABRT
with faulthandler on. The canaries must be absent from stdout, stderr (including the
crash dump), every journal record written meanwhile, and `agentd check-config` output.

The same run is traced with strace: with default privacy settings (and no sim
speaker_wav) the daemon and its children create no audio file anywhere.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import journald
from tests.helpers.daemon_process import AGENTD, DaemonProcess, merge, write_scenario

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(journald.available() is not None, reason=str(journald.available())),
]

API_KEYS = ("assemblyai_api_key", "openai_api_key", "elevenlabs_api_key")
AUDIO_SUFFIXES = (".wav", ".raw", ".pcm", ".mp3", ".ogg", ".flac", ".opus", ".s16")
TURN = {
    "visitor": "Hello, when are you open tomorrow?",
    "reply": "We are open from nine to five. See you then.",
    "pause_before_ms": 500,
}
# open/openat/creat with a path and flags, successful (not "= -1 ..."); strace -f prefixes pids
_OPEN = re.compile(r'\b(?:open|openat|creat)\((?:[^,"]+, )?"([^"]*)"(?:, ([A-Z_|]+))?.*= \d+')
_RENAME = re.compile(r'\brename(?:at2?)?\(.*"([^"]*)"(?:, \w+)?\) = 0')


@pytest.fixture(scope="module")
def journal() -> Iterator[None]:
    with journald.running():
        yield


def canary() -> str:
    return f"agentdCanary{uuid.uuid4().hex}"


def written_paths(strace_log: str) -> set[str]:
    """Paths the traced processes created or opened for writing."""
    out: set[str] = set()
    for line in strace_log.splitlines():
        if m := _OPEN.search(line):
            path, flags = m.group(1), m.group(2) or ""
            if "creat(" in line or re.search(r"O_WRONLY|O_RDWR|O_CREAT", flags):
                out.add(path)
        elif m := _RENAME.search(line):
            out.add(m.group(1))
    return {p for p in out if not p.startswith(("/dev/", "/proc/", "/sys/"))}


def audio_files(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES}


def journal_since(epoch_s: float) -> str:
    """Every record (all processes) since `epoch_s`, as journalctl's full JSON output."""
    return subprocess.run(
        ["journalctl", "--no-pager", "--all", "-o", "json", f"--since=@{int(epoch_s) - 1}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed")
def test_canary_keys_never_leave_and_no_audio_is_written(tmp_path: Path, journal: None) -> None:
    key, password = canary(), canary()
    credentials = dict.fromkeys(API_KEYS, key) | {"mqtt_password": password}
    scenario = write_scenario(tmp_path / "secrets.toml", [TURN])
    private_tmp, home = tmp_path / "tmpdir", tmp_path / "home"
    private_tmp.mkdir()
    home.mkdir()
    trace = tmp_path / "strace.log"
    wrapper = ["prlimit", "--core=0", "--", "strace", "-f", "-qq", "-s", "512", "-o", str(trace)]
    wrapper += ["-e", "trace=open,openat,creat,rename,renameat,renameat2"]
    overrides = {
        "logging": {"backend": "journal", "level": "debug"},
        "audio": {"sim": {"speaker_wav": ""}},  # default privacy: no debug recording at all
    }
    env = {"TMPDIR": str(private_tmp), "HOME": str(home), "PYTHONFAULTHANDLER": "1"}
    daemon = DaemonProcess(
        tmp_path,
        scenario,
        overrides=overrides,
        api_key=key,
        credentials=credentials,
        env=env,
        wrapper=wrapper,
    )
    started = time.time()
    with daemon:
        roots = (daemon.cwd, daemon.workdir / "out", private_tmp, home)
        before = audio_files(*roots)
        pid = daemon.pid
        (turn,) = journald.wait_for(
            "SYSLOG_IDENTIFIER=agentd", f"_PID={pid}", "STAGE=turn", timeout_s=30
        )
        assert turn["OUTCOME"] == "ok"  # all three emulators accepted the canary key

        # An error path that echoes the offending value: the canary pasted into the config.
        bad = merge(copy.deepcopy(daemon.config), {"llm": {"temperature": key}})
        daemon.write_config(bad)
        daemon.send_signal(signal.SIGHUP)
        refused = journald.wait_for(f"_PID={pid}", "ERROR_KIND=config_reload", count=2)
        assert all("llm.temperature" in r["MESSAGE"] for r in refused)
        assert all("<redacted>" in r["MESSAGE"] for r in refused)  # the value was there

        daemon.send_signal(signal.SIGABRT)  # a crash: faulthandler dumps every thread
        assert daemon.proc is not None
        assert daemon.proc.wait(10) != 0
        daemon.stderr.join()
        daemon.stdout.join()
        daemon.write_config()  # back to the good config for check-config below
        check = subprocess.run(
            [*AGENTD, "check-config", str(daemon.config_path)],
            env=daemon.environment(),
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        after = audio_files(*roots)

    stderr = daemon.stderr.text
    assert "Fatal Python error: Aborted" in stderr and "Current thread" in stderr
    assert check.returncode == 0, check.stderr
    summary = "\n".join(line for line in check.stdout.splitlines() if "_api_key" in line)
    assert summary.count("set (credential)") == 3, check.stdout
    journal_text = journal_since(started)
    assert f'"_PID":"{pid}"' in journal_text.replace(" ", "")
    outputs = {
        "stdout": daemon.stdout.text,
        "stderr (with the crash dump)": stderr,
        "journal": journal_text,
        "check-config": check.stdout + check.stderr,
    }
    for where, text in outputs.items():
        assert key not in text, f"API key canary leaked to {where}"
        assert password not in text, f"MQTT password canary leaked to {where}"

    log = trace.read_text()
    assert str(daemon.config_path) in log  # the trace really covers the daemon
    written = written_paths(log)
    assert not [p for p in written if p.lower().endswith(AUDIO_SUFFIXES)], sorted(written)
    assert after == before
    assert not any(p.startswith(str(daemon.cwd)) for p in written), sorted(written)


def test_check_config_error_does_not_echo_a_pasted_key(tmp_path: Path) -> None:
    """An operator pastes the key into a config value: the error must still hide it."""
    key = canary()
    cred_dir = tmp_path / "credentials"
    cred_dir.mkdir()
    (cred_dir / "openai_api_key").write_text(key)
    config = tmp_path / "agentd.toml"
    config.write_text(f'[llm]\ntemperature = "{key}"\n')
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["CREDENTIALS_DIRECTORY"] = str(cred_dir)
    result = subprocess.run(
        [*AGENTD, "check-config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 78
    assert "llm.temperature" in result.stderr
    assert key not in result.stdout + result.stderr


def test_written_paths_reads_strace_output() -> None:
    """The audio check above is only as good as this parser."""
    log = "\n".join(
        (
            '12 openat(AT_FDCWD, "/tmp/a.wav", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 5',
            '12 openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3',
            '13 open("/x/y.raw", O_RDWR|O_CREAT|O_EXCL, 0600) = 4',
            '13 openat(AT_FDCWD, "/tmp/no.wav", O_WRONLY|O_CREAT, 0666) = -1 EACCES (Denied)',
            '14 rename("/tmp/p.tmp", "/tmp/p.pcm") = 0',
            '14 creat("/tmp/c.wav", 0644) = 3',
            '15 openat(AT_FDCWD, "/dev/snd/pcmC0D0p", O_RDWR|O_NONBLOCK) = 7',
        )
    )
    assert written_paths(log) == {"/tmp/a.wav", "/x/y.raw", "/tmp/p.pcm", "/tmp/c.wav"}
