"""`agentd check-cloud` against the three emulators: latencies, differences, failures.

Every service runs through its official SDK on 127.0.0.1; the keys are canaries that
must never appear in the output.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentd.checkcloud import check_cloud
from agentd.checkcloud.probes import LLM_PROMPT, PROBE_TOOL_NAME, STT_PHRASE
from agentd.config import Config, parse_config
from agentd.secrets import Secrets
from agentd.sim.assemblyai_server import AssemblyAiEmulator
from agentd.sim.background import running_in_thread
from agentd.sim.elevenlabs_server import ElevenLabsEmulator
from agentd.sim.openai_server import OpenAiEmulator
from agentd.sim.scenario import scenario_from_dict

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        not (shutil.which("espeak-ng") and shutil.which("sox")), reason="espeak-ng/sox missing"
    ),
]

KEYS = {
    "ASSEMBLYAI_API_KEY": "aai-canary-1d2c3b4a5f6e",
    "OPENAI_API_KEY": "sk-canary-9a8b7c6d5e4f",
    "ELEVENLABS_API_KEY": "xi-canary-0f1e2d3c4b5a",
}
SCENARIO = scenario_from_dict(
    {
        "turn": [
            {
                "visitor": LLM_PROMPT,
                "reply": "It is ten.",
                "tool": PROBE_TOOL_NAME,
                "tool_arguments": {"timezone": "Europe/Berlin"},
            }
        ]
    }
)


@dataclass
class Cloud:
    stt: AssemblyAiEmulator
    llm: OpenAiEmulator
    tts: ElevenLabsEmulator

    def config(self, **llm: Any) -> Config:
        return parse_config(
            {
                "stt": {"api_host": self.stt.url},
                "llm": {"base_url": self.llm.base_url, "model": "gpt-5-mini", **llm},
                "tts": {"base_url": self.tts.base_url},
                "audio": {"playback": {"rate_hz": 24000}},
            }
        )


def emulators() -> tuple[AssemblyAiEmulator, OpenAiEmulator, ElevenLabsEmulator]:
    return (
        AssemblyAiEmulator(transcripts=[STT_PHRASE], api_key=KEYS["ASSEMBLYAI_API_KEY"]),
        OpenAiEmulator(SCENARIO, api_key=KEYS["OPENAI_API_KEY"]),
        ElevenLabsEmulator(api_key=KEYS["ELEVENLABS_API_KEY"]),
    )


@pytest.fixture
async def cloud() -> AsyncIterator[Cloud]:
    stt, llm, tts = emulators()
    for emulator in (stt, llm, tts):
        await emulator.start()
    yield Cloud(stt, llm, tts)
    for emulator in (stt, llm, tts):
        await emulator.stop()


async def run(config: Config, only: tuple[str, ...], **keys: str) -> tuple[int, str]:
    out = io.StringIO()
    environ = {**KEYS, **keys}
    status = await check_cloud(config, Secrets.load(environ), out, only)
    text = out.getvalue()
    for canary in (*KEYS.values(), *keys.values()):
        assert canary not in text
    return status, text


def line(text: str, service: str) -> str:
    return next(row for row in text.splitlines() if row.startswith(f"{service} "))


async def test_all_three_services_pass_with_latencies(cloud: Cloud) -> None:
    status, text = await run(cloud.config(), ("stt", "llm", "tts"))
    assert status == 0, text
    assert text.rstrip().endswith("verdict: OK"), text
    assert "connect" in line(text, "stt") and "final after speech" in line(text, "stt")
    assert "first token" in line(text, "llm") and "first byte" in line(text, "tts")
    assert f"transcript: {STT_PHRASE!r}" in text
    assert f'tool call {PROBE_TOOL_NAME}({{"timezone": "Europe/Berlin"}})' in text
    assert "s of pcm_24000" in text
    # the requests were the daemon's: gpt-5 parameters, stitching-capable TTS
    body = cloud.llm.requests[-1].body
    assert "max_completion_tokens" in body and "temperature" not in body
    assert cloud.tts.requests[-1].output_format == "pcm_24000"
    assert len(cloud.stt.sessions) == 1


async def test_one_chunk_server_and_missing_ids_are_differences_not_failures(
    cloud: Cloud,
) -> None:
    cloud.llm.shape.one_chunk = True
    cloud.llm.shape.empty_first_chunk = True
    status, text = await run(cloud.config(), ("llm",))
    assert status == 0, text
    assert "whole reply came in one chunk" in text
    assert "empty `choices`" in text
    assert "verdict: OK with 2 difference(s)" in text
    assert line(text, "stt") == "stt  skipped"


@pytest.mark.parametrize(
    ("setup", "kind", "words"),
    [
        ({"insufficient_quota": True}, "llm_quota", "out of credit"),
        ({"status": 503}, "llm", "HTTP 503"),
    ],
)
async def test_llm_failures_name_their_cause(
    cloud: Cloud, setup: dict[str, Any], kind: str, words: str
) -> None:
    for key, value in setup.items():
        setattr(cloud.llm.faults, key, value)
    status, text = await run(cloud.config(), ("llm",))
    assert status == 1
    assert f"verdict: FAIL (llm: {kind})" in text and words in text


async def test_llm_unsupported_parameter(cloud: Cloud) -> None:
    status, text = await run(cloud.config(token_limit_param="max_tokens"), ("llm",))
    assert status == 1 and "verdict: FAIL (llm: llm_rejected)" in text
    assert "unsupported_parameter, param max_tokens" in text


async def test_wrong_keys_fail_each_service_without_printing_them(cloud: Cloud) -> None:
    wrong = {
        "ASSEMBLYAI_API_KEY": "aai-wrong-canary-7777",
        "OPENAI_API_KEY": "sk-wrong-canary-8888",
        "ELEVENLABS_API_KEY": "xi-wrong-canary-9999",
    }
    status, text = await run(cloud.config(), ("stt", "llm", "tts"), **wrong)
    assert status == 1
    assert "verdict: FAIL (stt: stt_auth, llm: llm_auth, tts: tts_auth)" in text, text


@pytest.mark.parametrize(
    ("error", "kind"),
    [("quota_exceeded", "tts_quota"), ("too_many_concurrent_requests", "tts")],
)
async def test_tts_failures_name_their_cause(cloud: Cloud, error: str, kind: str) -> None:
    cloud.tts.faults.error = error  # type: ignore[assignment]
    status, text = await run(cloud.config(), ("tts",))
    assert status == 1 and f"verdict: FAIL (tts: {kind})" in text and error in text


async def test_pcm_44100_on_a_lower_plan(cloud: Cloud) -> None:
    config = parse_config(
        {"tts": {"base_url": cloud.tts.base_url}, "audio": {"playback": {"rate_hz": 44100}}}
    )
    status, text = await run(config, ("tts",))
    assert status == 1 and "tts_rejected" in text and "subscription_required" in text


async def test_missing_key_is_named_not_guessed(cloud: Cloud) -> None:
    out = io.StringIO()
    status = await check_cloud(cloud.config(), Secrets.load({}), out, ("llm",))
    assert status == 1 and "secret 'openai_api_key' is not set" in out.getvalue()


def test_cli_exit_status_and_no_secrets(tmp_path: Path) -> None:
    stt, llm, tts = emulators()
    llm.faults.insufficient_quota = True
    with running_in_thread(stt), running_in_thread(llm), running_in_thread(tts):
        config = tmp_path / "agentd.toml"
        config.write_text(
            f'[stt]\napi_host = "{stt.url}"\n[llm]\nbase_url = "{llm.base_url}"\n'
            f'[tts]\nbase_url = "{tts.base_url}"\n'
        )
        env = {**os.environ, **KEYS, "PYTHONPATH": str(Path(__file__).parents[1])}
        result = subprocess.run(
            [sys.executable, "-m", "agentd", "check-cloud", "--config", str(config)],
            capture_output=True,
            check=False,
            text=True,
            timeout=50,
            env=env,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "verdict: FAIL (llm: llm_quota)" in result.stdout
    assert line(result.stdout, "stt").startswith("stt  OK")
    assert line(result.stdout, "tts").startswith("tts  OK")
    assert all(canary not in output for canary in KEYS.values())
    print(result.stdout)  # shown with -s: what an integrator sees
