"""Linear adaptive echo canceller used to *detect* the visitor under the agent's echo.

A partitioned-block frequency-domain NLMS filter (overlap-save, gradient-constrained;
Soo & Pang 1990, the structure of Speex's MDF and WebRTC AEC's linear stage) learns the
speaker->mic impulse response from the played reference and subtracts its prediction
from the mic. The residual keeps the visitor and loses the echo by the filter's ERLE
(15-30 dB on a linear path), so a weak "f"/"th"/"h" onset that sits 10 dB under the
echo's energy stands out in the residual. The residual is only *measured* (band
energies); what goes to the cloud is the untouched mic signal.

numpy is imported lazily (about 50 ms on a desktop, more on a Pi), only when a detector
first needs the filter.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    Array = np.ndarray[Any, Any]
else:
    Array = Any

# Analysis bands (Hz) of the residual: full band, then mid and high where fricative
# onsets ("s", "f", "th", "h") carry their energy while the reply's vowels do not.
BANDS_HZ = ((0.0, 8000.0), (300.0, 1000.0), (1000.0, 4000.0), (4000.0, 8000.0))
STEP = 0.5  # NLMS step per partition (0 < mu < 2; 0.5 = fast, still stable under noise)
POWER_SMOOTHING = 0.9  # normaliser decay after loud audio: -0.5 dB per 20 ms block
REG_FLOOR = 1e3  # mean-square floor of the normaliser (~ -60 dBFS): silence in the ref
DIVERGED_RATIO = 4.0  # residual this many times the mic's recent peak: blown up
PEAK_DECAY = 0.9  # recent mic peak falls 0.46 dB per block (~9 dB per second)
LEAK_HISTORY = 500  # echo-only blocks kept per band for the leak percentile (10 s)
LEAK_PERCENTILE = 0.98  # a misfit worse than 1 block in 50 is rare enough for the margin
LEAK_MIN = 25  # 0.5 s of echo evidence before a leak below 1.0 is trusted
LEAK_EVERY = 10  # blocks between leak updates (200 ms)
LEAK_FLOOR = 10.0 ** (-35.0 / 10.0)  # ERLE is never better than ~35 dB in a real room
# Extra headroom on a band's own-echo floor: 4-8 kHz is where a clipping speaker's
# distortion lands while the reply itself has little there.
OWN_HEADROOM = (1.0, 1.0, 1.0, 10.0 ** (6.0 / 10.0))
READY_FRAMES = 50  # ERLE judged over the last 1 s of echo blocks
READY_ERLE = 10.0 ** (6.0 / 10.0)  # 6 dB: the filter has converged enough to be used
NOISE_RISE = 1.002  # noise-floor tracker: slow rise per block, instant fall
# The minimum-tracked floor sits ~2-3 dB under the mean energy of steady noise in 20 ms
# blocks; the visitor must stand out from the mean.
NOISE_SPREAD = 10.0 ** (3.0 / 10.0)
# The filter's misfit lingers for a while after loud echo (clipping, a moving path, the
# part of the tail past the filter): judge the residual against a decaying envelope of
# the predicted echo, -3 dB per 20 ms block (-30 dB after 200 ms).
ENVELOPE_DECAY = 10.0 ** (-3.0 / 10.0)


@dataclass(frozen=True, slots=True)
class EchoFrame:
    """Band energies (mean squares, int16 units) of one block, per BANDS_HZ."""

    mic: tuple[float, ...]
    residual: tuple[float, ...]
    echo: tuple[float, ...]  # the filter's predicted echo


class EchoCanceller:
    """PB-FDAF over `partitions` blocks of `block` samples (filter length = their product)."""

    def __init__(self, block: int, partitions: int, rate_hz: int = 16000) -> None:
        import numpy as np

        self._np = np
        self.block = block
        self.partitions = partitions
        self._n = 2 * block
        bins = block + 1
        self._w: Array = np.zeros((partitions, bins), dtype=np.complex128)
        self._x: Array = np.zeros((partitions, bins), dtype=np.complex128)  # newest first
        self._last_ref: Array = np.zeros(block)
        self._power: Array = np.zeros(bins)
        freqs = np.arange(bins) * rate_hz / self._n
        # Parseval for rfft of the zero-padded block: bins 1..N/2-1 count twice.
        weight = np.full(bins, 2.0)
        weight[0] = weight[-1] = 1.0
        weight /= self._n * block
        self._band_weights: Array = np.stack(
            [np.where((freqs >= lo) & (freqs < hi), weight, 0.0) for lo, hi in BANDS_HZ]
        )
        self.resets = 0
        self._err: Array | None = None  # error spectrum of the last block, for adapt()
        self._mic_peak = 0.0

    def reset(self) -> None:
        """Forget the learned echo path (the delay moved, or the filter diverged)."""
        self._w[:] = 0.0
        self._x[:] = 0.0
        self._power[:] = 0.0
        self._last_ref[:] = 0.0
        self._err = None
        self.resets += 1

    def forget_reference(self) -> None:
        """A new reference stream starts (another speaker): keep the learned echo path."""
        self._x[:] = 0.0
        self._last_ref[:] = 0.0
        self._err = None

    def process(self, mic: bytes, ref: bytes) -> EchoFrame:
        """One block: S16_LE mono mic and time-aligned reference, both `block` samples."""
        np = self._np
        b = self.block
        d = np.frombuffer(mic, dtype="<i2").astype(np.float64)
        x = np.frombuffer(ref, dtype="<i2").astype(np.float64)
        if len(d) != b or len(x) != b:
            raise ValueError(f"echo filter block is {b} samples, got mic {len(d)}, ref {len(x)}")
        self._x = np.roll(self._x, 1, axis=0)
        self._x[0] = np.fft.rfft(np.concatenate((self._last_ref, x)))
        self._last_ref = x
        y_full = np.einsum("pk,pk->k", self._w, self._x)
        y = np.fft.irfft(y_full, self._n)[b:]
        e = d - y
        spectra = np.fft.rfft(np.concatenate((np.zeros((3, b)), np.stack((d, e, y))), axis=1))
        energies = (np.abs(spectra) ** 2) @ self._band_weights.T  # (mic, e, y) x bands
        frame = EchoFrame(
            tuple(energies[0].tolist()), tuple(energies[1].tolist()), tuple(energies[2].tolist())
        )
        # Diverged = the residual is louder than anything the mic had lately (a merely
        # unconverged filter mispredicts during the reply's gaps: not a reason to reset).
        self._mic_peak = max(frame.mic[0], self._mic_peak * PEAK_DECAY, REG_FLOOR)
        if not np.isfinite(energies).all() or frame.residual[0] > DIVERGED_RATIO * self._mic_peak:
            self.reset()
            self._err = None
            return EchoFrame(frame.mic, frame.mic, tuple(0.0 for _ in BANDS_HZ))
        # NLMS normaliser: the reference power per bin over the whole filter window,
        # never below what has just arrived (a smoothed power lags behind an onset and
        # would make the step 10x too large there: divergence).
        window = np.sum(np.abs(self._x) ** 2, axis=0)
        self._power = np.maximum(POWER_SMOOTHING * self._power, window)
        self._err = spectra[1]
        return frame

    def adapt(self) -> None:
        """Learn from the last processed block (call only when it was echo, not the visitor)."""
        np = self._np
        err_spectrum = self._err
        if err_spectrum is None:
            return
        b = self.block
        reg = REG_FLOOR * self._n * b / 2.0  # the floor in |X|^2 units
        gain = STEP / (self._power + reg)
        grad = np.conj(self._x) * (err_spectrum * gain)
        # Constraint: keep the update a causal `block`-tap filter per partition (overlap-
        # save would otherwise learn circular wrap-around terms).
        g = np.fft.irfft(grad, self._n, axis=1)
        g[:, b:] = 0.0
        self._w += np.fft.rfft(g, axis=1)
        self._err = None


class EchoJudge:
    """How far a block's residual stands above what echo + noise leave in it.

    Per band it learns the *leak* (residual / predicted echo on echo-only blocks, a high
    percentile: the filter's worst recent misfit, which grows with a nonlinear or moving
    echo path; see learn()) and tracks the residual's noise floor. `ready` once the filter removes a
    useful part of the echo; until then the caller keeps its energy-only model.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything (the filter was reset: its misfit will differ)."""
        nb = len(BANDS_HZ)
        self._leaks: list[deque[float]] = [deque(maxlen=LEAK_HISTORY) for _ in range(nb)]
        self._leak = [1.0] * nb
        self._own: list[deque[float]] = [deque(maxlen=LEAK_HISTORY) for _ in range(nb)]
        self._own_leak = [1.0] * nb
        self._noise = [0.0] * nb
        self._envelope = [0.0] * nb
        self._erle: deque[tuple[float, float]] = deque(maxlen=READY_FRAMES)
        self._learned = 0

    @property
    def ready(self) -> bool:
        if len(self._erle) < READY_FRAMES:
            return False
        mic = sum(m for m, _ in self._erle)
        res = sum(r for _, r in self._erle)
        return mic >= READY_ERLE * res

    def track(self, frame: EchoFrame) -> None:
        """Every block: the residual's noise floor and the predicted echo's envelope."""
        for i, energy in enumerate(frame.residual):
            if self._noise[i] == 0.0 or energy < self._noise[i]:
                self._noise[i] = energy
            else:
                self._noise[i] *= NOISE_RISE
            self._envelope[i] = max(frame.echo[i], self._envelope[i] * ENVELOPE_DECAY)

    def double_talk(self, frame: EchoFrame) -> bool:
        """Residual above the whole predicted echo + noise: someone else is talking, so
        the filter must not learn from this block (it would unlearn the echo path).
        Never before `ready`: an unconverged filter's residual is the whole echo."""
        floor = self._envelope[0] + NOISE_SPREAD * self._noise[0]
        return self.ready and frame.residual[0] > floor

    def excess(self, frame: EchoFrame) -> float:
        """Largest band ratio residual / (leak x predicted echo + noise)."""
        best = 0.0
        for i, energy in enumerate(frame.residual):
            floor = self._leak[i] * self._envelope[0]
            own = self._own_leak[i] * self._envelope[i] * OWN_HEADROOM[i]
            floor = min(floor, own)
            floor += NOISE_SPREAD * self._noise[i]
            if floor > 0.0:
                best = max(best, energy / floor)
        return best

    def learn(self, frame: EchoFrame) -> None:
        """An echo-only block (no visitor): update leaks and the ERLE used for `ready`."""
        if frame.echo[0] <= self._noise[0]:
            return  # too little echo to say anything about the filter
        self._erle.append((frame.mic[0], frame.residual[0]))
        # Two misfit measures per band, the smaller floor is used (excess()): against the
        # band's own predicted echo (tight on a linear path), and against the *full-band*
        # prediction (what a clipping speaker spreads over all bands in proportion to
        # the overall level, e.g. into 4-8 kHz where the reply itself had little).
        # Learned against the block's own prediction, judged against the envelope (>= it).
        for i, res in enumerate(frame.residual):
            misfit = max(res - NOISE_SPREAD * self._noise[i], 0.0)
            for hist, echo in ((self._leaks[i], frame.echo[0]), (self._own[i], frame.echo[i])):
                if echo > self._noise[i]:
                    hist.append(misfit / echo)
        self._learned += 1
        if self._learned % LEAK_EVERY == 0:  # sorting 8 x 500 values costs; 5 x a second
            self._leak = [_leak(h) for h in self._leaks]
            self._own_leak = [_leak(h) for h in self._own]


def _leak(hist: deque[float]) -> float:
    if len(hist) < LEAK_MIN:
        return 1.0
    ordered = sorted(hist)
    return max(ordered[int(LEAK_PERCENTILE * (len(ordered) - 1))], LEAK_FLOOR)


def preload() -> None:
    """Import numpy now (about +20 MB RSS, 50+ ms): at start-up, not mid-conversation.

    The daemon calls this when the echo canceller is enabled, so its memory is a fixed
    cost visible right after start instead of a jump during the first reply.
    """
    import numpy  # noqa: F401
