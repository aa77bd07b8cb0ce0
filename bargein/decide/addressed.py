"""Is an utterance addressed to the assistant by its form? A pure check of its words, used by the
side-talk check (`side_talk.judge`) to keep a quiet user who tells or asks the assistant
something from being taken for a TV or a room voice.

Addressed *forms*, after leading fillers and acknowledgements ("um", "okay", "no", "so", …):

- an imperative an assistant is given as the first word, with a word after it: "tell me
  more", "go back", "skip it", "repeat that", "explain the …" (`IMPERATIVES`);
- a request or question put to "you": a modal or auxiliary then "you" ("can you …",
  "could you …", "would you …", "do you …", "did you …"), or a question word, an auxiliary and
  "you" ("what do you mean", "why did you …", "how do you …");
- a question about what is being told: a question word then "happened", "happens" or "about"
  ("what happened next", "so what about the dragon", "how about …"), and "what was that".

Not addressed by form: narrative and statements, whatever they are about ("the horizon seems
extremely distant", "and mister john dashwood had then…", "when you've got the main things",
"but you know…", "so simplification of symbols you could think of"), and "you" anywhere else.
A run of words the assistant itself just said is not addressed by form either (our echo saying
"can you imagine" is not the user asking).

General English forms, not the words of any scenario. What this cannot tell apart: a TV or a
person in the room who tells or asks someone else ("tell me about it", "can you pass the salt")
is addressed by form; an interruption that is a statement ("the robot should be a girl") is not
(the level rules still decide it). `about_the_talk` narrows a form to one about the talk
itself ("can you repeat that", not "can you pass the salt"), for speech in a voice that may
not be the user's.
"""

from __future__ import annotations

from collections.abc import Sequence

from bargein.decide.word_classes import FORMULAS

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
# A question word then one of these asks the one telling the story about it ("what happened
# next", "so what about the dragon"); "what was that" asks us to say it again.
_ABOUT_THE_STORY = frozenset("happened happens about".split())

# "do"-support: a question word then one of these is a direct question ("what does it mean").
_DO = frozenset("do does did".split())
# Auxiliaries that invert with the subject in a question ("is it", "was he", "can we").
_INVERTS = _AUX | frozenset("is was am".split())
# Subject pronouns an auxiliary inverts with in a question ("is it", "can we", "where was he").
_SUBJECTS = frozenset("i we it he she they this that there".split())
# A turn-initial "no" (then words) responds to what was just said: a correction.
_NEGATIONS = frozenset("no nope".split())
# Hesitations before any form (a subset of `_LEADING`: not "no").
_FILLERS = frozenset("um uh er erm hmm mm oh ah".split())

# Words that may come before the form without changing it.
_LEADING = frozenset(
    """
    um uh er erm hmm mm oh ah okay ok alright right yeah yes no nope so well hey please sorry
    and but hi hello
    """.split()
)


def _past(toks: Sequence[str], words: frozenset[str], i: int = 0) -> int:
    """The index of the first token from `i` on that is not one of `words`."""
    while i < len(toks) and toks[i] in words:
        i += 1
    return i


def addressed_form(tokens: Sequence[str], our_words: Sequence[str] = ()) -> str | None:
    """The addressed form the normalized `tokens` open with ("imperative 'tell'", "'can you'",
    "'what do you'"), or None. `our_words`: the assistant's own recent words, normalized; an
    utterance that is a run of them is our echo, not a form (None). An imperative needs a word
    after it ("tell me", "go back"): a lone "tell" in a partial may become "television", and a
    quiet murmur a recognizer hears as one short word ("go") is not a request."""
    toks = list(tokens)
    if not toks or _is_run_of(toks, our_words):
        return None
    rest = toks[_past(toks, _LEADING):]
    if not rest:
        return None
    if rest[0] in IMPERATIVES and len(rest) >= 2:
        return f"imperative {rest[0]!r}"
    if len(rest) >= 2 and rest[0] in _AUX and rest[1] == "you":
        return f"{' '.join(rest[:2])!r}"
    if len(rest) >= 3 and rest[0] in _QUESTION and rest[1] in _AUX and rest[2] == "you":
        return f"{' '.join(rest[:3])!r}"
    if len(rest) >= 2 and rest[0] in _QUESTION and rest[1] in _ABOUT_THE_STORY:
        return f"{' '.join(rest[:2])!r}"
    if rest[:3] == ["what", "was", "that"]:
        return "'what was that'"
    return None


# Verbs of the talk itself: what a listener asks of the one speaking to them about what they
# say (tell, repeat, explain, mean ...), as against what one person asks another to do with
# their hands or things ("can you hold my bag", "could you put these back", "did you bring
# your card", "go and get a trolley"). With a particle only: "go on / back", "keep going",
# "slow down", "start over" (not "go forward ten meters", "keep your back straight").
TALK_VERBS = frozenset(
    """
    tell say repeat explain describe speak talk mean ask answer spell define translate
    summarize summarise read continue skip stop wait listen rewind restart hear clarify
    elaborate rephrase recap pause finish
    """.split()
)
_TALK_PARTICLES = {
    "go": frozenset("on back ahead over again through".split()),
    "keep": frozenset("going talking on".split()),
    "slow": frozenset(["down"]),
    "start": frozenset("over again".split()),
    "speed": frozenset(["up"]),
}
# Words between "you" and its verb that do not change the verb ("could you please repeat").
_ADVERBS = frozenset("please just maybe quickly actually also briefly".split())


def about_the_talk(tokens: Sequence[str]) -> bool | None:
    """Is the addressed form the normalized `tokens` open with (`addressed_form`) about the talk
    itself — its verb one of `TALK_VERBS` ("can you repeat that", "tell me more", "go back",
    "what do you mean"), or a question about the story ("what happened next", "what was that")?
    False: a form about something else ("can you hold this", "did you bring your card", "have
    you got the tickets"), or no form; None: a form whose verb has not been heard yet ("can
    you", "could you please"). Whom a form is put to, the words cannot tell; a request about
    the talk is what a listener asks the one speaking, so in a voice not the user's only such a
    form is taken for one put to the assistant (`side_talk.judge`)."""
    toks = list(tokens)
    rest = toks[_past(toks, _LEADING):]
    if addressed_form(toks) is None:
        return False
    if rest[0] in _QUESTION and len(rest) >= 2 and rest[1] in _ABOUT_THE_STORY | {"was"}:
        return True
    if rest[0] in IMPERATIVES:
        verb, after = rest[0], rest[1:]
    else:
        k = rest.index("you") + 1
        k = _past(rest, _ADVERBS, k)
        if k >= len(rest):
            return None
        verb, after = rest[k], rest[k + 1:]
    if verb in _TALK_PARTICLES:  # "could you go" so far: most go on to "back", "on"
        return not after or after[0] in _TALK_PARTICLES[verb]
    return verb in TALK_VERBS


def turn_form(tokens: Sequence[str], our_words: Sequence[str] = ()) -> str | None:
    """A form that opens a new turn of its own, though not one put to "you": a direct question
    (subject-auxiliary inversion: a question word then "do"-support, "what does leisure mean",
    "how did it end"; a question word, an auxiliary and a subject pronoun, "where was he"; an
    auxiliary and a subject pronoun, "is it true", "can we stop") or a correction ("no" then
    words that are no acknowledgement formula: "no the twenty third"), after leading fillers
    ("um", "oh", "so", ...). None otherwise, or for a run of `our_words`. Whom it is put to,
    the words cannot tell (a TV asks questions too): not an addressed form for the side-talk
    check, whose level and voice rules judge it; but where talk was judged not addressed it
    shows a new turn may have begun (`form_within`)."""
    toks = list(tokens)
    if not toks or _is_run_of(toks, our_words):
        return None
    i = _past(toks, _FILLERS)
    rest = toks[i:]
    if len(rest) >= 2 and rest[0] in _NEGATIONS and rest[1] not in _LEADING | _NEGATIONS:
        if not any(f[:2] == tuple(rest[:2]) for f in FORMULAS):  # not "no way", "no kidding"
            return f"correction {' '.join(rest[:2])!r}"
    rest = toks[_past(toks, _LEADING, i):]
    if len(rest) >= 3 and rest[0] in _QUESTION and rest[1] in _DO:
        return f"question {' '.join(rest[:2])!r}"
    if len(rest) >= 3 and rest[0] in _QUESTION and rest[1] in _INVERTS and rest[2] in _SUBJECTS:
        return f"question {' '.join(rest[:3])!r}"
    if len(rest) >= 3 and rest[0] in _INVERTS and rest[1] in _SUBJECTS:
        return f"question {' '.join(rest[:2])!r}"
    return None


def form_within(
    tokens: Sequence[str], our_words: Sequence[str] = (), starts: Sequence[int] | None = None
) -> int | None:
    """Where the first addressed form (`addressed_form`) or turn form (`turn_form`: a direct
    question, a correction) opens among the normalized `tokens` (the index of its first word,
    leading words not counted but a correction's "no"), or None. For the words heard after an
    utterance was judged not addressed: the talk judged may go on ("… on a mobile phone")
    before the user's form ("could you go back …", "what does leisure mean"); the words from
    the form on are judged anew (a TV's question stays side talk by level and voice).
    `starts`: the only indices a form may open at (after leading words); None: any.
    `our_words` as for `addressed_form`, from the form's first word on: a leading word ("and")
    before a run of ours does not make it a form."""
    toks = list(tokens)
    for i in range(len(toks)) if starts is None else sorted(set(starts)):
        j = _past(toks, _FILLERS, i)
        k = _past(toks, _LEADING, j)
        if k < len(toks) and addressed_form(toks[k:], our_words) is not None:
            return k
        if j < len(toks) and turn_form(toks[j:], our_words) is not None:
            return j if toks[j] in _NEGATIONS else k
    return None


def opens_form(tokens: Sequence[str]) -> bool:
    """The normalized `tokens` so far are the start of an addressed form, not yet one: after
    the leading words, a lone imperative ("tell"), modal or question word, or a question word
    and an auxiliary ("what do"). The next word may make it one ("tell me", "could you")."""
    toks = list(tokens)
    rest = toks[_past(toks, _LEADING):]
    if len(rest) == 1:
        return rest[0] in IMPERATIVES or rest[0] in _AUX or rest[0] in _QUESTION
    return len(rest) == 2 and rest[0] in _QUESTION and (rest[1] in _AUX or rest[1] == "was")


def _is_run_of(tokens: list[str], ours: Sequence[str]) -> bool:
    """`tokens` appear, in order and contiguous, in `ours`."""
    n = len(tokens)
    if n == 0 or n > len(ours):
        return False
    return any(list(ours[k : k + n]) == tokens for k in range(len(ours) - n + 1))
