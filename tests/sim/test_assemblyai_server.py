"""The AssemblyAI emulator, driven by the official SDK's asyncio streaming client."""

from __future__ import annotations

import asyncio
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


LEAD_MS = 1000  # how far ahead of real time the tests stream (the emulator allows 2000)


async def stream(client: Any, pcm: bytes, lead_ms: float = LEAD_MS) -> None:
    """Stream in 50 ms frames, at most `lead_ms` ahead of the session's real time."""
    loop = asyncio.get_running_loop()
    clock = client.__dict__.setdefault("_test_clock", [loop.time(), 0.0])  # start, sent ms
    for i in range(0, len(pcm), CHUNK):
        ahead_s = (clock[1] - lead_ms) / 1000 - (loop.time() - clock[0])
        if ahead_s > 0:
            await asyncio.sleep(ahead_s)
        chunk = pcm[i : i + CHUNK]
        await client.stream(chunk)
        clock[1] += len(chunk) / 2 / RATE * 1000


@pytest.fixture
async def emu() -> AsyncIterator[AssemblyAiEmulator]:
    server = AssemblyAiEmulator(transcripts=[TEXT, "Where can I get a coffee?"], api_key=KEY)
    await server.start()
    yield server
    await server.stop()


PLAIN = "hello i have a meeting with anna schmidt at ten"
# No comma: espeak-ng speaks it without a pause, so U3's early partial is what comes first.
CONTINUOUS = "I have a meeting with Anna Schmidt at ten o'clock today."


def speech_ms(emu: AssemblyAiEmulator, kind: str) -> list[float]:
    return [d["speech_ms"] for _, k, d in emu.sessions[0].events if k == kind]


async def test_u3_one_formatted_end_of_turn_whatever_format_turns(
    emu: AssemblyAiEmulator,
) -> None:
    client, rec = await open_client(
        emu.url, speech_model="u3-rt-pro", keyterms_prompt=["Anna Schmidt"], format_turns=True
    )
    try:
        await rec.wait("Begin")
        await stream(client, silence(300) + render_speech(TEXT, RATE) + silence(800))
        final = await rec.wait("Turn", lambda t: t.end_of_turn)
        await client.disconnect(terminate=True)
    finally:
        await client.disconnect()
    ends = [t for t in rec.of("Turn") if t.end_of_turn]
    assert len(ends) == 1 and final.turn_is_formatted and final.transcript == TEXT
    assert all(w.word_is_final for w in final.words)
    partials = [t for t in rec.of("Turn") if not t.end_of_turn]
    assert partials and all(TEXT.startswith(p.transcript) for p in partials)
    assert not any(w.word_is_final for p in partials for w in p.words)  # docs: never final
    assert rec.of("SpeechStarted") and rec.of("Termination")
    endpoint = emu.sessions[0].first("endpoint")
    assert endpoint is not None and endpoint["reason"] == "silence"


async def test_u3_early_partial_after_interruption_delay(emu: AssemblyAiEmulator) -> None:
    emu.transcripts = [CONTINUOUS]
    client, rec = await open_client(emu.url, speech_model="u3-rt-pro", interruption_delay=200)
    try:
        await stream(client, render_speech(CONTINUOUS, RATE) + silence(1500))
        await rec.wait("Turn", lambda t: t.end_of_turn)
    finally:
        await client.disconnect(terminate=True)
    first = speech_ms(emu, "partial")[0]
    assert 440 <= first <= 520  # interruption_delay 200 + 250 ms of continuous speech


async def test_u3_default_early_partial_at_750_ms(emu: AssemblyAiEmulator) -> None:
    emu.transcripts = [CONTINUOUS]
    client, rec = await open_client(emu.url, speech_model="universal-3-6-pro")
    try:
        await stream(client, render_speech(CONTINUOUS, RATE) + silence(1500))
        await rec.wait("Turn", lambda t: t.end_of_turn)
    finally:
        await client.disconnect(terminate=True)
    assert 740 <= speech_ms(emu, "partial")[0] <= 820


async def test_u3_without_terminal_punctuation_waits_for_max_turn_silence(
    emu: AssemblyAiEmulator,
) -> None:
    emu.transcripts = ["anna schmidt please"]
    speech = render_speech("Anna Schmidt please", RATE)
    client, rec = await open_client(emu.url, min_turn_silence=100, max_turn_silence=900)
    try:
        await stream(client, speech + silence(1500))
        await rec.wait("Turn", lambda t: t.end_of_turn)
    finally:
        await client.disconnect(terminate=True)
    endpoint = emu.sessions[0].first("endpoint")
    assert endpoint is not None
    assert endpoint["audio_ms"] - endpoint["voice_end_ms"] >= 900  # not at 100 ms


async def test_universal_unformatted_end_then_formatted_copy(emu: AssemblyAiEmulator) -> None:
    client, rec = await open_client(
        emu.url, speech_model="universal-streaming-english", min_turn_silence=400
    )
    try:
        await stream(client, silence(300) + render_speech(TEXT, RATE) + silence(800))
        final = await rec.wait("Turn", lambda t: t.turn_is_formatted)
    finally:
        await client.disconnect(terminate=True)
    turns = rec.of("Turn")
    partials = [t for t in turns if not t.end_of_turn]
    assert len(partials) >= 2 and all(PLAIN.startswith(p.transcript) for p in partials)
    assert len({p.transcript for p in partials}) >= 2  # they grow as words arrive
    plain = [t for t in turns if t.end_of_turn and not t.turn_is_formatted]
    assert len(plain) == 1 and plain[0].transcript == PLAIN
    assert turns.index(plain[0]) < turns.index(final) and final.transcript == TEXT
    assert final.language_code is None


async def test_universal_without_format_turns_sends_no_formatted_copy(
    emu: AssemblyAiEmulator,
) -> None:
    client, rec = await open_client(
        emu.url, speech_model="universal-streaming-english", format_turns=False
    )
    try:
        await stream(client, render_speech(TEXT, RATE) + silence(800))
        await rec.wait("Turn", lambda t: t.end_of_turn)
        await client.disconnect(terminate=True)
    finally:
        await client.disconnect()
    assert not [t for t in rec.of("Turn") if t.turn_is_formatted]


async def test_multilingual_turns_carry_language_code(emu: AssemblyAiEmulator) -> None:
    client, rec = await open_client(emu.url, speech_model="universal-streaming-multilingual")
    try:
        await stream(client, render_speech(TEXT, RATE) + silence(800))
        final = await rec.wait("Turn", lambda t: t.turn_is_formatted)
    finally:
        await client.disconnect(terminate=True)
    assert final.language_code == "en" and final.language_confidence


async def test_force_endpoint_on_noise_gives_an_empty_turn(emu: AssemblyAiEmulator) -> None:
    from agentd.sim.speech import render_noise

    client, rec = await open_client(emu.url)
    try:
        await stream(client, render_noise(600, RATE, -60.0))
        await client.force_endpoint()
        final = await rec.wait("Turn", lambda t: t.end_of_turn)
    finally:
        await client.disconnect(terminate=True)
    assert final.transcript == "" and final.words == []
    assert emu.next_text == 0  # the scripted text waits for real speech


async def test_audio_faster_than_real_time_is_closed_with_3007(emu: AssemblyAiEmulator) -> None:
    client, rec = await open_client(emu.url)
    try:
        await stream(client, render_speech(TEXT, RATE), lead_ms=10_000)  # all at once
        error = await rec.wait("Error")
    finally:
        await client.disconnect()
    assert error.code == 3007 and "Audio Transmission Rate Exceeded" in str(error)
    assert emu.sessions[0].first("error")["code"] == 3007


async def test_real_time_with_a_small_lead_is_accepted(emu: AssemblyAiEmulator) -> None:
    client, rec = await open_client(emu.url)
    try:
        await stream(client, render_speech(TEXT, RATE) + silence(600), lead_ms=1500)
        await rec.wait("Turn", lambda t: t.end_of_turn)
    finally:
        await client.disconnect(terminate=True)
    assert not rec.of("Error")


async def test_more_than_100_keyterms_refuse_the_session(emu: AssemblyAiEmulator) -> None:
    client, rec = await open_client(emu.url, keyterms_prompt=[f"term {i}" for i in range(101)])
    try:
        error = await rec.wait("Error")
    finally:
        await client.disconnect()
    assert error.code == 3006 and "100" in str(error)
    assert not rec.of("Begin")


async def test_100_keyterms_pass_and_long_ones_are_ignored(emu: AssemblyAiEmulator) -> None:
    terms = [f"term {i}" for i in range(99)] + ["x" * 51]
    client, rec = await open_client(emu.url, keyterms_prompt=terms)
    try:
        await rec.wait("Begin")
    finally:
        await client.disconnect(terminate=True)
    assert emu.sessions[0].keyterms == terms[:99]


async def test_close_without_termination_fault(emu: AssemblyAiEmulator) -> None:
    emu.close_after_audio_ms = 300
    client, rec = await open_client(emu.url)
    try:
        await stream(client, render_speech(TEXT, RATE))
        await emu.wait_until(lambda: emu.sessions[0].closed)
    finally:
        await client.disconnect()
    assert "fault_close" in emu.sessions[0].kinds()
    assert not rec.of("Termination") and not rec.of("Error")  # the SDK says nothing


async def test_every_server_message_validates_against_the_sdk_models(
    emu: AssemblyAiEmulator,
) -> None:
    from assemblyai.streaming.v3._base import _BaseStreamingClient

    for model in ("u3-rt-pro", "universal-streaming-multilingual"):
        client, rec = await open_client(emu.url, speech_model=model)
        await stream(client, render_speech(TEXT, RATE) + silence(900))
        await rec.wait("Turn", lambda t: t.end_of_turn)
        await client.force_endpoint()  # nothing said since: an empty turn
        await client.disconnect(terminate=True)
    emu.error_after_audio_ms = 100
    client, rec = await open_client(emu.url)
    await stream(client, silence(200))
    await rec.wait("Error")
    await client.disconnect()
    sent = [m for s in emu.sessions for m in s.sent]
    assert {m["type"] for m in sent} == {"Begin", "SpeechStarted", "Turn", "Termination", "Error"}
    for message in sent:
        assert _BaseStreamingClient._parse_message(message) is not None, message
    # Optional in the SDK's models, always sent by the service (protocols.md):
    for message in sent:
        if message["type"] == "Termination":
            assert isinstance(message["audio_duration_seconds"], int)
            assert isinstance(message["session_duration_seconds"], int)
        if message["type"] == "Error":
            assert isinstance(message["error_code"], int)


async def test_force_endpoint_ends_turn_before_silence_timer(emu: AssemblyAiEmulator) -> None:
    client, rec = await open_client(emu.url, min_turn_silence=3000, max_turn_silence=5000)
    # (u3-rt-pro by default: the one end-of-turn Turn is the formatted one)
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


@pytest.mark.parametrize(("mode", "code"), [("close_1008", 1008), ("http_401", 401)])
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
    assert "Server error" in str(error) and error.code == 3005
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
