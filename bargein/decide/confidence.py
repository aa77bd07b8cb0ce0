"""Low-confidence words of a short overlap are murmurs, not content.

A real recognizer hears a murmur ("mm-hmm", "uh uh") or a sound as *some* words: pocketsphinx
heard AMI backchannels as "and then", "dude", "he errand"; Whisper heard "uh uh" as "I'm not
going to be able to" and a cough as "You". Words outside the backchannel lexicon are content
to the classifier (`bargein.decide.backchannel`), and content at the user's level cancels the
reply within 200 ms. When the recognizer says how sure it is (`bargein.engines.base.
Hypothesis`), a word below its measure's threshold (`MurmurConfig.below`: confidence scales
differ between engines) in an utterance no longer than
`MurmurConfig.short_ms` is replaced by `MURMUR` (a backchannel token) before the classifier's
rules see it. A transcript without confidences (plain `str`: the scripted engines) is left as
it is. Long utterances keep every word: speaking past `short_ms` is a turn whatever the words.

Thresholds measured on the shared recordings (`python -m bargein.benchmarks.word_confidence`,
docs/engines.md "Word confidence"). What they show: neither engine's confidence separates
misheard murmurs from real words well. pocketsphinx scores only its finals (a lattice
posterior; its partials, where the early rule decides, have none), and about a third of its
misheard short finals fall below 0.1; Whisper's hypothesis confidence is low wherever it has
heard little, right or wrong, so it gets no threshold (Whisper's gain is that it hears murmurs
as murmurs: "Uh huh.", "Mm-hmm.", "Yeah.").

*Unscored partials.* An engine whose partials carry no confidence says so on every transcript
(`Hypothesis.scored_partials` False: pocketsphinx). Its language model turns a short murmur,
a cough or our own echo into its commonest short words: first partials "the", "the the",
"and", "he", "you", "it", "if", then "and then", "the only", "haven't" (docs/engines.md).
For such an engine a *function word* (`MurmurConfig.weak_words`: `word_classes.FUNCTION_WORDS`
but the quiet turn words "no", "what", ...) is a murmur too: it is no evidence of a turn; an
open-class word, a number or a command is, and so is speaking on (the classifier's word-count
and `max_lexical_ms` rules count murmur tokens like any backchannel word). Plain text
(scripted engines) and scored partials (Whisper) are left alone: the rule costs an
interruption whose first words are function words its early decision, which only an engine
that cannot tell murmurs from words should pay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bargein.decide.word_classes import FUNCTION_WORDS, QUIET_TURN_WORDS
from bargein.engines.base import Hypothesis, word_confidences
from bargein.engines.embedded.sphinx_decoders import SPHINX_MEASURE

__all__ = ["MURMUR", "MurmurConfig", "murmur_masked", "weak_masked"]

MURMUR = "mm"  # in the backchannel lexicon: a murmur is not content


def _measured() -> dict[str, float]:
    # pocketsphinx's lattice posterior (finals only). Misheard content words of short finals:
    # on the labelled clips alone 0.02-1.0 (3 of 11 below 0.1); in the embedded research
    # runs' finals of murmurs and of our echo, 16 words below 0.25, 8 of them below 0.1; the
    # real short final, "wait" heard as "eight", 1.0 alone and 0.11 in a run. 0.1 keeps it.
    # Whisper's hypothesis confidence has no threshold: its real first words score 0.03-0.47,
    # its misheard ones 0.09-0.28 (a threshold that took those would lose "wait").
    return {SPHINX_MEASURE: 0.1}


@dataclass(frozen=True)
class MurmurConfig:
    # A word below its measure's threshold is a murmur (`Hypothesis.measure` -> confidence);
    # a measure not listed is not used.
    below: Mapping[str, float] = field(default_factory=_measured)
    # Only while the utterance is at most this long (the classifier's max_backchannel_ms).
    short_ms: float = 900.0
    # Words that are murmurs in an utterance of an engine with unscored partials, while it has
    # lasted at most `weak_ms` (None: however long; a long one is still a turn by the
    # classifier's word-count and `max_lexical_ms` rules). Measured on the embedded research
    # runs (docs/research.md "With real engines"): 900 and 1200 ms left 3 of AMI C's "Yeah"
    # (heard "he you", "he year", "he aaron") cancelled once they outlasted the limit; None
    # none, with the same interruptions detected.
    weak_words: frozenset[str] = FUNCTION_WORDS - QUIET_TURN_WORDS
    weak_ms: float | None = None

    def __post_init__(self) -> None:
        for name, value in self.below.items():
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"below[{name!r}] must be a confidence in 0..1, got {value!r}")
        for name in ("short_ms", "weak_ms"):
            value = getattr(self, name)
            if name == "weak_ms" and value is None:
                continue
            if not (isinstance(value, (int, float)) and 0 <= value < 60_000):
                raise ValueError(f"{name} must be a number of ms in 0..60000, got {value!r}")


DEFAULT = MurmurConfig()


def murmur_masked(
    tokens: list[str],
    text: str,
    speech_ms: float,
    tokenize: Callable[[str], list[str]],
    config: MurmurConfig = DEFAULT,
) -> list[str]:
    """`tokens` (`tokenize(text)`) with each token of a word below `config.below` replaced by
    `MURMUR`, when `text` carries confidences and the utterance has lasted at most
    `config.short_ms` (`speech_ms`). Unchanged when the words' tokens do not line up with
    `tokens` (never guess which word a confidence belongs to). Then, for an engine with
    unscored partials, `weak_masked`."""
    return weak_masked(
        _below_masked(tokens, text, speech_ms, tokenize, config), text, speech_ms, config
    )


def weak_masked(
    tokens: list[str], text: str, speech_ms: float, config: MurmurConfig = DEFAULT
) -> list[str]:
    """`tokens` with each of `config.weak_words` replaced by `MURMUR` when `text` comes from an
    engine whose partials carry no confidence (`Hypothesis.scored_partials` False) and the
    utterance has lasted at most `config.weak_ms` (None: any length); else unchanged. Each
    word stays a token (a run of murmurs is not merged into one): the classifier's word-count
    rule then still takes a long function-word-laden turn ("right because thinking of"), and
    merging measured worse (docs/research.md "With real engines")."""
    if not isinstance(text, Hypothesis) or text.scored_partials:
        return tokens
    if config.weak_ms is not None and speech_ms > config.weak_ms:
        return tokens
    return [MURMUR if t in config.weak_words else t for t in tokens]


def _below_masked(
    tokens: list[str],
    text: str,
    speech_ms: float,
    tokenize: Callable[[str], list[str]],
    config: MurmurConfig,
) -> list[str]:
    words = word_confidences(text)
    below = config.below.get(text.measure) if isinstance(text, Hypothesis) else None
    if not words or below is None or speech_ms > config.short_ms:
        return tokens
    plain: list[str] = []
    out: list[str] = []
    for word in words:
        pieces = tokenize(word.text)
        plain.extend(pieces)
        out.extend([MURMUR] * len(pieces) if word.confidence < below else pieces)
    return out if plain == tokens else tokens
