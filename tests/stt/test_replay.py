"""ReplayBuffer: re-chunking, endpoint placement, replay after rewind, the size bound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentd.stt._replay import ENDPOINT, ReplayBuffer

pytestmark = pytest.mark.timeout(30)

CHUNK = 8


def drain(buf: ReplayBuffer) -> list[bytes | str]:
    out: list[bytes | str] = []
    while (item := buf.next_item()) is not None:
        out.append(item)
    return out


@given(st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=20))
def test_chunks_carry_every_byte_in_order_then_one_endpoint(pieces: list[bytes]) -> None:
    buf = ReplayBuffer(CHUNK, 10_000)
    sent: list[bytes | str] = []
    for piece in pieces:
        buf.append(piece)
        sent += drain(buf)  # only whole chunks while the utterance is open
        assert all(isinstance(i, bytes) and len(i) == CHUNK for i in sent)
    buf.end()
    sent += drain(buf)
    assert sent[-1] == ENDPOINT and sent.count(ENDPOINT) == 1
    audio = b"".join(i for i in sent if isinstance(i, bytes))
    fed = b"".join(pieces)
    assert all(isinstance(i, bytes) and len(i) == CHUNK for i in sent[:-1])
    assert audio[: len(fed)] == fed and not any(audio[len(fed) :])  # zero padded tail


def test_rewind_replays_unacknowledged_segments_with_their_endpoints() -> None:
    buf = ReplayBuffer(CHUNK, 10_000)
    buf.append(b"a" * 16)
    buf.end()
    buf.append(b"b" * 8)
    assert drain(buf) == [b"a" * 8, b"a" * 8, ENDPOINT, b"b" * 8]
    buf.rewind()
    assert drain(buf) == [b"a" * 8, b"a" * 8, ENDPOINT, b"b" * 8]
    first = buf.acknowledge()
    assert first is not None and first.pcm == b"a" * 16
    buf.rewind()
    assert drain(buf) == [b"b" * 8]


def test_acknowledge_inside_an_open_utterance_keeps_only_the_unsent_rest() -> None:
    buf = ReplayBuffer(CHUNK, 10_000)
    buf.append(b"x" * 8)
    assert drain(buf) == [b"x" * 8]
    buf.append(b"y" * 8)
    assert buf.acknowledge() is None
    buf.rewind()
    assert drain(buf) == [b"y" * 8]


def test_bound_drops_oldest_audio() -> None:
    buf = ReplayBuffer(CHUNK, 24)
    buf.append(b"1" * 16)
    buf.end()
    buf.append(b"2" * 16)
    assert sum(len(s.pcm) for s in buf.segments) == 24
    assert buf.dropped_bytes == 8
    assert bytes(buf.segments[0].pcm) == b"1" * 8


def test_empty_utterance_is_discarded_and_drop_through_abandons() -> None:
    buf = ReplayBuffer(CHUNK, 100)
    buf.open()
    assert buf.end() is None and not buf.pending
    buf.append(b"a" * 8)
    seg = buf.end()
    assert seg is not None
    buf.append(b"b" * 8)
    buf.drop_through(seg.seg_id)
    assert [bytes(s.pcm) for s in buf.segments] == [b"b" * 8]


def test_pad_open_segment_lets_a_partial_chunk_go_out_now() -> None:
    buffer = ReplayBuffer(chunk_bytes=1600, max_bytes=1 << 20)
    buffer.open()
    buffer.append(b"\x01\x02" * 500)  # 1000 bytes: not a whole chunk yet
    assert buffer.next_item() is None
    assert buffer.pad_open_segment() == 600
    chunk = buffer.next_item()
    assert isinstance(chunk, bytes) and len(chunk) == 1600
    assert chunk[:1000] == b"\x01\x02" * 500 and chunk[1000:] == bytes(600)
    assert buffer.pad_open_segment() == 0  # already aligned: nothing to add
    assert buffer.next_item() is None
