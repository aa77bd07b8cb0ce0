"""Side talk: speech over the reply that is not addressed to the assistant — another person in
the room, a TV, our own voice coming back — and so must not cancel it. Pure numpy, no state
beyond the user's calibrated voice.

What the runtime can know about one overlapping utterance, and what this module uses:

- **level relative to this user's own turns** (`VoiceProfile`, calibrated on the frames of the
  user's earlier turns, the ones that did not overlap the assistant): someone across the room or
  a TV reaches the microphone well below the user's own voice;
- **spectral shape distance** from the user's voice: the mean of each frame's level-free log
  spectrum in 16 bands (150 Hz - 6 kHz), compared with the user's mean; a loudspeaker, another
  voice or a distant talker's reverberant, dull spectrum differs from the close voice the
  profile was calibrated on;
- **our own ducking**: when the floor ducked the reply by `duck_db` and the overlapping sound
  fell by at least half of that, it is the reply coming back through the room, not a person;
- **words**: an interrupt phrase ("stop", "wait", ...) is addressed, whatever the level, and
  so is an utterance of only a turn word ("no", "what?": `word_classes.QUIET_TURN_WORDS`);
  a quieter one that opens with an addressed form ("tell me more", "can you ...":
  `addressed.addressed_form`) is the user down to `SideTalkConfig.addressed_db`.

`judge` combines them (thresholds in `SideTalkConfig`); docs/turn_detection.md states what it
can and cannot tell apart.
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bargein.decide.addressed import addressed_form
from bargein.decide.backchannel import UserLevel
from bargein.decide.lexicon import Lexicon, normalize
from bargein.decide.word_classes import QUIET_TURN_WORDS

F32 = NDArray[np.float32]

BANDS = 16
_NFFT = 512
_RATE = 16000
_EDGES = np.geomspace(150.0, 6000.0, BANDS + 1)


def _band_matrix() -> NDArray[np.float64]:
    freqs = np.fft.rfftfreq(_NFFT, 1 / _RATE)
    w = np.zeros((BANDS, len(freqs)))
    for b in range(BANDS):
        w[b] = (freqs >= _EDGES[b]) & (freqs < _EDGES[b + 1])
    out: NDArray[np.float64] = w / w.sum(axis=1, keepdims=True)
    return out


_BANDS_W = _band_matrix()


@functools.cache
def _window(frame: int) -> NDArray[np.float64]:
    w: NDArray[np.float64] = np.hanning(frame) / 32768.0
    return w


def frame_shapes(pcm: NDArray[np.int16], frame: int) -> F32:
    """Each whole `frame`-sample frame of 16 kHz `pcm` as its level-free spectral shape: the
    log energy (dB) in 16 bands minus the frame's mean over the bands. Shape (frames, 16)."""
    n = len(pcm) // frame
    if n == 0:
        return np.zeros((0, BANDS), np.float32)
    x = pcm[: n * frame].reshape(n, frame) * _window(frame)
    spec = np.fft.rfft(x, _NFFT, axis=1)
    power = spec.real**2 + spec.imag**2
    db = 10.0 * np.log10(power @ _BANDS_W.T + 1e-12)
    shapes: F32 = (db - db.mean(axis=1, keepdims=True)).astype(np.float32)
    return shapes


class VoiceProfile:
    """This user's voice: their level (`UserLevel`, the 90th percentile of their frames) and
    the mean spectral shape of their voiced frames, over the last `keep` frames."""

    def __init__(self, keep: int = 3000, min_frames: int = 25) -> None:
        self.user = UserLevel(keep, min_frames)
        self._shapes: deque[F32] = deque(maxlen=keep)
        self.min_frames = min_frames

    def observe(self, level_dbfs: float, shape: F32 | None = None) -> None:
        if not np.isfinite(level_dbfs):
            return
        self.user.observe(level_dbfs)
        if shape is not None and level_dbfs > _VOICED_DBFS:
            self.observe_shape(shape)

    def observe_shape(self, shape: F32) -> None:
        """A voiced frame's shape whose level is already counted (or must not be)."""
        if shape.shape == (BANDS,) and np.all(np.isfinite(shape)):
            self._shapes.append(shape)

    @property
    def level(self) -> float | None:
        return self.user.level

    @property
    def shape(self) -> F32 | None:
        if len(self._shapes) < self.min_frames:
            return None
        mean: F32 = np.mean(np.stack(self._shapes), axis=0).astype(np.float32)
        return mean


# Frames quieter than this carry no voice to learn a spectral shape from.
_VOICED_DBFS = -50.0


@dataclass(frozen=True)
class SideTalkConfig:
    quiet_db: float = -3.0  # this far below the user's level: not the user talking to us
    # A spectrum this different from the user's (RMS over the bands, dB) with the level at
    # least `quiet_db / 2` below the user's: another voice or a loudspeaker, quieter than them.
    # None (the default): off. Where the person who interrupts is not the one who made the
    # request (the research scenarios mix recordings), true interruptions lie 1.8-10 dB from
    # the calibrated shape and side talk 3.5-6.8 dB: the rule never turned a cancel of side
    # talk into a restore on the 31 scenarios or the held-out set, and turned one held-out
    # interruption into a miss (docs/turn_detection.md). The distance is still reported.
    far_shape_db: float | None = None
    # The overlap fell by this fraction of the duck depth once the duck took effect: our echo.
    echo_drop: float = 0.5
    min_frames: int = 5  # frames of the utterance needed before any level cue counts
    echo_frames: int = 10  # frames heard ducked needed before the echo cue counts
    # This share of the utterance's word pairs are the assistant's own recent words: our echo.
    echo_words: float = 0.6
    # A level verdict of side talk within `provisional_db` below `quiet_db` is provisional
    # while less than `settle_ms` of a still-going utterance has been heard: the first word's
    # envelope is not the speaker's level (one speaker's level varies 3-6 dB within seconds,
    # docs/turn_detection.md), and a user speaking a little softer must not be lost for good.
    provisional_db: float = 3.0
    settle_ms: float = 800.0
    # An utterance that would be side talk by level but opens with an addressed form ("tell me
    # more", "can you ...": `addressed.addressed_form`) is the user, quieter than their turns
    # (a held-out interruption at -4.9 dB was missed), unless it is more than this far below the
    # user's level (someone across the room or a TV). None: off.
    addressed_db: float | None = -12.0

    def __post_init__(self) -> None:
        if not (-40.0 <= self.quiet_db < 0.0 and (self.far_shape_db is None
                                                  or self.far_shape_db > 0.0)):
            raise ValueError("quiet_db must be in -40..0 and far_shape_db > 0 (or None)")
        if not (0.0 < self.echo_drop <= 1.0 and self.min_frames >= 1):
            raise ValueError("echo_drop must be in (0, 1] and min_frames >= 1")
        if not (0.0 <= self.provisional_db <= 40.0 and 0.0 <= self.settle_ms <= 10_000.0):
            raise ValueError("provisional_db must be in 0..40 and settle_ms in 0..10000")
        if self.addressed_db is not None and not -60.0 <= self.addressed_db <= self.quiet_db:
            raise ValueError("addressed_db must be in -60..quiet_db (or None)")


@dataclass(frozen=True)
class SideTalkVerdict:
    side_talk: bool
    reason: str
    relative_db: float | None = None  # utterance level minus the user's (90th percentiles)
    distance_db: float | None = None  # spectral shape distance from the user's voice
    drop_db: float | None = None  # level before the duck took effect minus after it
    # False: side talk by level so far, but near the margin on too little of the utterance
    # (`SideTalkConfig.settle_ms`); judge it again with more frames.
    settled: bool = True


def _p90(levels: Sequence[float]) -> float:
    return float(np.percentile(np.asarray(levels, np.float64), 90))


def _ours(tokens: list[str], our_words: Sequence[str]) -> float | None:
    """The share of the utterance's word pairs that the assistant itself said lately (None:
    fewer than two pairs to tell by). Pairs, not words: "the" and "robot" are everyone's."""
    if len(tokens) < 3 or not our_words:
        return None
    ours = normalize(" ".join(our_words))
    said = set(itertools.pairwise(ours))
    pairs = list(itertools.pairwise(tokens))
    return sum(p in said for p in pairs) / len(pairs)


def judge(
    levels: Sequence[float],
    shapes: Sequence[F32],
    text: str,
    profile: VoiceProfile,
    *,
    config: SideTalkConfig | None = None,
    lexicon: Lexicon | None = None,
    duck_db: float | None = None,
    unducked: Sequence[float] = (),
    ducked: Sequence[float] = (),
    our_words: Sequence[str] = (),
    heard_ms: float | None = None,
    final: bool = False,
) -> SideTalkVerdict:
    """Is this utterance (its frame levels and shapes so far, its latest words) side talk?

    With the reply ducked by `duck_db` during it: `unducked` are its frame levels from before
    the duck, `ducked` those from once the duck can have reached the microphone (after the
    longest echo delay the caller allows for). `our_words`: the words the assistant sent
    lately (its echo says those). `heard_ms`: how much of the utterance the levels cover while
    it is still going (None: it ended, or the caller cannot wait), for `settled`. `final`:
    `text` is the recognizer's final (an utterance of only a turn word is addressed)."""
    c = config or SideTalkConfig()
    lex = lexicon or Lexicon.of()
    phrase, _ = lex.scan(normalize(text))
    if phrase is not None:
        return SideTalkVerdict(False, f"addressed: interrupt phrase {phrase!r}")
    tokens = normalize(text)
    if final and tokens and set(tokens) <= QUIET_TURN_WORDS:
        return SideTalkVerdict(False, f"addressed: {' '.join(tokens)!r} alone")
    share = _ours(normalize(text), our_words)
    if share is not None and share >= c.echo_words:
        return SideTalkVerdict(True, f"our own words ({share:.0%} of its word pairs): echo")
    if len(levels) < c.min_frames:
        return SideTalkVerdict(False, "too short to judge")
    drop = None
    if duck_db is not None and len(unducked) >= 3 and len(ducked) >= c.echo_frames:
        # Loudest parts (90th percentiles): speech's own pauses do not look like a drop.
        drop = _p90(unducked) - _p90(ducked)
        if drop >= -duck_db * c.echo_drop:
            return SideTalkVerdict(True, f"fell {drop:.1f} dB with our duck: echo", None, None,
                                   drop)
    ref = profile.level
    if ref is None:
        return SideTalkVerdict(False, "no calibrated user level", drop_db=drop)
    rel = _p90(levels) - ref
    user_shape = profile.shape
    dist = None
    if user_shape is not None and len(shapes) >= c.min_frames:
        mean = np.mean(np.stack(list(shapes)), axis=0)
        dist = float(np.sqrt(np.mean((mean - user_shape) ** 2)))
    settled = (heard_ms is None or heard_ms >= c.settle_ms
               or rel <= c.quiet_db - c.provisional_db)
    if not final and tokens and set(tokens) <= QUIET_TURN_WORDS:
        settled = False  # a soft "no" so far: its final says whether that is all (addressed)
    far = c.far_shape_db
    by_shape = dist is not None and far is not None and dist >= far and rel <= c.quiet_db / 2
    if (rel <= c.quiet_db or by_shape) and c.addressed_db is not None and rel > c.addressed_db:
        form = addressed_form(tokens, normalize(" ".join(our_words)))
        if form is not None:
            return SideTalkVerdict(False, f"addressed: {form}, {rel:+.1f} dB for this user", rel,
                                   dist, drop)
    if rel <= c.quiet_db:
        return SideTalkVerdict(True, f"{rel:+.1f} dB for this user", rel, dist, drop, settled)
    if by_shape:
        return SideTalkVerdict(True, f"{rel:+.1f} dB, another voice ({dist:.1f} dB)", rel, dist,
                               drop, settled)
    return SideTalkVerdict(False, f"{rel:+.1f} dB for this user", rel, dist, drop)
