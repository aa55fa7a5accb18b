"""Adaptive echo filter (PB-FDAF) and the played-sample reference it reads."""

from __future__ import annotations

import numpy as np
import pytest

from agentd.audio.echo_filter import EchoCanceller, EchoFrame, EchoJudge
from agentd.audio.format import AudioFormat
from agentd.audio.reference import ReferenceTap
from agentd.bench.audio import REPLIES, REVERB_TAPS
from agentd.sim.speech import render_noise, render_speech

RATE = 16000
BLOCK = 320  # 20 ms


def _room(ref: np.ndarray, delay_ms: int, gain_db: float) -> np.ndarray:
    """Linear echo path: delay, the bench's reverberant taps, coupling gain."""
    h = np.zeros(RATE // 5)
    h[0] = 1.0
    for t, a in REVERB_TAPS:
        h[t * RATE // 1000] += a
    wet = np.convolve(ref, h)[: len(ref)] * 10 ** (gain_db / 20)
    return np.concatenate((np.zeros(delay_ms * RATE // 1000), wet))[: len(ref)]


def _pcm(x: np.ndarray) -> bytes:
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


@pytest.mark.timeout(60)
def test_filter_removes_linear_echo_and_keeps_the_visitor() -> None:
    ref = np.frombuffer(render_speech(REPLIES[0], RATE), "<i2").astype(float)
    noise = np.frombuffer(render_noise(len(ref) * 1000 // RATE + 100, RATE, -60.0), "<i2")
    mic = _room(ref, 30, -6.0) + noise[: len(ref)].astype(float)
    visitor = np.frombuffer(render_speech("Fine, thanks.", RATE), "<i2").astype(float) * 0.1
    at = len(ref) - len(visitor) - 20 * BLOCK  # the visitor talks near the end, quietly
    at -= at % BLOCK
    mic[at : at + len(visitor)] += visitor
    aec = EchoCanceller(BLOCK, 8, RATE)  # reference aligned 10 ms early: taps 10..170 ms
    aligned = np.concatenate((np.zeros(20 * RATE // 1000), ref))[: len(ref)]
    echo_only: list[EchoFrame] = []
    overlap: list[EchoFrame] = []
    for k in range(0, len(ref) - BLOCK + 1, BLOCK):
        frame = aec.process(_pcm(mic[k : k + BLOCK]), _pcm(aligned[k : k + BLOCK]))
        if k < at - BLOCK:
            aec.adapt()
            echo_only.append(frame)
        elif at <= k < at + len(visitor):
            overlap.append(frame)
    late = echo_only[len(echo_only) // 2 :]  # converged
    erle = 10 * np.log10(sum(f.mic[0] for f in late) / sum(f.residual[0] for f in late))
    assert erle >= 15.0, erle
    assert aec.resets == 0
    # The visitor survives: over the overlap the residual holds the visitor's energy,
    # which is far below the echo in the mic.
    vis_energy = float(np.mean(visitor**2))
    res_energy = float(np.mean([f.residual[0] for f in overlap]))
    mic_energy = float(np.mean([f.mic[0] for f in overlap]))
    assert 0.5 * vis_energy <= res_energy <= 2.0 * vis_energy
    assert mic_energy >= 3.0 * vis_energy


def test_filter_rejects_wrong_block_and_resets_on_divergence() -> None:
    aec = EchoCanceller(BLOCK, 2, RATE)
    with pytest.raises(ValueError, match="320 samples"):
        aec.process(bytes(100), bytes(2 * BLOCK))
    loud = _pcm(np.full(BLOCK, 20000.0))
    aec._w[:] = 1e6  # a blown-up filter (what a wrong step size would produce)
    aec.process(bytes(2 * BLOCK), loud)  # fills the reference history
    frame = aec.process(bytes(2 * BLOCK), loud)
    assert aec.resets >= 1 and not aec._w.any()
    assert frame.echo == (0.0, 0.0, 0.0, 0.0)


def test_judge_flags_double_talk_and_residual_above_the_learned_leak() -> None:
    judge = EchoJudge()
    quiet = EchoFrame((1e2,) * 4, (1e2,) * 4, (0.0,) * 4)
    judge.track(quiet)  # noise floor
    echo_only = EchoFrame((1e6,) * 4, (1e4,) * 4, (1e6,) * 4)  # 20 dB ERLE
    for _ in range(60):
        judge.track(echo_only)
        judge.learn(echo_only)
    assert judge.ready
    assert not judge.double_talk(echo_only)
    assert judge.excess(echo_only) < 1.5
    visitor = EchoFrame((1.2e6,) * 4, (2e5,) * 4, (1e6,) * 4)  # residual 13 dB over leak
    judge.track(visitor)
    assert judge.excess(visitor) > 10.0
    talk = EchoFrame((5e6,) * 4, (4e6,) * 4, (1e6,) * 4)
    judge.track(talk)
    assert judge.double_talk(talk)
    judge.reset()
    assert not judge.ready and not judge.double_talk(talk)


def test_reference_samples_are_exact_with_silence_between_and_cut_on_flush() -> None:
    fmt = AudioFormat(RATE)
    tap = ReferenceTap(fmt)
    a = np.arange(1, 321, dtype="<i2").tobytes()  # 20 ms at 1000 ms
    b = np.arange(1000, 1320, dtype="<i2").tobytes()  # 20 ms at 1020 ms (back to back)
    tap.push(a, 1000.0)
    tap.push(b, 1020.0)
    got = np.frombuffer(tap.samples(1010.0, 320), "<i2")
    assert got[:160].tolist() == list(range(161, 321))
    assert got[160:].tolist() == list(range(1000, 1160))
    before = np.frombuffer(tap.samples(990.0, 320), "<i2")
    assert not before[:160].any() and before[160:].tolist() == list(range(1, 161))
    tap.push_silence_after(1030.0)  # flushed mid-chunk: the rest was never heard
    after = np.frombuffer(tap.samples(1020.0, 320), "<i2")
    assert after[:160].tolist() == list(range(1000, 1160)) and not after[160:].any()
