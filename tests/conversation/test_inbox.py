"""The inbox: control events overtake queued mic audio; nothing is lost or handled twice."""

from __future__ import annotations

import asyncio
import threading

from agentd.audio.format import AudioChunk
from agentd.conversation.inbox import Inbox
from tests.conversation.rig import chunk, until


class Log:
    def __init__(self) -> None:
        self.handled: list[tuple[str, object]] = []

    def control(self, event: object) -> None:
        self.handled.append(("control", event))

    def audio(self, audio: AudioChunk) -> None:
        self.handled.append(("audio", audio.at_ms))


def run_in_thread(target: object) -> None:
    """Run `target` on another thread and wait for it, blocking the loop meanwhile."""
    assert callable(target)
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()


async def test_control_overtakes_queued_audio() -> None:
    log = Log()
    inbox = Inbox(asyncio.get_running_loop(), log.control, log.audio)

    def capture_then_button() -> None:
        for i in range(5):
            inbox.post_audio(chunk(float(i)))
        inbox.post("cancel")

    run_in_thread(capture_then_button)  # the loop is blocked while the thread posts
    assert log.handled == []
    assert inbox.audio_backlog == 5
    await until(lambda: len(log.handled) == 6, "all handled")
    kinds = [kind for kind, _ in log.handled]
    # The control event went ahead of every queued chunk but the one already pumped.
    assert kinds.index("control") < [i for i, k in enumerate(kinds) if k == "audio"][1]
    assert log.handled[0] == ("control", "cancel")
    assert [at for kind, at in log.handled if kind == "audio"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert inbox.audio_backlog == 0


async def test_everything_is_handled_once_in_order_within_its_tier() -> None:
    log = Log()
    inbox = Inbox(asyncio.get_running_loop(), log.control, log.audio)
    n_audio, n_control = 200, 50

    def capture() -> None:
        for i in range(n_audio):
            inbox.post_audio(chunk(float(i)))

    def buttons() -> None:
        for i in range(n_control):
            inbox.post(i)

    threads = [threading.Thread(target=capture), threading.Thread(target=buttons)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    await until(lambda: len(log.handled) == n_audio + n_control, "all handled")
    await asyncio.sleep(0)
    assert len(log.handled) == n_audio + n_control  # extra pumps find nothing to do
    assert [e for kind, e in log.handled if kind == "control"] == list(range(n_control))
    assert [at for kind, at in log.handled if kind == "audio"] == [float(i) for i in range(n_audio)]


async def test_control_posted_by_a_handler_runs_in_the_same_pump() -> None:
    log = Log()
    inbox: Inbox

    def control(event: object) -> None:
        log.control(event)
        if event == "barge_in":
            inbox.post("pause")  # a handler posting a follow-up command

    inbox = Inbox(asyncio.get_running_loop(), control, log.audio)
    inbox.post_audio(chunk(0.0))
    inbox.post_audio(chunk(1.0))
    inbox.post("barge_in")
    await until(lambda: len(log.handled) == 4, "all handled")
    assert log.handled[:3] == [("control", "barge_in"), ("control", "pause"), ("audio", 0.0)]
