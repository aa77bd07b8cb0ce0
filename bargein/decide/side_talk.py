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
- **whose voice** (opt-in, `SideTalkConfig.own_voice` / `other_voice`): with
  ``voice_model = "mfcc"`` the Mahalanobis distance of the utterance's mean MFCC from the
  user's, in the covariance of the user's voiced frames (`bargein.dsp.mfcc`; one MFCC per
  20 ms frame, carried after the 16 band values in each row of `VoiceLevels.shapes` when the
  policy asks for it); with ``"dvector"`` the cosine distance of a trained speaker
  embedding (`speaker_voice`; each row carries the frame's 320 samples after its bands);
- **words**: an interrupt phrase ("stop", "wait", ...) is addressed down to
  `SideTalkConfig.addressed_db` below the user's level, and so is an utterance of only a turn
  word ("no", "what?": `word_classes.QUIET_TURN_WORDS`); a quieter one that opens with an
  addressed form ("tell me more", "can you ...":
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
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from bargein.decide.addressed import addressed_form, for_someone_else, opens_form, turn_form
from bargein.decide.backchannel import UserLevel
from bargein.decide.lexicon import Lexicon, normalize
from bargein.decide.word_classes import QUIET_TURN_WORDS
from bargein.dsp.mfcc import CEPS, Gaussian, mahalanobis

if TYPE_CHECKING:
    from bargein.decide.speaker_voice import SpeakerCue

F32 = NDArray[np.float32]
VoiceModel = Literal["mfcc", "dvector"]

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


VOICE_ROW = BANDS + CEPS  # a frame's row with the voice check: its 16-band shape, its MFCCs
PCM_FRAME = 320  # the floor's 20 ms frame at 16 kHz
SPEAKER_ROW = BANDS + PCM_FRAME  # with the d-vector check: its band shape, its samples


def split_row(row: F32) -> tuple[F32, F32 | None]:
    """A frame's row as (its band shape, its MFCCs or samples, or None when it carries none)."""
    if row.shape in ((VOICE_ROW,), (SPEAKER_ROW,)):
        return row[:BANDS], row[BANDS:]
    return row, None


class VoiceProfile:
    """This user's voice: their level (`UserLevel`, the 90th percentile of their frames), the
    mean spectral shape of their voiced frames and, when the rows carry them, those frames'
    MFCCs (for `voice`) over the last `keep` frames, or their samples (for `speech`) over the
    last `keep_speech` (3.2 s: two partials of the encoder)."""

    def __init__(self, keep: int = 3000, min_frames: int = 25, keep_speech: int = 160) -> None:
        self.user = UserLevel(keep, min_frames)
        self._shapes: deque[F32] = deque(maxlen=keep)
        self._ceps: deque[F32] = deque(maxlen=keep)
        self._pcm: deque[F32] = deque(maxlen=keep_speech)
        self._voice: Gaussian | None = None  # of `_ceps`, until a frame is added
        self.speech_version = 0  # counts the voiced frames whose samples were learned
        self.min_frames = min_frames

    def observe(self, level_dbfs: float, shape: F32 | None = None, voice: bool = True) -> None:
        """A frame of the user's turn: its level, and its row when voiced (the band shape and,
        with `voice`, the MFCCs: False for a turn that began over the assistant, which may be
        someone the floor wrongly took for the user)."""
        if not np.isfinite(level_dbfs):
            return
        self.user.observe(level_dbfs)
        if shape is not None and level_dbfs > _VOICED_DBFS and self.observe_shape(shape) \
                and voice:
            tail = split_row(shape)[1]
            if tail is not None and tail.shape == (PCM_FRAME,):
                self._pcm.append(tail)
                self.speech_version += 1
            elif tail is not None:
                self._ceps.append(tail)
                self._voice = None

    def observe_shape(self, shape: F32) -> bool:
        """A voiced frame's band shape whose level is already counted (or must not be): an
        interruption's, whose MFCCs are not learned (the floor may have taken someone else's
        voice for the user's). False: not a valid row."""
        band = split_row(shape)[0]
        if band.shape == (BANDS,) and np.all(np.isfinite(shape)):
            self._shapes.append(band)
            return True
        return False

    @property
    def level(self) -> float | None:
        return self.user.level

    @property
    def shape(self) -> F32 | None:
        if len(self._shapes) < self.min_frames:
            return None
        mean: F32 = np.mean(np.stack(self._shapes), axis=0).astype(np.float32)
        return mean

    def voice(self, min_frames: int) -> Gaussian | None:
        """The Gaussian of the user's voiced frames' MFCCs (None: fewer than `min_frames`)."""
        if len(self._ceps) < min_frames:
            return None
        if self._voice is None:
            self._voice = gaussian(np.stack(self._ceps))
        return self._voice

    def speech(self, min_frames: int) -> list[F32] | None:
        """The samples of the user's latest voiced frames, oldest first (None: fewer than
        `min_frames`)."""
        return list(self._pcm) if len(self._pcm) >= min_frames else None


def gaussian(ceps: NDArray[np.floating]) -> Gaussian:
    g = Gaussian()
    g.add(np.asarray(ceps, np.float64))
    return g


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
    # The overlap fell by this fraction of the duck depth once the duck took effect: our echo;
    # by more than `echo_drop_max` times it (into silence: 98-103 dB on the research sets,
    # echoes 7-27 dB), it stopped rather than followed our gain.
    echo_drop: float = 0.5
    echo_drop_max: float = 2.0
    # A fall of less than this fraction of the duck is echo only when the voice is not the
    # user's own (at most `own_voice`): our echo falls by nearly all of it or more (12-28 dB for
    # a 15 dB duck on the seen sets), a user talking over it by whatever their speech does
    # (9.4-13.5 dB). None: any fall from `echo_drop` on is echo.
    echo_drop_sure: float | None = None
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
    # user's level (someone across the room or a TV); an interrupt phrase further down is
    # side talk too (a PA's "please wait"). None: off (an interrupt phrase at any level).
    addressed_db: float | None = -12.0
    # Whose voice (docs/research.md, "Whose voice is it"): the Mahalanobis distance of the
    # utterance's voiced frames' mean MFCC from the user's (`mfcc.mahalanobis`). At most
    # `own_voice`: the user's own voice, so side talk by level down to `own_voice_db` is the
    # user speaking softer (and such a level verdict is provisional until `settle_ms` while
    # the voice is not another's); at least `other_voice` with the level at most
    # `other_voice_db` above the user's: another voice at their level, side talk (provisional
    # until `settle_ms`). Judged once the utterance has `voice_frames` voiced frames and the
    # user's voice `profile_frames`; with `other_voice`, an utterance at the user's level that
    # is still too short to tell, or whose distance lies between the two (with `own_voice`),
    # keeps the reply ducked for up to `voice_wait_ms` of it. None
    # (the default): off. `VOICE_CHECK` holds the values chosen on the shared recordings.
    # `voice_model`: "mfcc" (the distance above) or "dvector" (the cosine distance of
    # Resemblyzer's speaker embedding, `speaker_voice`; its thresholds `VOICE_CHECK_DVECTOR`).
    own_voice: float | None = None
    other_voice: float | None = None
    own_voice_db: float = -12.0
    other_voice_db: float = 3.0
    voice_frames: int = 20
    profile_frames: int = 60
    voice_wait_ms: float = 500.0
    voice_model: VoiceModel = "mfcc"
    # Voiced frames an utterance needs before `other_voice` can call it another voice (None:
    # `voice_frames`); a shorter utterance that ends is left to the level.
    other_frames: int | None = None
    # Once `settle_ms` of it was heard (or it ended), an utterance that rule 4 would reject, at
    # a distance at most this, is the user's own voice too (None: only `own_voice` says so).
    own_voice_settled: float | None = None
    # Another voice whose words so far may open an addressed form ("tell", "could": the next
    # word may make it one, which beats the voice) stays provisional until this much of it.
    opener_wait_ms: float = 1500.0
    # A voice already at least `other_voice` away on fewer than `other_frames` voiced frames
    # (speech with gaps: few voiced frames in `voice_wait_ms`) stays held until this much of
    # it, so the frames that would make it "another voice" can come. None: `voice_wait_ms`.
    other_wait_ms: float | None = None
    # At the user's level, an utterance at most `early_own_voice` from the user's voice on
    # `early_frames` voiced frames (fewer than `voice_frames`) is the user at once, not held
    # for the rest (the values: `VOICE_CHECK_DVECTOR`). None: off.
    early_frames: int | None = None
    early_own_voice: float | None = None
    # With the other-voice rule, at the user's level: an addressed form one person asks another
    # (`addressed.for_someone_else`: "can you hold this", "did you bring your card", not "can
    # you repeat that") does not beat the voice; the voice and level rules judge it.
    requests_to_others: bool = False

    def __post_init__(self) -> None:
        if not (-40.0 <= self.quiet_db < 0.0 and (self.far_shape_db is None
                                                  or self.far_shape_db > 0.0)):
            raise ValueError("quiet_db must be in -40..0 and far_shape_db > 0 (or None)")
        if not (0.0 < self.echo_drop <= 1.0 <= self.echo_drop_max and self.min_frames >= 1):
            raise ValueError("echo_drop must be in (0, 1], echo_drop_max >= 1, min_frames >= 1")
        if self.echo_drop_sure is not None and not self.echo_drop <= self.echo_drop_sure <= 1.0:
            raise ValueError("echo_drop_sure must be in echo_drop..1 (or None)")
        if not (0.0 <= self.provisional_db <= 40.0 and 0.0 <= self.settle_ms <= 10_000.0):
            raise ValueError("provisional_db must be in 0..40 and settle_ms in 0..10000")
        if self.addressed_db is not None and not -60.0 <= self.addressed_db <= self.quiet_db:
            raise ValueError("addressed_db must be in -60..quiet_db (or None)")
        if any(v is not None and not 0.0 < v < 1e6 for v in (self.own_voice, self.other_voice)):
            raise ValueError("own_voice and other_voice must be > 0 (or None)")
        if (self.own_voice is not None and self.other_voice is not None
                and self.own_voice >= self.other_voice):
            raise ValueError("own_voice must be below other_voice")
        if not (-60.0 <= self.own_voice_db <= self.quiet_db < self.other_voice_db <= 40.0):
            raise ValueError("need -60 <= own_voice_db <= quiet_db < other_voice_db <= 40")
        if self.voice_frames < 2 or self.profile_frames < 2:
            raise ValueError("voice_frames and profile_frames must be >= 2")
        if self.other_frames is not None and self.other_frames < self.voice_frames:
            raise ValueError("other_frames must be >= voice_frames (or None)")
        if not (0.0 <= self.voice_wait_ms <= 10_000.0 and 0.0 <= self.opener_wait_ms <= 10_000.0):
            raise ValueError("voice_wait_ms and opener_wait_ms must be in 0..10000")
        if self.other_wait_ms is not None and not (self.voice_wait_ms <= self.other_wait_ms
                                                   <= 10_000.0):
            raise ValueError("other_wait_ms must be in voice_wait_ms..10000 (or None)")
        if (self.early_frames is None) != (self.early_own_voice is None) or (
                self.early_frames is not None and not 2 <= self.early_frames < self.voice_frames):
            raise ValueError("early_frames (2..voice_frames - 1) needs early_own_voice")
        if self.early_own_voice is not None and not (
                0.0 < self.early_own_voice < (self.other_voice or 1e6)):
            raise ValueError("early_own_voice must be > 0 and below other_voice")
        if self.voice_model not in ("mfcc", "dvector"):
            raise ValueError(f"unknown voice_model {self.voice_model!r}")

    @classmethod
    def for_policy(cls, quiet_db: float, *, voice: bool,
                   speaker: bool = False) -> SideTalkConfig:
        """The floor's config: the policy's `side_talk_db`; with `side_talk_voice`, the
        own-voice rule at `VOICE_CHECK`'s threshold. Not the other-voice rule: on the research
        sets it cost 60-70 ms of detection p50 (the wait for enough voice) and missed an
        interruption taken from another recording than the request, for one side talk
        restored (docs/research.md, "Whose voice is it"); set `other_voice` to use it.
        With `side_talk_speaker` (`speaker`), the d-vector's own-voice and other-voice rules
        at `VOICE_CHECK_DVECTOR` (docs/research.md, "A trained speaker embedding")."""
        if speaker:
            d = VOICE_CHECK_DVECTOR
            return cls(quiet_db=quiet_db, voice_model="dvector", own_voice=d["own_voice"],
                       other_voice=d["other_voice"], other_voice_db=d["other_voice_db"],
                       voice_wait_ms=d["voice_wait_ms"], other_frames=int(d["other_frames"]),
                       own_voice_settled=d["own_voice_settled"],
                       profile_frames=int(d["profile_frames"]),
                       other_wait_ms=d.get("other_wait_ms"),
                       early_frames=int(d["early_frames"]),
                       early_own_voice=d["early_own_voice"],
                       echo_drop_sure=d["echo_drop_sure"],
                       requests_to_others=True)
        if voice:
            return cls(quiet_db=quiet_db, own_voice=VOICE_CHECK["own_voice"])
        return cls(quiet_db=quiet_db)

    @property
    def voice_check(self) -> bool:
        return self.own_voice is not None or self.other_voice is not None


# The voice check's thresholds (`SideTalkConfig(**VOICE_CHECK)`; the policy's
# `side_talk_voice` uses `own_voice` only: `SideTalkConfig.for_policy`), chosen on the shared
# recordings, not on the scenarios (bench/voice_separation.py: 1.5 or 2.5 s calibrated, 0.4-1 s
# judged, one MFCC per 20 ms frame): below own_voice lie 1-5 % of other speakers' windows and
# 32-86 % of the same speaker's; above other_voice 1-2.4 % of the same speaker's and 30-49 %
# of others'.
VOICE_CHECK: dict[str, float] = {"own_voice": 0.25, "other_voice": 0.9}
# The d-vector's (cosine distance). own_voice from the shared recordings
# (bench/voice_separation.py, ``dvector_unpadded``, 2.5 s calibrated, 0.5 / 1 s judged): below
# it lie < 2 % of other speakers' windows (AMI's one room: < 1 %) and 35-65 % of the same
# speaker's. other_voice, other_voice_db and voice_wait_ms tuned on the research sets
# (docs/research.md, "A trained speaker embedding"): above 0.42 lie ~5 % of the same
# speaker's 1 s windows and ~90 % of others'; at 0.4-0.6 s the two overlap, so an utterance
# between the thresholds waits (ducked) for up to 1 s of it; another voice up to 6 dB above
# the user's level (a person beside them reaches +3..+7 dB in the first 0.3 s). other_wait_ms
# (eighth round): AMI A on C's headset read d = 0.55 from 0.9 s but had 40 voiced frames only
# at 1.3 s, and was cancelled at voice_wait_ms (docs/research.md, "eighth round").
# early_frames, early_own_voice (twelfth round): on 12 voiced frames other voices at the user's
# level read >= 0.45 and our echo >= 0.37 on the seen sets; 21 % of the user's own
# interruptions there read <= 0.36. echo_drop_sure (thirteenth round): with the 15 dB duck our
# echo alone fell 12.0-28.0 dB on the seen sets, users talking over it 9.4-13.5 dB.
VOICE_CHECK_DVECTOR: dict[str, float] = {"own_voice": 0.33, "other_voice": 0.42,
                                         "other_voice_db": 6.0, "voice_wait_ms": 1000.0,
                                         "other_frames": 40, "own_voice_settled": 0.40,
                                         "profile_frames": 40, "other_wait_ms": 1500.0,
                                         "early_frames": 12, "early_own_voice": 0.36,
                                         "echo_drop_sure": 0.8}


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
    voice: float | None = None  # the voice distance from the user's (None: not judged)
    addressed: bool = False  # by its words: an interrupt phrase, a lone turn word, a form


def _p90(levels: Sequence[float]) -> float:
    return float(np.percentile(np.asarray(levels, np.float64), 90))


# The fewest words whose pairs can say they are ours (two pairs).
OURS_MIN_WORDS = 3


def _said(our_words: Sequence[str]) -> tuple[list[str], set[tuple[str, str]]]:
    """The assistant's recent words, normalized, and their pairs."""
    ours = normalize(" ".join(our_words))
    return ours, set(itertools.pairwise(ours))


def may_be_ours(tokens: Sequence[str], our_words: Sequence[str]) -> bool:
    """Too few normalized `tokens` for `_ours` to tell, and each of them, and each pair, one
    the assistant said lately: they may yet be a run of our own words coming back."""
    if len(tokens) >= OURS_MIN_WORDS or not tokens:
        return False
    ours, said = _said(our_words)
    return set(tokens) <= set(ours) and all(p in said for p in itertools.pairwise(tokens))


def _ours(tokens: list[str], our_words: Sequence[str]) -> float | None:
    """The share of the utterance's word pairs that the assistant itself said lately (None:
    fewer than two pairs to tell by). Pairs, not words: "the" and "robot" are everyone's."""
    if len(tokens) < OURS_MIN_WORDS or not our_words:
        return None
    said = _said(our_words)[1]
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
    speaker: SpeakerCue | None = None,
) -> SideTalkVerdict:
    """Is this utterance (its frame levels and shapes so far, its latest words) side talk?

    With the reply ducked by `duck_db` during it: `unducked` are its frame levels from before
    the duck, `ducked` those from once the duck can have reached the microphone (after the
    longest echo delay the caller allows for). `our_words`: the words the assistant sent
    lately (its echo says those). `heard_ms`: how much of the utterance the levels cover while
    it is still going (None: it ended, or the caller cannot wait), for `settled`. `final`:
    `text` is the recognizer's final (an utterance of only a turn word is addressed).
    `speaker`: the d-vector cache of `voice_model = "dvector"` (None: a fresh one)."""
    c = config or SideTalkConfig()
    lex = lexicon or Lexicon.of()
    phrase, _ = lex.scan(normalize(text))
    # An interrupt phrase takes the floor in any voice, down to `addressed_db` below the
    # user's level as an addressed form does: further down it is a PA or a TV across the room
    # ("please wait to be called", "stop running in the corridor": heldout_i).
    distant = (phrase is not None and c.addressed_db is not None and profile.level is not None
               and len(levels) >= c.min_frames and _p90(levels) - profile.level <= c.addressed_db)
    if phrase is not None and not distant:
        return SideTalkVerdict(False, f"addressed: interrupt phrase {phrase!r}", addressed=True)
    tokens = normalize(text)
    if final and tokens and set(tokens) <= QUIET_TURN_WORDS:
        return SideTalkVerdict(False, f"addressed: {' '.join(tokens)!r} alone", addressed=True)
    share = _ours(normalize(text), our_words)
    if share is not None and share >= c.echo_words:
        return SideTalkVerdict(True, f"our own words ({share:.0%} of its word pairs): echo")
    if len(levels) < c.min_frames:
        return SideTalkVerdict(False, "too short to judge")
    drop = None
    if duck_db is not None and len(unducked) >= 3 and len(ducked) >= c.echo_frames:
        # Loudest parts (90th percentiles): speech's own pauses do not look like a drop.
        drop = _p90(unducked) - _p90(ducked)
        # Fell by about our duck: it follows our gain. Far more (to silence): it stopped, as a
        # short "no" does while the VAD's hang-over runs (held for its voice, it is the user).
        if -duck_db * c.echo_drop <= drop <= -duck_db * c.echo_drop_max and not (
                c.echo_drop_sure is not None and drop < -duck_db * c.echo_drop_sure
                and _own_voice(levels, shapes, profile, c, speaker)):
            return SideTalkVerdict(True, f"fell {drop:.1f} dB with our duck: echo", None, None,
                                   drop)
    ref = profile.level
    if ref is None:
        return SideTalkVerdict(False, "no calibrated user level", drop_db=drop)
    rel = _p90(levels) - ref
    user_shape = profile.shape
    dist = None
    if user_shape is not None and len(shapes) >= c.min_frames:
        mean = np.mean(np.stack([split_row(r)[0] for r in shapes]), axis=0)
        dist = float(np.sqrt(np.mean((mean - user_shape) ** 2)))
    settled = (heard_ms is None or heard_ms >= c.settle_ms
               or rel <= c.quiet_db - c.provisional_db)
    if not final and tokens and set(tokens) <= QUIET_TURN_WORDS:
        settled = False  # a soft "no" so far: its final says whether that is all (addressed)
    # After the user's own backchannel in one utterance ("okay uh huh can you read that back",
    # "right right no nine oh two": heldout_i) a form opens the words after it.
    lead = lex.leading(tokens) if lex.content(tokens)[1] else 0
    starts = [tokens, tokens[lead:]] if 0 < lead < len(tokens) else [tokens]
    far = c.far_shape_db
    by_shape = dist is not None and far is not None and dist >= far and rel <= c.quiet_db / 2
    # A form addressing the assistant is the user below their level (rules 4, 5) and, with
    # the other-voice rule, in a voice unlike theirs: words that ask or tell the assistant
    # something beat "another voice" (someone else in the room may interrupt for the user);
    # at the user's level so do turn forms, a question by inversion or a correction, which
    # the d-vector read as another voice in users' own turns (heldout_h).
    if ((rel <= c.quiet_db or by_shape or c.other_voice is not None)
            and c.addressed_db is not None and rel > c.addressed_db):
        ours = normalize(" ".join(our_words))
        form = next((f for t in starts if (f := addressed_form(t, ours)) is not None), None)
        if (form is not None and c.requests_to_others and c.other_voice is not None
                and rel > c.quiet_db):
            # A person beside the user asks the user things too ("can you hold my bag"): at
            # the user's level, where a voice not theirs is side talk, such a form does not
            # beat the voice (heldout_k). Below it a form is still the user's quieter request.
            other = next((a for t in starts if (a := for_someone_else(t)) is not False), False)
            if other is None and heard_ms is not None and heard_ms < c.opener_wait_ms:
                return SideTalkVerdict(True, f"addressed: {form}, its verb not heard yet", rel,
                                       dist, drop, False)
            if other:
                form = None
        if form is None and c.other_voice is not None and rel > c.quiet_db:
            form = next((f for t in starts if (f := turn_form(t, ours)) is not None), None)
        if form is not None:
            return SideTalkVerdict(False, f"addressed: {form}, {rel:+.1f} dB for this user", rel,
                                   dist, drop, addressed=True)
    voice, voiced = _voice(levels, shapes, profile, c, speaker)
    early = None
    if voice is not None and voiced < c.voice_frames:  # on `early_frames`: one rule only
        early, voice = voice, None
    surely_other = (voice is not None and c.other_voice is not None and voice >= c.other_voice
                    and voiced >= (c.other_frames or c.voice_frames))
    heard = heard_ms is None or heard_ms >= c.settle_ms
    if rel <= c.quiet_db and voice is not None and rel > c.own_voice_db:
        own = c.own_voice
        if heard and c.own_voice_settled is not None:
            own = max(own or 0.0, c.own_voice_settled)
        if own is not None and voice <= own:
            return SideTalkVerdict(False, f"{rel:+.1f} dB, the user's own voice ({voice:.2f})",
                                   rel, dist, drop, voice=voice)
        if not surely_other:
            settled = settled and heard  # not another's voice: more frames may say whose
    if rel <= c.quiet_db:
        return SideTalkVerdict(True, f"{rel:+.1f} dB for this user", rel, dist, drop, settled,
                               voice)
    if by_shape:
        return SideTalkVerdict(True, f"{rel:+.1f} dB, another voice ({dist:.1f} dB)", rel, dist,
                               drop, settled, voice)
    if c.other_voice is not None and rel <= c.other_voice_db:
        if early is not None and c.early_own_voice is not None and early <= c.early_own_voice:
            return SideTalkVerdict(False, f"{rel:+.1f} dB, the user's own voice on {voiced} "
                                   f"voiced frames ({early:.2f})", rel, dist, drop, voice=early)
        if surely_other:
            # Words that may yet become an addressed or turn form ("tell", "could", "uh huh can
            # we") keep it open for the next word (up to `opener_wait_ms`): the form would beat
            # the voice.
            opening = (heard_ms is not None and heard_ms < c.opener_wait_ms
                       and any(opens_form(t) for t in starts))
            return SideTalkVerdict(True, f"{rel:+.1f} dB, another voice ({voice:.2f})", rel,
                                   dist, drop, heard and not opening, voice)
        if (voice is not None and c.own_voice is not None and voice > c.own_voice
                and heard_ms is not None and (heard_ms < c.voice_wait_ms or (
                    c.other_wait_ms is not None and voice >= c.other_voice
                    and heard_ms < c.other_wait_ms))):
            # Neither surely the user's voice nor surely another's yet: held, judged again on
            # more of it (the embedding of 1 s tells far better than of 0.4 s); already as far
            # as another's on too few voiced frames, up to `other_wait_ms`.
            return SideTalkVerdict(True, f"{rel:+.1f} dB, whose voice not sure yet "
                                   f"({voice:.2f})", rel, dist, drop, False, voice)
        if (voice is None and heard_ms is not None and heard_ms < c.voice_wait_ms
                and _user_ready(profile, c)):
            # At the user's level, too short to tell whose voice: the reply stays ducked.
            return SideTalkVerdict(True, f"{rel:+.1f} dB, whose voice not known yet", rel,
                                   dist, drop, False)
    return SideTalkVerdict(False, f"{rel:+.1f} dB for this user", rel, dist, drop, voice=voice)


def _own_voice(levels: Sequence[float], rows: Sequence[F32], profile: VoiceProfile,
               c: SideTalkConfig, speaker: SpeakerCue | None) -> bool:
    """The utterance's voice, on `voice_frames` voiced frames, is at most `own_voice` from
    the user's."""
    voice, voiced = _voice(levels, rows, profile, c, speaker)
    return (voice is not None and c.own_voice is not None and voiced >= c.voice_frames
            and voice <= c.own_voice)


def _user_ready(profile: VoiceProfile, c: SideTalkConfig) -> bool:
    if c.voice_model == "dvector":
        return profile.speech(c.profile_frames) is not None
    return profile.voice(c.profile_frames) is not None


def _voice(levels: Sequence[float], rows: Sequence[F32], profile: VoiceProfile,
           c: SideTalkConfig, speaker: SpeakerCue | None = None) -> tuple[float | None, int]:
    """The utterance's voice distance from the user's (None: the check is off, the rows carry
    no MFCCs / samples for `voice_model`, or too few voiced frames on either side) and the
    voiced frames it was taken on."""
    width = SPEAKER_ROW if c.voice_model == "dvector" else VOICE_ROW
    if not c.voice_check or not rows or rows[-1].shape != (width,):
        return None, 0
    if c.voice_model == "dvector":
        user_pcm = profile.speech(c.profile_frames)
        if user_pcm is None:
            return None, 0
        # Rows end with the newest frame, as the levels do; oldest first for the encoder.
        n = min(len(rows), len(levels))
        pcm = [r[BANDS:] for r, lv in zip(rows[len(rows) - n:], levels[len(levels) - n:],
                                          strict=True)
               if lv > _VOICED_DBFS and r.shape == (SPEAKER_ROW,)]
        if len(pcm) < (c.early_frames or c.voice_frames):
            return None, len(pcm)
        if speaker is None:
            from bargein.decide.speaker_voice import SpeakerCue

            speaker = SpeakerCue()
        d = speaker.distance(profile, profile.speech_version, user_pcm, pcm,
                             marks=(c.voice_frames,))
        return d, speaker.frames_used if d is not None else 0
    user = profile.voice(c.profile_frames)
    if user is None:
        return None, 0
    # Rows end with the newest frame, as the levels do.
    voiced = [r[BANDS:] for r, lv in zip(rows[::-1], levels[::-1], strict=False)
              if lv > _VOICED_DBFS and r.shape == (VOICE_ROW,)]
    if len(voiced) < (c.early_frames or c.voice_frames):
        return None, len(voiced)
    return mahalanobis(user, gaussian(np.stack(voiced))), len(voiced)
