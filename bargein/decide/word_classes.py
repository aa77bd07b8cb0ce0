"""Which words can be a one-word reaction ("whoa", "yikes", "cool", "menu?") and which open a
turn at once ("it", "but", "what", "eight", "tell"): the backchannel classifier's defence
against acknowledgements that are in no lexicon.

A reaction is an interjection, an assessment adjective or adverb, or an echoed noun: open-class
words. A turn opens with a function word (pronoun, determiner, conjunction, preposition,
auxiliary, question word), a number, an imperative an assistant is given, a title or a word
that gets attention. General English word classes, not the words of any scenario; the
classifier (``Config.hold_open_words``) lets a lone open-class content word wait for a second
content word, more speech or the final (docs/turn_detection.md).
"""

from __future__ import annotations

import re

FUNCTION_WORDS = frozenset(
    """
    i me my mine myself you your yours yourself we us our ours he him his she her hers it its
    they them their theirs this that these those there here the a an some any no not nor none
    every each all both either neither other another such what which who whom whose why how
    where when whether if than then because since while though although unless until so but
    and or yet also just only even still again too very more most less least much many few
    of in on at by for with about against between into through during before after above
    below to from up down out off over under around near without within along across behind
    beyond toward towards upon
    am is are was were be been being have has had having do does did doing done can could
    shall should will would may might must ought need dare
    i'm i've i'll i'd you're you've you'll you'd we're we've we'll we'd he's she's it's
    they're they've they'll that's there's here's what's who's where's how's let's don't
    doesn't didn't can't couldn't won't wouldn't isn't aren't wasn't weren't shouldn't
    haven't hasn't hadn't mustn't
    um uh er erm well like
    """.split()
)

# Not "one" (also a pronoun: "nice one", "that one") nor "oh" (a backchannel).
NUMBERS = frozenset(
    """
    zero two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
    ninety hundred thousand million first second third half
    """.split()
)

# What a user tells an assistant to do, and words that get its attention.
COMMANDS = frozenset(
    """
    tell go skip repeat play show give make read say change open call send start turn take
    find try continue explain describe ask help stop wait listen look keep put bring move
    use set get let come begin finish speak talk write check add remove hold hang shut
    hey hello hi excuse pardon please mr mrs ms dr mister missus miss doctor sir madam
    """.split()
)

TURN_OPENERS = FUNCTION_WORDS | NUMBERS | COMMANDS

# Function words that frame an assessment ("that's cool", "how nice", "too bad"): beside one
# open-class word (or a backchannel word: "cool", "nice") they do not make a turn of it. Not
# "so": "okay so ..." opens a turn.
REACTION_FRAMES = frozenset("that's thats it's how very pretty super too such quite".split())

# A quiet utterance of only these still takes the floor (a soft "no", "what?"), and is taken
# as addressed to us by the side-talk check.
QUIET_TURN_WORDS = frozenset({"no", "nope", "what", "pardon"})


# Words that judge the assistant's content, not the story: "that's wrong", "incorrect". Never a
# reaction (a lone "that's wrong" is a correction) and never the evaluative word of the
# acknowledgement grammar below.
DISSENT = frozenset(
    """
    wrong incorrect false untrue inaccurate nonsense rubbish misleading outdated irrelevant
    useless pointless confusing unclear backwards boring enough not
    """.split()
)

# -- the acknowledgement grammar (lexicon.py `AckGrammar`; docs/research.md, "Backchannels
# beyond the lexicon") --------------------------------------------------------------------
# A listener's assessment is [interjection]* [frame] [intensifier]* evaluative-word: "oh that's
# really interesting", "wow that's wild", "how cool", "so weird". The classes are general
# English (conversation corpora's assessment inventories), not the words of any scenario.
INTERJECTIONS = frozenset(
    """
    oh ah ahh aw aww ooh oo wow whoa woah gosh jeez geez yikes huh hm hmm mm ha hah heh
    man boy dang damn shoot phew oops ugh
    """.split()
)
# Frames that open an assessment (token tuples after `normalize`).
ASSESSMENT_FRAMES = frozenset(
    tuple(f.split())
    for f in (
        "that's", "thats", "that is", "it's", "its", "it is", "how", "sounds", "that sounds",
        "that's just",
    )
)  # fmt: skip
INTENSIFIERS = frozenset(
    "really so very pretty super quite totally truly absolutely incredibly too".split()
)
EVALUATIVE = frozenset(
    """
    interesting cool wild crazy amazing awesome great nice neat fun funny hilarious weird
    strange odd sad terrible awful horrible insane incredible unbelievable fascinating lovely
    wonderful beautiful brilliant fantastic impressive good true right perfect excellent sweet
    smart clever cute scary surprising remarkable helpful useful fair exciting unreal nuts
    bizarre tough rough unfortunate fabulous gorgeous magical spooky creepy wicked
    mad epic legit lucky curious intriguing inspiring touching shocking hard
    """.split()
)
# Whole short formulas of acknowledgement (after `normalize`). A partial of only a formula's
# first words waits for the next hypothesis unless one of them opens turns (`TURN_OPENERS`,
# but see `FORMULA_OPENERS`): "no" of "no way" decides at once (it opens most corrections:
# "no, I meant ..."), so "no way", "no kidding", "good to know" are acknowledgements only
# when the hypothesis that first shows "no" / "to" already shows the rest.
FORMULAS = frozenset(
    tuple(f.split())
    for f in (
        "no way", "no kidding", "you're kidding", "you're kidding me", "you're joking",
        "good to know", "good to hear", "glad to hear", "thanks", "thank you", "got it",
        "i see", "makes sense", "that makes sense", "fair enough", "i get it", "i hear you",
        "you bet", "no doubt", "i bet", "i guess", "i can imagine", "who knew", "no wonder",
        "oh my god", "my god", "oh my gosh", "my goodness", "oh my goodness", "good for you",
        "well done", "love it", "love that", "i love that", "i love it",
        "i had no idea", "too bad",
    )
)  # fmt: skip
# Pronouns that open acknowledgement formulas ("you're kidding", "my god", "i see", "that
# makes sense"): a partial of them waits for the next word; never "no" nor a question word,
# nor "you" ("you can press a key ..."). A formula's later words wait only when none opens
# turns: "glad to" of "glad to hear" is content at once ("glad to welcome his gospel").
FORMULA_OPENERS = frozenset({"i", "you're", "my", "that"})
# A laughter token: "ha", "haha", "hahaha", "hehe", "heh", "lol" (not "he").
LAUGHTER = re.compile(r"(?:ha)+h?|(?:he){2,}h?|heh|lol|lmao")


def may_be_reaction(token: str) -> bool:
    """An open-class word (normalized token): it may be all of a one-word reaction."""
    return token not in TURN_OPENERS and token not in DISSENT and not token.isdigit()


def lone_reaction(content: list[str]) -> bool:
    """The content words of an utterance (the words outside the backchannel lexicon) are at
    most one open-class word, framed at most by `REACTION_FRAMES` ("whoa", "that's" of
    "that's cool", "how weird"): the utterance may be a reaction however short it is."""
    open_words = [w for w in content if w not in REACTION_FRAMES]
    return bool(content) and len(open_words) <= 1 and all(map(may_be_reaction, open_words))
