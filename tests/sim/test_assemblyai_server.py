"""The AssemblyAI emulator, driven by the official SDK's asyncio streaming client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentd.sim.assemblyai_server import AssemblyAiEmulator
from agentd.sim.background import running_in_thread
from agentd.sim.scenario import scenario_from_dict
from agentd.sim.speech import render_speech, tools_available

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not tools_available(), reason="espeak-ng/sox missing"),
]

RATE = 16000
KEY = "emu-key"
TEXT = "Hello, I have a meeting with Anna Schmidt at ten."
CHUNK = RATE * 50 // 1000 * 2  # 50 ms frames, as the service wants


def silence(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


class Recorder:
    """Collects SDK events and lets a test await one of a kind."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

    def handler(self, kind: str) -> Any:
        def on(_client: Any, payload: Any) -> None:
            self.events.append((kind, payload))
            self._changed.set()

        return on

    def of(self, kind: str) -> list[Any]:
        return [p for k, p in self.events if k == kind]

    async def wait(self, kind: str, pred: Any = lambda _p: True) -> Any:
        async with asyncio.timeout(10):
            while True:
                self._changed.clear()
                hits = [p for p in self.of(kind) if pred(p)]
                if hits:
                    return hits[0]
                await self._changed.wait()


async def open_client(url: str, key: str = KEY, **params: Any) -> tuple[Any, Recorder]:
    from assemblyai.streaming.v3 import (
        AsyncRealTimeTranscriber,
        RealTimeEvents,
        RealTimeParameters,
        RealTimeTranscriberOptions,
    )

    client = AsyncRealTimeTranscriber(
        options=RealTimeTranscriberOptions(api_key=key, api_host=url, max_connection_retries=0)
    )
    rec = Recorder()
    for event in RealTimeEvents:
        client.on(event, rec.handler(event.name))
    base = {"sample_rate": RATE, "encoding": "pcm_s16le", "format_turns": True}
    await client.connect(RealTimeParameters.model_validate({**base, **params}))
    return client, rec


async def stream(client: Any, pcm: bytes) -> None:
    for i in range(0, len(pcm), CHUNK):
        await client.stream(pcm[i : i + CHUNK])


@pytest.fixture
async def emu() -> AsyncIterator[AssemblyAiEmulator]:
    server = AssemblyAiEmulator(transcripts=[TEXT, "Where can I get a coffee?"], api_key=KEY)
    await server.start()
    yield server
    await server.stop()


async def test_full_utterance_gives_partials_then_formatted_final(emu: AssemblyAiEmulator) -> None:
    client, rec = await open_client(
        emu.url, speech_model="u3-rt-pro", keyterms_prompt=["Anna Schmidt"], min_turn_silence=400
    )
    try:
        await rec.wait("Begin")
        await stream(client, silence(300) + render_speech(TEXT, RATE) + silence(800))
        final = await rec.wait("Turn", lambda t: t.turn_is_formatted)
    finally:
        await client.disconnect(terminate=True)
    turns = rec.of("Turn")
    partials = [t for t in turns if not t.end_of_turn]
    assert len(partials) >= 2
    plain_text = "hello i have a meeting with anna schmidt at ten"
    assert all(plain_text.startswith(p.transcript) for p in partials)
    assert len({p.transcript for p in partials}) >= 2  # they grow
    plain = [t for t in turns if t.end_of_turn and not t.turn_is_formatted]
    assert len(plain) == 1 and plain[0].transcript == plain_text
    assert final.transcript == TEXT and final.end_of_turn and final.words
    assert rec.of("SpeechStarted")
    session = emu.sessions[0]
    assert session.params["speech_model"] == "u3-rt-pro"
    assert json.loads(session.params["keyterms_prompt"]) == ["Anna Schmidt"]
    assert session.first("endpoint") == {"reason": "silence", "turn_order": 0, "text": TEXT}
    assert "Terminate" in session.kinds()
    assert rec.of("Termination")


async def test_force_endpoint_ends_turn_before_silence_timer(emu: AssemblyAiEmulator) -> None:
    client, rec = await open_client(emu.url, min_turn_silence=3000, max_turn_silence=5000)
    speech = render_speech(TEXT, RATE)
    try:
        await stream(client, speech + silence(200))
        await client.keep_alive()
        await client.force_endpoint()
        final = await rec.wait("Turn", lambda t: t.turn_is_formatted)
    finally:
        await client.disconnect(terminate=True)
    assert final.transcript == TEXT
    session = emu.sessions[0]
    assert session.first("endpoint")["reason"] == "force"
    assert "KeepAlive" in session.kinds()
    # The server could not have endpointed on silence: it never got 3 s of it.
    assert len(session.audio) < len(speech) + len(silence(3000))


@pytest.mark.parametrize(
    ("mode", "code"), [("close_1008", 1008), ("close_4001", 4001), ("http_401", 401)]
)
async def test_wrong_key_is_refused(emu: AssemblyAiEmulator, mode: str, code: int) -> None:
    emu.auth_mode = mode
    client, rec = await open_client(emu.url, key="wrong")
    try:
        error = await rec.wait("Error")
    finally:
        await client.disconnect()
    assert error.code == code
    assert not rec.of("Begin")


async def test_server_error_fault_closes_with_3005(emu: AssemblyAiEmulator) -> None:
    emu.error_after_audio_ms = 500
    client, rec = await open_client(emu.url)
    try:
        await stream(client, render_speech(TEXT, RATE))
        error = await rec.wait("Error")
    finally:
        await client.disconnect()
    assert "Server error" in str(error)
    assert emu.error_after_audio_ms == 0  # one-shot


async def test_drop_fault_aborts_the_socket(emu: AssemblyAiEmulator) -> None:
    emu.drop_after_audio_ms = 400
    client, rec = await open_client(emu.url)
    try:
        await stream(client, render_speech(TEXT, RATE))
        error = await rec.wait("Error")
    finally:
        await client.disconnect()
    assert error.code == 1006
    assert "fault_drop" in emu.sessions[0].kinds()


@pytest.mark.parametrize("mode", ["drop", "http503"])
async def test_refused_connection_then_accepted(emu: AssemblyAiEmulator, mode: str) -> None:
    emu.refuse_next(1, mode)
    client, rec = await open_client(emu.url)
    await rec.wait("Error")
    await client.disconnect()
    assert not emu.sessions
    client, rec = await open_client(emu.url)
    await rec.wait("Begin")
    await client.disconnect(terminate=True)
    assert emu.connection_attempts == 2 and len(emu.sessions) == 1


async def test_stall_answers_nothing(emu: AssemblyAiEmulator) -> None:
    client, rec = await open_client(emu.url)
    await rec.wait("Begin")
    emu.stalled = True
    await stream(client, render_speech(TEXT, RATE))
    await client.force_endpoint()
    await emu.wait_until(lambda: "ForceEndpoint" in emu.sessions[0].kinds())
    await client.disconnect()
    assert not rec.of("Turn")


async def test_scenario_texts_in_order_in_a_thread() -> None:
    scenario = scenario_from_dict(
        {"turn": [{"visitor": "First line here."}, {"visitor": "Second line here."}]}
    )
    server = AssemblyAiEmulator(scenario=scenario, api_key=KEY, final_delay_ms=0)
    with running_in_thread(server):
        client, rec = await open_client(server.url, min_turn_silence=300)
        try:
            for text in ("First line here.", "Second line here."):
                await stream(client, render_speech(text, RATE) + silence(600))
                await rec.wait(
                    "Turn", lambda t, text=text: t.turn_is_formatted and t.transcript == text
                )
            await server.wait_until(lambda: len(server.sessions[0].kinds()) > 0)
        finally:
            await client.disconnect(terminate=True)
    finals = [t for t in rec.of("Turn") if t.turn_is_formatted]
    assert [(t.turn_order, t.transcript) for t in finals] == [
        (0, "First line here."),
        (1, "Second line here."),
    ]
