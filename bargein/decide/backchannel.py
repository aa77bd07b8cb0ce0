"""Backchannel or interruption? A pure classifier of one short user utterance heard while the
assistant speaks ("mm-hmm", "yeah" should let the reply go on; "wait", "no, I meant..." take
the floor).

Fed in time order (seconds on any one clock): ``onset(t)`` when the VAD hears speech start,
``frame(t, level_dbfs)`` per audio frame while it lasts, ``words(t, text, final)`` for each
partial/final recognizer hypothesis, ``speech_end(t)`` when the VAD hears it stop, ``tick(t)``
whenever time passes. Each returns the ``Decision`` the moment it is taken (once per
utterance), else None; ``decision`` holds it (kind ``UNDECIDED`` until then). ``latency`` is
decision time minus onset: what a policy that ducks on onset keeps the reply ducked for.

The rules, in order (``Config`` has every threshold; ``docs/turn_detection.md`` states what
they can and cannot tell apart):

1. an *interrupt phrase* of the lexicon in any hypothesis ("stop", "wait", "hold on",
   "actually", ...) -> interruption, at once;
2. *content* (a word outside the backchannel lexicon; none when the whole hypothesis is an
   acknowledgement of the lexicon's grammar, ``lexicon.AckGrammar``: "oh that's really
   interesting", and a partial that may still become one waits) once the utterance has lasted
   ``content_min_ms`` -> interruption; when the utterance is at this user's own level or
   louder (at least ``early_min_db`` relative: the user, not side talk, not a murmur) content
   needs only ``early_content_ms``; when it is *quiet* for this user (at least ``quiet_db``
   below the user's own speech so far) content needs ``max_backchannel_ms`` (misrecognized
   murmurs: "Mm. Yeah." heard as "is the money"); more than ``max_backchannel_words`` words
   with content among them -> interruption (a run of backchannel phrases, "oh yeah yeah
   sure", is not one); in a partial, last words that may open a backchannel phrase ("i" of
   "i see") after only backchannel words are not content until a later hypothesis shows what
   they became; a *lone reaction* (one open-class content word: "whoa", "that's cool",
   ``word_classes.lone_reaction``, ``hold_open_words``) waits for more content,
   ``max_lexical_ms`` of speech or its final;
3. still speaking after ``max_backchannel_ms`` with no words yet (``max_wordless_ms``; never
   for a steady sound with ``wordless_spread_db``), or after ``max_lexical_ms`` with only
   backchannel words -> interruption (long speech is a turn; the limits count speech, not the
   gaps between VAD utterances); *loud* speech (``loud_db`` above the user's level) after
   ``loud_min_ms`` -> interruption;
4. speech ended: a final hypothesis (or ``end_wait_ms`` without one) decides: content in the
   final -> interruption unless quiet or a lone reaction; a quiet final of only
   ``quiet_turn_words`` ("no", "what?") -> interruption; else backchannel (backchannel
   words, nothing recognized, a quiet short murmur, a lone reaction);
5. speech resumed after a VAD end with only backchannel words so far -> backchannel (the
   acknowledgement is complete; what follows is new speech).

Level: the utterance's 90th-percentile frame level against the same statistic of the user's
own speech (``UserLevel``: feed it the frames of the user's real turns; with ``learn_levels``
the classifier adds an utterance's frames when it decides *interruption*). Without 0.5 s of
history the level rules are off.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from bargein.decide.confidence import murmur_masked
from bargein.decide.lexicon import EXTRA_BACKCHANNELS, Lexicon, normalize
from bargein.decide.word_classes import QUIET_TURN_WORDS, lone_reaction

_EPS_MS = 1e-6

# The lexicon lives in `lexicon.py`; these names stay importable from here.
__all__ = [
    "EXTRA_BACKCHANNELS", "UNDECIDED", "BackchannelClassifier", "Config", "Decision", "Kind",
    "Lexicon", "UserLevel", "normalize",
]


class Kind(StrEnum):
    BACKCHANNEL = "backchannel"
    INTERRUPTION = "interruption"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class Config:
    content_min_ms: float = 450.0
    # Content at this user's own level (relative level >= early_min_db, so the user's level is
    # known) needs only this much speech: the first recognizer hypotheses come 200-340 ms after
    # onset (pocketsphinx on the shared clips), anything earlier rests on less than a syllable.
    early_content_ms: float = 200.0
    early_min_db: float = -3.0
    max_backchannel_ms: float = 900.0
    max_lexical_ms: float = 1600.0
    max_backchannel_words: int = 3
    end_wait_ms: float = 300.0
    quiet_db: float = -6.0
    loud_db: float = 6.0
    loud_min_ms: float = 400.0
    # Still speaking with no word recognized after this long -> interruption (None: the same as
    # max_backchannel_ms). A policy that ducks can afford to wait for words longer.
    max_wordless_ms: float | None = None
    # A lone content word that may be all of a reaction ("whoa", "yikes", "that's cool",
    # "menu?": one open-class word, `word_classes.lone_reaction`) waits for another content
    # word, `max_lexical_ms` of speech or the final, and its final is a backchannel. Function
    # words, numbers and commands ("it", "but", "eight", "tell") still decide at once.
    hold_open_words: bool = True
    # A quiet final made only of these is still an interruption: a soft "no" or "what?".
    quiet_turn_words: frozenset[str] = QUIET_TURN_WORDS
    # A wordless sound whose frame levels spread less than this (75th minus 25th percentile,
    # dB) is steady — a fan, a hum — and never a turn by the wordless limit; 0 (the default):
    # off. The floor, which ducks and so can wait for words, sets it.
    wordless_spread_db: float = 0.0
    # An utterance decided an interruption joins this user's level. False: the caller adds it
    # once the interruption is confirmed (the floor: not when side talk overrides it, else a
    # quiet room voice would pull the user's level down to its own).
    learn_levels: bool = True

    @property
    def wordless_ms(self) -> float:
        return self.max_backchannel_ms if self.max_wordless_ms is None else self.max_wordless_ms

    def __post_init__(self) -> None:
        for name in ("content_min_ms", "early_content_ms", "max_backchannel_ms",
                     "max_lexical_ms", "end_wait_ms", "loud_min_ms", "wordless_ms"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < 60_000):
                raise ValueError(f"{name} must be a number of ms in 0..60000, got {v!r}")
        if not (isinstance(self.max_backchannel_words, int) and self.max_backchannel_words >= 1):
            raise ValueError("max_backchannel_words must be an int >= 1")
        if not self.quiet_db < 0 < self.loud_db:
            raise ValueError("quiet_db must be < 0 and loud_db > 0")
        if not (isinstance(self.early_min_db, (int, float)) and
                self.quiet_db < self.early_min_db < 60):
            raise ValueError("early_min_db must be a number of dB above quiet_db")
        if not (isinstance(self.wordless_spread_db, (int, float))
                and 0 <= self.wordless_spread_db <= 60):
            raise ValueError("wordless_spread_db must be a number of dB in 0..60")

    def content_ms(self, rel: float | None) -> float:
        """How long an utterance at `rel` dB for this user (None: unknown) must last before a
        content word makes it an interruption."""
        if rel is not None and rel <= self.quiet_db:
            return self.max_backchannel_ms
        if rel is not None and rel >= self.early_min_db:
            return self.early_content_ms
        return self.content_min_ms


class UserLevel:
    """This user's speaking level: the 90th percentile of their recent voiced frame levels
    (dBFS), over the last ``keep`` frames (60 s of 20 ms frames)."""

    def __init__(self, keep: int = 3000, min_frames: int = 25) -> None:
        self._levels: deque[float] = deque(maxlen=keep)
        self.min_frames = min_frames

    def observe(self, level_dbfs: float) -> None:
        if np.isfinite(level_dbfs):
            self._levels.append(float(level_dbfs))

    @property
    def frames(self) -> int:
        return len(self._levels)

    @property
    def level(self) -> float | None:
        if len(self._levels) < self.min_frames:
            return None
        return float(np.percentile(np.fromiter(self._levels, float), 90))


@dataclass(frozen=True)
class Decision:
    kind: Kind
    at: float  # when decided
    latency: float  # at - onset, seconds
    reason: str


UNDECIDED = Decision(Kind.UNDECIDED, 0.0, 0.0, "no utterance")


@dataclass
class _Utterance:
    onset: float
    end: float | None = None
    gaps: float = 0.0  # silences inside it (speech_end .. speech_resumed), seconds
    levels: list[float] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    final: bool = False


class BackchannelClassifier:
    """One user's utterances while the assistant speaks; one decision per utterance."""

    def __init__(self, config: Config | None = None, lexicon: Lexicon | None = None,
                 user: UserLevel | None = None) -> None:
        self.config = config or Config()
        self.lexicon = lexicon or Lexicon.of()
        self.user = user or UserLevel()
        self._u: _Utterance | None = None
        self._decision = UNDECIDED
        self._last_t = -np.inf
        self.rejected = 0  # inputs refused (out of order, no utterance, bad values)

    @property
    def decision(self) -> Decision:
        return self._decision

    # -- inputs ------------------------------------------------------------------------
    def onset(self, t: float) -> Decision | None:
        """A new utterance starts (forgets the previous one's decision)."""
        if not self._clock(t):
            return None
        self._u = _Utterance(onset=t)
        self._decision = UNDECIDED
        return None

    def frame(self, t: float, level_dbfs: float) -> Decision | None:
        u = self._live(t)
        if u is None:
            return None
        if not np.isfinite(level_dbfs):
            self.rejected += 1
            return None
        if u.end is None:
            u.levels.append(float(level_dbfs))
            if self._decision.kind is Kind.INTERRUPTION and self.config.learn_levels:
                self.user.observe(level_dbfs)
        return self._evaluate(t)

    def words(self, t: float, text: str, final: bool = False) -> Decision | None:
        u = self._live(t)
        if u is None:
            return None
        if not isinstance(text, str) or len(text) > 10_000:
            self.rejected += 1
            return None
        if u.final and not final:
            return self._evaluate(t)  # a late partial never replaces the final
        # A short overlap's low-confidence words are murmurs, not content (decide/confidence.py).
        ms = ((u.end if u.end is not None else t) - u.onset) * 1e3
        u.tokens = murmur_masked(normalize(text), text, ms, normalize)
        u.final = u.final or final
        return self._evaluate(t)

    def speech_end(self, t: float) -> Decision | None:
        u = self._live(t)
        if u is None:
            return None
        if u.end is None:
            u.end = t
        return self._evaluate(t)

    def speech_resumed(self, t: float) -> Decision | None:
        """Speech came back before the utterance was decided (a gap the VAD ended it at, or a
        second VAD utterance the caller counts as the same): it is open again."""
        u = self._live(t)
        if u is None:
            return None
        if u.end is not None:
            # a partial that might still become an acknowledgement is not yet one
            phrase, content = self._scan(u, grammar_hold=False)
            undecided = self._decision.kind is Kind.UNDECIDED
            if u.tokens and phrase is None and not content and undecided:
                # backchannel words, then the VAD heard a pause: that acknowledgement is
                # complete (its final may come after the new speech starts); what follows is
                # new speech, which a caller judges anew (the floor re-opens on its words)
                ms = (u.end - u.onset - u.gaps) * 1e3
                return self._decide(Kind.BACKCHANNEL, t, f"backchannel words, then a pause, "
                                    f"{ms:.0f} ms")
            u.gaps += t - u.end  # the limits count speech, not the silence between
        u.end = None
        return self._evaluate(t)

    def tick(self, t: float) -> Decision | None:
        u = self._live(t)
        return None if u is None else self._evaluate(t)

    def next_deadline(self) -> float | None:
        """The earliest time at which a time rule could decide the open utterance (call
        `tick` then); None when it is decided, or only an input can decide it."""
        u, c = self._u, self.config
        if u is None or self._decision.kind is not Kind.UNDECIDED:
            return None
        if u.end is not None:
            return None if u.final else u.end + c.end_wait_ms / 1000
        _, content = self._scan(u)
        rel = self.relative_level()
        limits = [c.max_lexical_ms] if u.tokens else [] if self._steady(u) else [c.wordless_ms]
        if content:
            limits.append(self._content_ms(content, rel))
        if rel is not None and rel >= c.loud_db:
            limits.append(c.loud_min_ms)
        # None: a steady wordless sound; its frames, words or end decide
        return u.onset + u.gaps + min(limits) / 1000 if limits else None

    # -- rules -------------------------------------------------------------------------
    def _scan(self, u: _Utterance, grammar_hold: bool = True) -> tuple[str | None, list[str]]:
        """(interrupt phrase, content words) of the latest hypothesis; none when the whole of
        it is an acknowledgement of the lexicon's grammar ("oh that's really interesting").
        In a partial, the last words that may open a backchannel phrase ("i" of "i see",
        "got" of "got it") after nothing but backchannel words are not content yet, nor is a
        partial that may still become an acknowledgement ("oh that's really", with
        `grammar_hold`): the next hypothesis tells."""
        phrase, content = self.lexicon.content(u.tokens)
        if phrase is None and content and not u.final and grammar_hold:
            if self.lexicon.acknowledgement(u.tokens)[1]:
                return None, []
        if phrase is None and content and not u.final:
            held = self.lexicon.opening(u.tokens)
            if held:
                before = self.lexicon.content(u.tokens[:-held])
                # only after nothing but backchannel words: "of" may open "of course" in
                # "oh of", not in "instead of"
                if before[0] is not None or not before[1]:
                    phrase, content = before
        return phrase, content

    def _lone(self, content: list[str]) -> bool:
        """One content word that may be all of a reaction (`Config.hold_open_words`)."""
        return self.config.hold_open_words and lone_reaction(content)

    def _content_ms(self, content: list[str], rel: float | None) -> float:
        ms = self.config.content_ms(rel)
        return max(ms, self.config.max_lexical_ms) if self._lone(content) else ms

    def _steady(self, u: _Utterance) -> bool:
        """A wordless sound whose level hardly moves (a fan): not speech."""
        c = self.config
        if c.wordless_spread_db <= 0 or u.tokens or len(u.levels) < 5:
            return False
        # the middle half of its frames within 30 dB of its loudest: the VAD's hang-over frames
        # after a short fan stops are the room's silence, not the fan (speech between its
        # syllables stays within that)
        levels = np.asarray(u.levels)
        levels = levels[levels >= np.percentile(levels, 90) - 30.0]
        p25, p75 = np.percentile(levels, [25, 75])
        return bool(p75 - p25 < c.wordless_spread_db)

    def relative_level(self) -> float | None:
        """Utterance level minus the user's level (dB), None when either is unknown."""
        u, ref = self._u, self.user.level
        if u is None or ref is None or len(u.levels) < 3:
            return None
        return float(np.percentile(u.levels, 90)) - ref

    def _evaluate(self, t: float) -> Decision | None:
        u = self._u
        if u is None or self._decision.kind is not Kind.UNDECIDED:
            return None
        c = self.config
        # + epsilon: a tick at `next_deadline` (a sum of floats) must count as reaching it
        ms = ((u.end if u.end is not None else t) - u.onset - u.gaps) * 1e3 + _EPS_MS
        phrase, words = self._scan(u)
        content = len(words)
        rel = self.relative_level()
        quiet = rel is not None and rel <= c.quiet_db
        loud = rel is not None and rel >= c.loud_db
        if phrase is not None:
            return self._decide(Kind.INTERRUPTION, t, f"interrupt phrase {phrase!r}")
        if content and len(u.tokens) > c.max_backchannel_words:
            return self._decide(Kind.INTERRUPTION, t, f"{len(u.tokens)} words")
        if content and ms >= self._content_ms(words, rel):
            return self._decide(Kind.INTERRUPTION, t, f"{content} content words, {ms:.0f} ms")
        if u.end is None:
            if loud and ms >= c.loud_min_ms:
                return self._decide(Kind.INTERRUPTION, t, f"loud ({rel:+.1f} dB), {ms:.0f} ms")
            limit = c.max_lexical_ms if u.tokens else c.wordless_ms
            if ms >= limit and (u.tokens or not self._steady(u)):
                return self._decide(Kind.INTERRUPTION, t, f"still speaking after {ms:.0f} ms")
            return None
        if u.final or (t - u.end) * 1e3 + _EPS_MS >= c.end_wait_ms:
            if content and u.final and quiet and set(u.tokens) <= c.quiet_turn_words:
                return self._decide(Kind.INTERRUPTION, t, f"quiet {' '.join(u.tokens)!r}")
            if content and u.final and not quiet and not self._lone(words):
                return self._decide(Kind.INTERRUPTION, t, f"{content} content words in the final")
            what = "backchannel words" if u.tokens and not content else (
                "quiet short murmur" if quiet else f"a lone reaction {' '.join(words)!r}"
                if content
                else "nothing recognized")
            return self._decide(Kind.BACKCHANNEL, t, f"{what}, {ms:.0f} ms")
        return None

    def _decide(self, kind: Kind, t: float, reason: str) -> Decision:
        assert self._u is not None
        self._decision = Decision(kind, t, t - self._u.onset, reason)
        if kind is Kind.INTERRUPTION and self.config.learn_levels:
            for lv in self._u.levels:
                self.user.observe(lv)
        return self._decision

    def _live(self, t: float) -> _Utterance | None:
        if not self._clock(t):
            return None
        if self._u is None:
            self.rejected += 1  # nothing to classify: no onset yet
        return self._u

    def _clock(self, t: float) -> bool:
        if not (isinstance(t, (int, float)) and np.isfinite(t)) or t < self._last_t:
            self.rejected += 1
            return False
        self._last_t = float(t)
        return True
