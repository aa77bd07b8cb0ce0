"""What the floor hears of the user's audio (pure): the microphone's per-frame levels and
spectral shapes, this user's calibrated voice (learned from their own turns), and — for the
utterance that overlaps the assistant — the backchannel classifier and the side-talk check.

The floor machine feeds it in time order (session seconds) and asks it for a decision; it holds
no trio and does no I/O. Calibration: the frames of an utterance heard while no turn was active
join the user's profile once its final transcript opens a turn (the user really spoke to us);
an overlap the classifier calls an interruption joins it too (the classifier does that for the
level; the side-talk shape is added here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bargein.decide import side_talk
from bargein.decide.backchannel import (
    EXTRA_BACKCHANNELS,
    BackchannelClassifier,
    Config,
    Decision,
    Kind,
    Lexicon,
)
from bargein.decide.side_talk import F32, SideTalkVerdict, VoiceProfile
from bargein.decide.speaker_voice import SpeakerCue

from .policy import InterruptionPolicy

# The classifier's defaults but its "loud" rule: on the project's scenarios every backchannel,
# cough and interruption is 5-20 dB louder than the user's request, and on the AMI meeting one
# speaker's backchannels are louder than his turns, so loudness cancelled backchannels (11 of
# the 12 false cancels of the first compare run) without telling anything apart.
# With the reply ducked rather than paused, a sound with no words yet can be given longer
# before it counts as a turn (a fan, typing): words decide, or the sound ends.
# A wordless sound whose level hardly moves (a fan, a hum: its middle half of frame levels
# within 4 dB; speech and its echo swing far more between syllables) never reaches that limit.
# Its levels join the user's only when the floor cancels (`OverlapAudio.interruption`).
# Backchannel words alone are a turn after 2 s of speech, not 1.6 s: the research scenarios'
# longest backchannel (AMI C's "Yeah", with the VAD's hang-over) lasts 1.58 s, and the 1.3 s
# neighbour of 1.6 s cancelled three more of them (docs/research.md, "Held-out scenarios").
FLOOR_CLASSIFIER = Config(
    loud_db=float("inf"), max_wordless_ms=1500.0, max_lexical_ms=2000.0,
    wordless_spread_db=4.0, learn_levels=False,
)

# Our echo of the audio sent before the duck still arrives this long after it (the ramp and the
# shortest speaker-to-mic path), and the duck has surely reached the microphone after the
# longest (speaker, room tail, transport buffering): frames in between are neither.
UNDUCKED_S = 0.15
# Frames kept of one utterance (60 s of 20 ms frames): a VAD that never stops (steady noise,
# a TV) must not grow the floor's memory.
MAX_FRAMES = 3000
ECHO_DELAY_S = 0.5


@dataclass(slots=True)
class _Heard:
    """One utterance's frames: session times, levels (dBFS) and shapes (None: not computed)."""

    times: list[float] = field(default_factory=list)
    levels: list[float] = field(default_factory=list)
    shapes: list[F32] = field(default_factory=list)
    # It began over a turn: someone the floor took for the user, maybe wrongly; its voice
    # (MFCCs) is not learned even when it becomes a turn (`VoiceProfile.observe`).
    overlapped: bool = False


class OverlapAudio:
    def __init__(self, policy: InterruptionPolicy) -> None:
        self.policy = policy
        self.profile = VoiceProfile()
        self.classifier = (
            BackchannelClassifier(FLOOR_CLASSIFIER, floor_lexicon(policy), self.profile.user)
            if policy.classifier
            else None
        )
        self._now: _Heard = _Heard()  # the utterance being heard (or the last one)
        self._pending: _Heard | None = None  # a finished non-overlap utterance, until its final
        self._overlap = False
        self._duck_at: float | None = None
        self._clf_t = float("-inf")  # the latest time the classifier was given
        self._lexicon = floor_lexicon(policy)
        self.our_words: tuple[str, ...] = ()  # the turn's words sent lately (the floor sets)
        self.side_talk_verdict: SideTalkVerdict | None = None
        self._side_talk_config = side_talk.SideTalkConfig.for_policy(
            policy.side_talk_db, voice=policy.side_talk_voice, speaker=policy.side_talk_speaker
        )
        self._speaker = SpeakerCue() if policy.side_talk_speaker else None

    # -- the user's utterances ----------------------------------------------------------------

    def utterance_started(
        self, now: float, onset: float, overlap: bool, keep_since: float | None = None
    ) -> Decision | None:
        """A VAD onset; `overlap`: a turn is active, so the classifier judges it.
        `keep_since`: a new overlap inside the utterance being heard (re-opened by new words):
        its frames from then on are the new overlap's, and the classifier is given them."""
        kept = _Heard()
        if keep_since is not None:
            h = self._now
            first = next((i for i, t in enumerate(h.times) if t >= keep_since), len(h.times))
            n = len(h.times) - first  # shapes, when computed, end with the newest frame
            kept = _Heard(h.times[first:], h.levels[first:], h.shapes[max(0, len(h.shapes) - n):])
        if not self._overlap or keep_since is not None:  # a gap inside one overlap keeps them
            self._now = kept
        self._now.overlapped = self._now.overlapped or overlap
        self._overlap = overlap
        if not overlap:
            self._duck_at = None
        if overlap and self.classifier is not None:
            # The VAD dates an onset back by its window, possibly before the last input the
            # classifier saw (the previous utterance's final); its clock must not go back.
            self._clf_t = max(min(onset, now), self._clf_t)
            self.classifier.onset(self._clf_t)
            decision: Decision | None = None
            for t, level in zip(kept.times, kept.levels, strict=True):
                self._clf_t = max(t, self._clf_t)
                decision = self.classifier.frame(self._clf_t, level) or decision
            return self._clf_tick(now) or decision
        return None

    def speech_resumed(self, now: float) -> Decision | None:
        """The overlap's speech came back after a gap shorter than the VAD's hang-over... or a
        new VAD utterance inside the same overlap: one utterance to the classifier."""
        if not self._live():
            return None
        assert self.classifier is not None
        self._clf_t = max(self._clf_t, now)
        return self.classifier.speech_resumed(self._clf_t)

    def utterance_ended(self, now: float) -> Decision | None:
        if not self._overlap:
            self._pending = self._now
        if not self._live():
            return None
        assert self.classifier is not None
        # Its clock, not `now`: a frame's time (computed from media times) can exceed the
        # floor's `now` by float rounding, and an input dated before it would be refused.
        self._clf_t = max(self._clf_t, now)
        return self.classifier.speech_end(self._clf_t)

    def overlap_ended(self) -> None:
        """The floor decided the overlap (or its turn ended): further frames are not judged."""
        self._overlap = False
        self._duck_at = None

    def frames(
        self, times: Sequence[float], levels: Sequence[float], shapes: Sequence[F32] | None
    ) -> Decision | None:
        h = self._now
        decision: Decision | None = None
        for i, (t, level) in enumerate(zip(times, levels, strict=True)):
            if not np.isfinite(level):
                continue
            if len(h.times) >= MAX_FRAMES:  # an utterance that never ends: keep the newest
                del h.times[: MAX_FRAMES // 2], h.levels[: MAX_FRAMES // 2]
                del h.shapes[: max(0, len(h.shapes) - len(h.levels))]
            h.times.append(t)
            h.levels.append(float(level))
            shape = shapes[i] if shapes is not None and i < len(shapes) else None
            if shape is not None:
                h.shapes.append(shape)
            if self._live():
                assert self.classifier is not None
                t = max(t, self._clf_t)
                self._clf_t = t
                decision = self.classifier.frame(t, level) or decision
        return decision

    def words(self, now: float, text: str, final: bool) -> Decision | None:
        if not self._live():
            return None
        assert self.classifier is not None
        self._clf_t = max(self._clf_t, now)
        return self.classifier.words(self._clf_t, text, final)

    def tick(self, now: float) -> Decision | None:
        return self._clf_tick(now) if self._live() else None

    def _clf_tick(self, now: float) -> Decision | None:
        assert self.classifier is not None
        self._clf_t = max(self._clf_t, now)
        return self.classifier.tick(self._clf_t)

    def deadline(self) -> float | None:
        if not self._live():
            return None
        assert self.classifier is not None
        return self.classifier.next_deadline()

    def ducked(self, now: float) -> None:
        self._duck_at = now

    def user_turn(self) -> None:
        """The last non-overlap utterance opened a turn: it was the user; learn their voice."""
        h = self._pending if self._pending is not None else self._now
        self._pending = None
        self._learn(h)

    def interruption(self) -> None:
        """The overlap was the user taking the floor (the floor cancels for it): learn its
        spectral shape, and its level only while no turn of the user's has given one. Not
        before the cancel: an utterance side talk overrode is someone else. Not the level
        once known: the user's level is that of their turns to us, which overlap nothing; one
        loud interruption ("hey!", +14 dB) would otherwise raise it so far that their next,
        ordinary words look like side talk (a held-out scenario, docs/turn_detection.md)."""
        h = self._now
        learn_level = self.profile.level is None
        for i, level in enumerate(h.levels):
            shape = h.shapes[i] if i < len(h.shapes) else None
            if learn_level:
                self.profile.observe(level, shape)
            elif shape is not None and level > -50.0:
                self.profile.observe_shape(shape)

    def _learn(self, h: _Heard) -> None:
        for i, level in enumerate(h.levels):
            self.profile.observe(level, h.shapes[i] if i < len(h.shapes) else None,
                                 voice=not h.overlapped)

    def _live(self) -> bool:
        return self._overlap and self.classifier is not None

    # -- what the floor and outside judges see -------------------------------------------------

    def side_talk(self, text: str, going: bool = False, final: bool = False) -> SideTalkVerdict:
        """`going`: the utterance is still being heard, so a provisional verdict can wait;
        `final`: `text` is the recognizer's final."""
        h, at = self._now, self._duck_at
        unducked: list[float] = []
        ducked: list[float] = []
        if at is not None:
            unducked = [
                lv for t, lv in zip(h.times, h.levels, strict=True) if t < at + UNDUCKED_S
            ]
            ducked = [
                lv for t, lv in zip(h.times, h.levels, strict=True) if t >= at + ECHO_DELAY_S
            ]
        verdict = side_talk.judge(
            h.levels,
            h.shapes,
            text,
            self.profile,
            config=self._side_talk_config,
            lexicon=self.classifier.lexicon if self.classifier is not None else self._lexicon,
            duck_db=self.policy.duck_db if at is not None else None,
            unducked=unducked,
            ducked=ducked,
            our_words=self.our_words,
            heard_ms=(h.times[-1] - h.times[0]) * 1000 if going and h.times else None,
            final=final,
            speaker=self._speaker,
        )
        self.side_talk_verdict = verdict
        return verdict

    @property
    def level_dbfs(self) -> float | None:
        return self._now.levels[-1] if self._now.levels else None

    @property
    def utterance_dbfs(self) -> float | None:
        levels = self._now.levels
        return float(np.percentile(levels, 90)) if levels else None

    @property
    def user_dbfs(self) -> float | None:
        return self.profile.level

    @property
    def relative_db(self) -> float | None:
        u, ref = self.utterance_dbfs, self.user_dbfs
        return None if u is None or ref is None else u - ref


def is_interruption(decision: Decision | None) -> bool | None:
    """True/False once the classifier decided, None while undecided."""
    if decision is None or decision.kind is Kind.UNDECIDED:
        return None
    return decision.kind is Kind.INTERRUPTION


def floor_lexicon(policy: InterruptionPolicy) -> Lexicon:
    """The classifier's and side talk's lexicon in the floor: the policy's `backchannels` plus
    the classifier's reactions (`EXTRA_BACKCHANNELS`), and the policy's `interrupt_phrases`."""
    return Lexicon.of((*sorted(policy.backchannels), *EXTRA_BACKCHANNELS), policy.interrupt_phrases)
