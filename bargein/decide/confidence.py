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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bargein.engines.base import Hypothesis, word_confidences
from bargein.engines.embedded.sphinx_decoders import SPHINX_MEASURE

__all__ = ["MURMUR", "MurmurConfig", "murmur_masked"]

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

    def __post_init__(self) -> None:
        for name, value in self.below.items():
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"below[{name!r}] must be a confidence in 0..1, got {value!r}")
        if not (isinstance(self.short_ms, (int, float)) and 0 <= self.short_ms < 60_000):
            raise ValueError(f"short_ms must be a number of ms in 0..60000, got {self.short_ms!r}")


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
    `tokens` (never guess which word a confidence belongs to)."""
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
