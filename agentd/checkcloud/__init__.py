"""`agentd check-cloud`: the configured cloud services, tested once each, on site.

For integrators with the real keys: one AssemblyAI session that hears a short espeak-ng
phrase, one OpenAI-compatible call with a tool, one ElevenLabs clause. Prints the
latencies (connect, first result, end), anything that differs from the contract agentd
relies on (docs/cloud-contract.md) and a verdict line; exits 1 when a service failed.
Secrets are never printed: every line passes the same redactor the logs use.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from agentd.checkcloud.probes import STT_PHRASE, check_llm, check_stt, check_tts
from agentd.checkcloud.report import ServiceReport, print_reports
from agentd.errors import AgentdError

if TYPE_CHECKING:
    from agentd.config import Config
    from agentd.secrets import Secrets

SERVICES = ("stt", "llm", "tts")
_KEYS = {"stt": "assemblyai_api_key", "llm": "openai_api_key", "tts": "elevenlabs_api_key"}
EX_OK, EX_FAILURE = 0, 1


def run_check_cloud(config_path: str, services: Sequence[str] = SERVICES) -> int:
    """The CLI entry: load config and secrets, run the probes, print; the exit status."""
    from agentd.config import load_config
    from agentd.secrets import Secrets

    config = load_config(config_path)
    print(f"agentd check-cloud: {config_path}")
    return asyncio.run(check_cloud(config, Secrets.load(), sys.stdout, services))


async def check_cloud(
    config: Config, secrets: Secrets, out: TextIO, services: Sequence[str] = SERVICES
) -> int:
    """Probe `services` one after the other (their latencies must not overlap)."""
    from agentd.logs import Redactor

    reports: list[ServiceReport] = []
    for service in SERVICES:
        if service not in services:
            reports.append(ServiceReport(service, skipped=True))
            continue
        reports.append(await _probe(service, config, secrets))
    redact = Redactor(secrets.known_values())
    return EX_OK if print_reports(reports, out, redact) else EX_FAILURE


async def _probe(service: str, config: Config, secrets: Secrets) -> ServiceReport:
    try:
        api_key = secrets.require(_KEYS[service]).reveal()
        if service == "stt":
            return await check_stt(config, api_key, await _phrase(config))
        if service == "llm":
            return await check_llm(config, api_key)
        return await check_tts(config, api_key)
    except AgentdError as exc:
        report = ServiceReport(service)
        report.fail(exc)
        return report


async def _phrase(config: Config) -> bytes:
    """The STT test phrase, spoken by the local voice at the capture rate."""
    from agentd.errors import AudioError
    from agentd.tts.fallback import FallbackVoice

    voice = FallbackVoice(config.fallback, config.audio.capture.rate_hz)
    if not voice.has_speech:
        raise AudioError("espeak-ng and sox are needed to speak the STT test phrase")
    return await voice.render(STT_PHRASE)
