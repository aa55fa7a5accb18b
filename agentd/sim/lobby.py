"""A simulated lobby: the sound a kiosk's microphone hears in a public space, with a script.

Everything is rendered with espeak-ng and sox (no recordings), mixed at levels relative
to a visitor speaking at 1 m (`VISITOR_DBFS`, the 90th percentile of their 20 ms frame
levels), and returned with the truth: who spoke when, where each wake word ended, when
a presence sensor would fire. Levels follow the inverse-distance law (-6 dB per doubling,
a little less in a reverberant lobby): bystanders talking 3-5 m away at -15 and -20 dB,
a TV across the room (news speech at -18 dB, music at -20 dB), door slams as loud as the
visitor, footsteps, and a steady room tone. Bystanders sometimes say "okay" - as people
do - and pass close enough to trip a PIR (`passer_by` presence pulses).

Reproducible: one seeded `random.Random`; the same seed gives the same lobby.

With `room` (a RoomMixer, agentd.sim.lobby_room) the same script is heard by a mic array:
every sound is placed at a distance for its kind and rendered through the room model;
`pcm` is then the channels' mix and `array` the mics.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from agentd.audio import dsp
from agentd.audio.format import AudioFormat
from agentd.audio.near_field import frame_levels, loud_level
from agentd.sim.speech import render_noise, render_speech
from agentd.tts.espeak import sox_to_raw

RATE = 16000
VISITOR_DBFS = -20.0  # a visitor at 1 m on a typical USB / HAT mic with modest gain
ROOM_TONE_DBFS = -58.0  # ventilation and distant traffic
BYSTANDER_REL_DB = (-15.0, -20.0)  # 3 m and 5 m from the kiosk
TV_SPEECH_REL_DB = -18.0
MUSIC_REL_DB = -20.0
DOOR_REL_DB = 0.0  # a slamming fire door is as loud as speech at 1 m, briefly
FOOTSTEP_REL_DB = -22.0
WAKE_PHRASE = "Okay Nabu"
WAKE_GAP_MS = 150  # people say the wake word and go straight on
# espeak-ng 1.51 ignores a variant after "en-gb" ("en-gb+f2" renders plain en-gb): the
# British voice takes its variants as "en+...". Bystanders speak in any of these voices.
BYSTANDER_VOICES = ("en-us", "en", "en-us+f3", "en+m3", "en-us+m7", "en+f2")
# Visitors speak in voices whose clean "Okay Nabu" okay_nabu detects at every visitor rate
# (150/165/180 wpm) wherever the word falls against the model's 30 ms stride, measured
# with `agentd bench engagement --wake-voices` (table in docs/engagement.md). Several espeak
# female variants (en-us+f1..f5, en+f1/f2/f4/f5) are outside the model's training
# distribution, while other female voices (en+f3, the 200-300 Hz anika) are detected: a
# property of espeak's synthesis, not of women's voices, so no visitor speaks in one
# (they stay among the bystanders).
VISITOR_VOICES = ("en-us", "en", "en+f3", "en+m3", "en-us+m7", "en-us+anika")
VISITOR_WPM = (150, 165, 180)

VISITOR_LINES = (
    ("When are you open tomorrow?", "And on Saturday?", "Thanks, goodbye."),
    ("Where is the lift, please?", "Is it wheelchair accessible?", "Great, bye."),
    ("Can you call someone from reception?", "Thank you, that's all."),
    ("I have a parcel for the second floor.", "Who should I give it to?", "Goodbye."),
    ("Is there a toilet on this floor?", "Thanks, bye bye."),
    ("How do I get to the conference room?", "Is it far?", "Thank you, that's all."),
)
BYSTANDER_LINES = (
    "Did you see the game last night? It was unbelievable.",
    "Okay, so we meet at three in the big room.",
    "I think the coffee machine is broken again.",
    "Okay, now where did I put my badge?",
    "She said the report is due on Friday, not Monday.",
    "Are you coming to lunch with us later?",
    "Honestly the traffic this morning was terrible.",
    "Okay, let's go, we are already late.",
    "Can you send me the slides after the meeting?",
    "The new project starts next week, I think.",
)
TV_LINES = (
    "In other news tonight, the city council approved the new budget.",
    "Temperatures will rise to twenty five degrees by the weekend.",
    "The match ended two to one after extra time.",
    "Scientists say the discovery could change how we think about the ocean.",
)
CHORDS = (("A3", "C4", "E4"), ("F3", "A3", "C4"), ("C3", "E3", "G3"), ("G3", "B3", "D4"))


@dataclass(frozen=True, slots=True)
class Span:
    """One sound in the lobby: who made it and when (ms from the start)."""

    source: str  # "visitor", "bystander", "tv", "music", "door", "footsteps"
    start_ms: float
    end_ms: float
    text: str = ""
    visitor: int = -1  # index into Lobby.visitors for visitor speech


@dataclass(frozen=True, slots=True)
class Visitor:
    """Someone who walks up and talks to the kiosk."""

    arrive_ms: float
    leave_ms: float
    says_wake_word: bool
    trips_presence: bool
    wake_end_ms: float | None  # where the spoken wake word ends (truth)
    voice: str = ""  # espeak-ng voice and words per minute
    wpm: int = 0


@dataclass(slots=True)
class Lobby:
    pcm: bytes
    spans: list[Span] = field(default_factory=list)
    visitors: list[Visitor] = field(default_factory=list)
    presence: list[tuple[float, bool]] = field(default_factory=list)  # (at_ms, present)
    array: bytes = b""  # a mic array's channels, interleaved (build_lobby with a room)
    array_channels: int = 0

    @property
    def duration_ms(self) -> float:
        return len(self.pcm) / 2 / RATE * 1000


def _level_db(pcm: bytes) -> float:
    """A talker's level as `near_field.calibrate` measures it (their loud syllables)."""
    levels = frame_levels(pcm, AudioFormat(RATE))
    return loud_level(levels) if levels else dsp.SILENCE_DB


def at_level(pcm: bytes, level_dbfs: float) -> np.ndarray:
    gain = dsp.db_to_gain(level_dbfs - _level_db(pcm))
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) * gain


def voiced_end_ms(pcm: bytes) -> float:
    """End of the last 10 ms above -50 dBFS (espeak pads its output with silence)."""
    size = RATE * 2 * 10 // 1000
    end = 0
    for i in range(0, len(pcm) - size + 1, size):
        if dsp.energy_db(dsp.mean_square(pcm[i : i + size])) > -50.0:
            end = i + size
    return end / 2 / RATE * 1000


class Mixer(Protocol):
    """Where the lobby's sounds go: one mic, or a mic array in a room (lobby_room)."""

    def add(self, signal: np.ndarray, at_ms: float, source: str = "") -> float: ...

    def add_room_tone(self, loop: np.ndarray) -> None: ...

    def output(self, lobby: Lobby) -> None: ...


class _Mixer:
    def __init__(self, duration_ms: float) -> None:
        self.samples = np.zeros(int(duration_ms * RATE / 1000), dtype=np.float32)

    def add(self, signal: np.ndarray, at_ms: float, source: str = "") -> float:
        """Mix in at `at_ms`; returns the end (ms). `source`: what makes the sound."""
        start = int(at_ms * RATE / 1000)
        piece = signal[: max(0, len(self.samples) - start)]
        self.samples[start : start + len(piece)] += piece
        return at_ms + len(signal) / RATE * 1000

    def add_room_tone(self, loop: np.ndarray) -> None:
        reps = -(-len(self.samples) // len(loop))
        self.samples += np.tile(loop, reps)[: len(self.samples)]

    def output(self, lobby: Lobby) -> None:
        lobby.pcm = np.clip(self.samples, -32768, 32767).astype("<i2").tobytes()


# sox seeds its noise generators from the clock unless run with -R (repeatable): without
# it a door slam, a step or a plucked note differ from run to run and so would the lobby.
REPEATABLE = ["-R"]


def _chord(notes: tuple[str, ...], seconds: float) -> bytes:
    effects = ["synth", f"{seconds:.2f}"]
    for note in notes:
        effects += ["pluck", note]
    return sox_to_raw(["-n"], b"", RATE, effects, REPEATABLE)


def door_slam() -> bytes:
    """A slamming door: a 300 ms brown-noise burst, sharp attack, quick decay."""
    return sox_to_raw(
        ["-n"],
        b"",
        RATE,
        ["synth", "0.30", "brownnoise", "fade", "q", "0.003", "0.30", "0.26"],
        REPEATABLE,
    )


def _step() -> bytes:
    return sox_to_raw(
        ["-n"],
        b"",
        RATE,
        ["synth", "0.05", "brownnoise", "fade", "q", "0.002", "0.05", "0.04"],
        REPEATABLE,
    )


def build_lobby(
    minutes: float,
    *,
    seed: int = 14,
    visitors_per_hour: float = 40.0,
    room: Callable[[float], Mixer] | None = None,
    wake_phrase: str = WAKE_PHRASE,
) -> Lobby:
    """Render `minutes` of lobby with its script (see the module docstring); `room`
    makes the mixer of a mic array for that duration (ms); visitors who use the wake word
    say `wake_phrase` (the phrase of the model under test)."""
    rng = random.Random(seed)
    duration = minutes * 60_000
    mixer: Mixer = _Mixer(duration) if room is None else room(duration)
    tone = render_noise(10_000, RATE, ROOM_TONE_DBFS, seed=1)  # repeatable (sox -R)
    mixer.add_room_tone(np.frombuffer(tone, dtype="<i2").astype(np.float32))
    lobby = Lobby(b"")
    _visitors(lobby, mixer, rng, duration, visitors_per_hour, wake_phrase=wake_phrase)
    busy = [(v.arrive_ms - 3000, v.leave_ms + 1000) for v in lobby.visitors]
    _background(lobby, mixer, rng, duration, busy)
    mixer.output(lobby)
    lobby.spans.sort(key=lambda s: s.start_ms)
    lobby.presence.sort()
    return lobby


def _visitors(
    lobby: Lobby,
    mixer: Mixer,
    rng: random.Random,
    duration: float,
    per_hour: float,
    *,
    wake_phrase: str,
) -> None:
    count = max(4, round(duration / 3_600_000 * per_hour))
    slot = duration / count
    for k in range(count):
        # Every combination of wake word and presence, in turn: the quick run has each.
        wake, presence = bool(k % 2 == 0), bool((k // 2) % 2 == 0)
        arrive = k * slot + rng.uniform(0.15, 0.35) * slot
        voice, wpm = rng.choice(VISITOR_VOICES), rng.choice(VISITOR_WPM)
        lines = VISITOR_LINES[k % len(VISITOR_LINES)]
        at = arrive + 2500  # walks up, then speaks
        wake_end: float | None = None
        index = len(lobby.visitors)
        for n, line in enumerate(lines):
            pcm = render_speech(line, RATE, voice, wpm)
            start = at
            said = line
            if n == 0 and wake:
                wake_pcm = render_speech(wake_phrase, RATE, voice, wpm)
                end = voiced_end_ms(wake_pcm)
                wake_end = start + end
                pcm = wake_pcm[: int(end * RATE / 1000) * 2] + bytes(WAKE_GAP_MS * 32) + pcm
                said = f"{wake_phrase}, {line}"
            level = VISITOR_DBFS + rng.uniform(-3, 3)
            end_ms = mixer.add(at_level(pcm, level), start, f"visitor{index}")
            voiced_end = start + voiced_end_ms(pcm)
            lobby.spans.append(Span("visitor", start, voiced_end, said, index))
            at = end_ms + rng.uniform(3000, 5000)  # the kiosk answers, then the follow-up
        leave = at + 1000
        for step_at in np.arange(arrive, arrive + 2000, 500):
            step = at_level(_step(), VISITOR_DBFS + FOOTSTEP_REL_DB + 6)
            mixer.add(step, float(step_at), f"visitor{index}")
        lobby.visitors.append(Visitor(arrive, leave, wake, presence, wake_end, voice, wpm))
        if presence:
            lobby.presence += [(arrive + 1000, True), (leave + 1500, False)]


def _background(
    lobby: Lobby,
    mixer: Mixer,
    rng: random.Random,
    duration: float,
    busy: list[tuple[float, float]],
) -> None:
    at = rng.uniform(2000, 8000)
    while at < duration - 10_000:
        kind = rng.choice(("bystanders", "bystanders", "tv", "music", "door", "footsteps"))
        if kind == "bystanders":
            at = _conversation(lobby, mixer, rng, at)
        elif kind == "tv":
            line = rng.choice(TV_LINES)
            # Plain en-gb: the newsreader's voice since the lobby was first measured (it was
            # written "en-gb+m3", which espeak renders as en-gb, see BYSTANDER_VOICES).
            pcm = render_speech(line, RATE, "en-gb", wpm=175)
            end = mixer.add(at_level(pcm, VISITOR_DBFS + TV_SPEECH_REL_DB), at, "tv")
            lobby.spans.append(Span("tv", at, end, line))
            at = end
        elif kind == "music":
            start = at
            for chord in rng.sample(CHORDS, len(CHORDS)) * 2:
                at = mixer.add(at_level(_chord(chord, 0.6), VISITOR_DBFS + MUSIC_REL_DB), at, "tv")
            lobby.spans.append(Span("music", start, at))
        elif kind == "door":
            end = mixer.add(at_level(door_slam(), VISITOR_DBFS + DOOR_REL_DB), at, "door")
            lobby.spans.append(Span("door", at, end))
            at = end
        else:
            start = at
            for _ in range(rng.randint(6, 14)):
                mixer.add(at_level(_step(), VISITOR_DBFS + FOOTSTEP_REL_DB), at, f"steps{start}")
                at += rng.uniform(450, 600)
            lobby.spans.append(Span("footsteps", start, at))
            if rng.random() < 0.3 and not any(a <= start <= b for a, b in busy):
                # a passer-by close enough to trip a PIR for a moment
                lobby.presence += [(start, True), (start + rng.uniform(2000, 4000), False)]
        at += rng.uniform(1000, 6000)


def _conversation(lobby: Lobby, mixer: Mixer, rng: random.Random, at: float) -> float:
    rel = rng.choice(BYSTANDER_REL_DB)
    voices = rng.sample(BYSTANDER_VOICES, 2)
    at0 = at  # one conversation, two people standing still
    for n in range(rng.randint(2, 5)):
        line = rng.choice(BYSTANDER_LINES)
        pcm = render_speech(line, RATE, voices[n % 2])
        level = VISITOR_DBFS + rel + rng.uniform(-2, 2)
        end = mixer.add(at_level(pcm, level), at, f"bystander{voices[n % 2]}@{at0:.0f}")
        lobby.spans.append(Span("bystander", at, at + voiced_end_ms(pcm), line))
        at = end + rng.uniform(200, 900)
    return at
