"""The fakes satisfy the conversation's Protocols: mypy --strict fails here if one drifts.

Run: PYTHONPATH=$PWD mypy --strict tests/conversation
The test below only keeps pytest aware of the module; the checking is mypy's.
"""

from __future__ import annotations

from agentd.conversation.engagement import EngagementReporter
from agentd.conversation.ports import (
    BargeInDetector,
    ClauseSplitter,
    FallbackVoice,
    Gate,
    History,
    LlmClient,
    Recorder,
    Reporter,
    Speaker,
    SttLink,
    TtsClient,
)
from agentd.llm.history import ConversationHistory
from agentd.tts.splitter import ClauseSplitter as RealClauseSplitter
from tests.conversation.fakes import (
    FakeBargeInDetector,
    FakeEngagementReporter,
    FakeFallbackVoice,
    FakeGate,
    FakeLlmClient,
    FakeRecorder,
    FakeReporter,
    FakeSpeaker,
    FakeSttLink,
    FakeTtsClient,
)


def test_fakes_satisfy_the_ports() -> None:
    gate: Gate = FakeGate()
    detector: BargeInDetector = FakeBargeInDetector()
    stt: SttLink = FakeSttLink()
    llm: LlmClient = FakeLlmClient()
    tts: TtsClient = FakeTtsClient()
    fallback: FallbackVoice = FakeFallbackVoice()
    speaker: Speaker = FakeSpeaker()
    recorder: Recorder = FakeRecorder()
    reporter: Reporter = FakeReporter()
    engagement_reporter: EngagementReporter = FakeEngagementReporter()
    # The real ones the rig uses in place of fakes.
    history: History = ConversationHistory("system", budget_chars=1000, idle_reset_s=60.0)
    splitter: ClauseSplitter = RealClauseSplitter(8)
    parts = (gate, detector, stt, llm, tts, fallback, speaker, recorder, reporter, history,
             engagement_reporter)  # fmt: skip
    assert all(part is not None for part in (*parts, splitter))
