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
(the level rules still decide it). `for_someone_else` tells a form one person asks another
("can you pass the salt", "did you bring your card") from one put to an assistant, for speech
in a voice that may not be the user's.
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


# What one person asks another to do with their hands or things, not what a user asks an
# assistant to do ("can you hold my bag", "could you put these back", "pass me the salt");
# not "give", "find", "check", "help", "open", "move": "give me an example", "find me a
# cafe", "check the weather" are put to assistants as often.
HANDS_VERBS = frozenset(
    """
    hold pass hand put bring get take grab carry fetch lend sign untie tie pick fill lift push
    pull pour wash clean pay buy watch mind sit stand come throw catch drop leave
    """.split()
)
# Verbs of the talk itself ("did you say", "did you mean"): asked after what we said.
TALK_VERBS = frozenset(
    """
    tell say repeat explain describe speak talk mean ask answer spell define translate
    summarize summarise read continue skip stop wait listen hear
    """.split()
)
# An auxiliary that asks after what someone did or has ("did you bring your card", "have you
# got the tickets"): of the assistant, only about the talk ("did you say nine").
_PAST = frozenset("did have had were was".split())
# Words between "you" and its verb that do not change the verb ("could you please pass").
_ADVERBS = frozenset("please just maybe quickly actually also briefly".split())


def for_someone_else(tokens: Sequence[str]) -> bool | None:
    """Is the addressed form the normalized `tokens` open with (`addressed_form`) one that a
    person asks another person, not an assistant: its verb one of `HANDS_VERBS` ("can you hold
    my bag", "pass me the big one"), "go / come and …" ("go and get a trolley"), an imperative
    on "your" ("keep your back straight"), or a question after what they did or have ("did you
    bring your card", "have you got the tickets"; not "did you say")? False: any other form
    ("could you say that again", "can you turn the volume down", "tell me more") or no form;
    None: a form whose verb has not been heard yet ("can you", "could you please"). For speech
    in a voice that may not be the user's (`side_talk.judge`)."""
    toks = list(tokens)
    if addressed_form(toks) is None:
        return False
    rest = toks[_past(toks, _LEADING):]
    if rest[0] in _QUESTION and rest[1] not in _AUX:  # "what happened", "what was that"
        return False
    imperative = rest[0] in IMPERATIVES
    if imperative:
        aux, verb, after = None, rest[0], rest[1:]
    else:
        aux = rest[1] if rest[0] in _QUESTION else rest[0]
        k = _past(rest, _ADVERBS, rest.index("you") + 1)
        if k >= len(rest):
            return None
        verb, after = rest[k], rest[k + 1:]
    return (verb in HANDS_VERBS
            or (verb in ("go", "come") and after[:1] == ["and"])
            or (imperative and after[:1] == ["your"])
            or (aux in _PAST and verb not in TALK_VERBS))


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
    """The normalized `tokens` so far are the start of an addressed or turn form, not yet one:
    after the leading words, a lone imperative ("tell"), modal or question word, a question
    word and an auxiliary ("what do", "where is"), or an auxiliary and a subject pronoun ("can
    we", "is this"). The next word may make it one ("tell me", "could you", "can we stop")."""
    toks = list(tokens)
    rest = toks[_past(toks, _LEADING):]
    if len(rest) == 1:
        return rest[0] in IMPERATIVES or rest[0] in _AUX or rest[0] in _QUESTION
    return len(rest) == 2 and (
        (rest[0] in _QUESTION and rest[1] in _INVERTS)
        or (rest[0] in _INVERTS and rest[1] in _SUBJECTS)
    )


def _is_run_of(tokens: list[str], ours: Sequence[str]) -> bool:
    """`tokens` appear, in order and contiguous, in `ours`."""
    n = len(tokens)
    if n == 0 or n > len(ours):
        return False
    return any(list(ours[k : k + n]) == tokens for k in range(len(ours) - n + 1))
