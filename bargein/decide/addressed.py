"""Is an utterance addressed to the assistant by its form? A pure check of its words, used by the
side-talk check (`side_talk.judge`) to keep a quiet user who tells or asks the assistant
something from being taken for a TV or a room voice.

Addressed *forms*, after leading fillers and acknowledgements ("um", "okay", "no", "so", …):

- an imperative an assistant is given as the first word, with a word after it: "tell me
  more", "go back", "skip it", "repeat that", "explain the …" (`IMPERATIVES`);
- a request or question put to "you": a modal or auxiliary then "you" ("can you …",
  "could you …", "would you …", "do you …", "did you …"), or a question word, an auxiliary and
  "you" ("what do you mean", "why did you …", "how do you …").

Not addressed by form: narrative and statements, whatever they are about ("the horizon seems
extremely distant", "and mister john dashwood had then…", "when you've got the main things",
"but you know…", "so simplification of symbols you could think of"), and "you" anywhere else.
A run of words the assistant itself just said is not addressed by form either (our echo saying
"can you imagine" is not the user asking).

General English forms, not the words of any scenario. What this cannot tell apart: a TV or a
person in the room who tells or asks someone else ("tell me about it", "can you pass the salt")
is addressed by form; an interruption that is a statement ("the robot should be a girl") is not
(the level rules still decide it).
"""

from __future__ import annotations

from collections.abc import Sequence

# What a user tells an assistant to do (a verb as the first word). Not "let", "look", "make",
# "get": "let's see", "look at that", "make sure", "get this" open talk between people as often.
IMPERATIVES = frozenset(
    """
    tell go skip repeat play show give read say change open start continue explain describe
    help stop wait listen keep speak talk finish try turn move slow hurry jump rewind restart
    summarize summarise define spell translate answer
    """.split()
)

# Modals and auxiliaries that put a request or a question to "you".
_AUX = frozenset(
    """
    can could would will do does did are were have had should shall may might
    """.split()
)
_QUESTION = frozenset("what why how where when who which".split())

# Words that may come before the form without changing it.
_LEADING = frozenset(
    """
    um uh er erm hmm mm oh ah okay ok alright right yeah yes no nope so well hey please sorry
    and but hi hello
    """.split()
)


def addressed_form(tokens: Sequence[str], our_words: Sequence[str] = ()) -> str | None:
    """The addressed form the normalized `tokens` open with ("imperative 'tell'", "'can you'",
    "'what do you'"), or None. `our_words`: the assistant's own recent words, normalized; an
    utterance that is a run of them is our echo, not a form (None). An imperative needs a word
    after it ("tell me", "go back"): a lone "tell" in a partial may become "television", and a
    quiet murmur a recognizer hears as one short word ("go") is not a request."""
    toks = list(tokens)
    if not toks or _is_run_of(toks, our_words):
        return None
    i = 0
    while i < len(toks) and toks[i] in _LEADING:
        i += 1
    rest = toks[i:]
    if not rest:
        return None
    if rest[0] in IMPERATIVES and len(rest) >= 2:
        return f"imperative {rest[0]!r}"
    if len(rest) >= 2 and rest[0] in _AUX and rest[1] == "you":
        return f"{' '.join(rest[:2])!r}"
    if len(rest) >= 3 and rest[0] in _QUESTION and rest[1] in _AUX and rest[2] == "you":
        return f"{' '.join(rest[:3])!r}"
    return None


def _is_run_of(tokens: list[str], ours: Sequence[str]) -> bool:
    """`tokens` appear, in order and contiguous, in `ours`."""
    n = len(tokens)
    if n == 0 or n > len(ours):
        return False
    return any(list(ours[k : k + n]) == tokens for k in range(len(ours) - n + 1))
