"""A small deterministic responder that needs no model: for the demo and interruption research.

It answers the time and date, evaluates spoken arithmetic ("what is twelve times seven",
"12 / 4"), tells a long story worth interrupting, continues an interrupted reply from where the
user stopped hearing it ("as I was saying…"), and otherwise acknowledges what it heard. Replies
stream word by word as `TextDelta`s, optionally paced like an LLM (``tokens_per_second``).

Because it is deterministic, the reply that an interrupted assistant message was cut from can be
regenerated from the user message before it; the heard part (what the history holds) is then a
prefix of that reply and the rest is what was never heard.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime

import trio

from bargein.engines.base import PlanOutput, PlanRequest, Sink, TextDelta
from bargein.runtime.history import ChatMessage

__all__ = ["STORY", "LocalPlanner", "evaluate_arithmetic", "parse_number_words"]

STORY: tuple[str, ...] = (
    "Once upon a time, in a village at the edge of a great forest, there lived a clockmaker "
    "named Elena. Her shop was small and crowded, and every wall was covered with clocks. "
    "Some were tall and solemn, some were tiny and quick, and one of them had not ticked in "
    "forty years. The villagers said it was broken beyond repair. Elena did not believe them. "
    "Every evening, after the last customer had gone, she opened its case and studied the "
    "gears by candlelight.",
    "One winter night, a stranger knocked on her door. He was wrapped in a grey coat, and snow "
    "clung to his boots. He said he had walked for three days to find the one person who "
    "could fix the silent clock. Elena asked him how he knew about it. He only smiled and "
    "said that the clock had been his grandmother's, and that it had stopped on the day she "
    "left the village. He asked if she would let him sit and watch her work.",
    "So they worked together through the long night. The stranger held the candle while Elena "
    "cleaned each wheel and spring. Near midnight she found the problem. A tiny brass pin, no "
    "bigger than a grain of rice, had slipped out of place. It had been hiding under the "
    "largest gear all those years. She set it back with a pair of tweezers and held her "
    "breath. For a long moment nothing happened at all.",
    "Then the clock began to tick. It was a soft and steady sound, like a heartbeat. All the "
    "other clocks in the shop seemed to fall silent to listen. The stranger closed his eyes "
    "and laughed quietly. He said that his grandmother used to tell him the clock would only "
    "run again when someone patient enough came along. Elena said that patience was the only "
    "tool she had never had to buy.",
    "In the morning the snow had stopped, and the stranger was gone. On her workbench he had "
    "left a small wooden box. Inside it was a key, old and dark, with a ribbon tied around it. "
    "Elena tried it in every lock in her shop, and none of them fit. For weeks she wondered "
    "what it might open. Then one evening she noticed a keyhole she had never seen before, "
    "hidden behind the pendulum of the old clock.",
    "She turned the key, and a tiny drawer slid open. Inside was a folded letter in faded ink. "
    "It was addressed to whoever fixed the clock. It thanked them for their care, and it "
    "asked them to keep the clock running for the next person who needed to hear it. Elena "
    "kept that promise for the rest of her life. And people say that if you visit the village "
    "today, you can still hear it ticking, soft and steady, like a heartbeat. The end.",
)

_HELP = (
    "I can tell you the time or the date, work out sums like twelve times seven, or tell you a "
    "story. You can interrupt me whenever you like, and ask me to continue."
)

_UNITS = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "a": 1,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
# Spoken operators, longest first so "multiplied by" wins over a bare "by".
_OPERATORS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("multiplied", "by"), "*"), (("divided", "by"), "/"), (("to", "the", "power", "of"), "^"),
    (("plus",), "+"), (("minus",), "-"), (("less",), "-"), (("times",), "*"),
    (("x",), "*"), (("over",), "/"), (("+",), "+"), (("-",), "-"), (("*",), "*"), (("×",), "*"),
    (("/",), "/"), (("÷",), "/"), (("^",), "^"),
)  # fmt: skip
_OP_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by", "^": "to the power of"}
_CONTINUE = re.compile(
    r"\b(continue|go on|keep going|carry on|as you were saying|what were you saying|"
    r"you were saying|finish (the|your) (story|sentence))\b"
)
_REPEAT = re.compile(r"\b(repeat (that|it)|say (that|it) again|what did you say)\b")
_STORY = re.compile(r"\bstor(y|ies)\b")
_TIME = re.compile(r"\b(what time|the time|time is it)\b")
_DATE = re.compile(r"\b(date|what day|which day|day is it|day is today)\b")
_HELLO = re.compile(r"^(hi|hello|hey|good (morning|afternoon|evening))\b")
_HELP_RE = re.compile(r"\b(help|what can you do)\b")
_RESUME = "As I was saying: "
_WORD_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+|[+\-*/^×÷]")


def _normalise(text: str) -> str:
    text = text.lower().replace("what's", "what is")
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)  # "twenty-one", not twenty minus one
    return " ".join(text.split())


def parse_number_words(tokens: Sequence[str], i: int) -> tuple[float, int] | None:
    """Parse a number starting at ``tokens[i]`` (digits or English words); (value, next index).

    Words follow English number grammar, so a digit string such as "one two" is not one number.
    """
    if i < len(tokens) and re.fullmatch(r"\d+(?:\.\d+)?", tokens[i]):
        return float(tokens[i]), i + 1
    total = current = 0
    prev: str | None = None  # kind of the previous word: unit, tens, hundred, scale, and
    j = i
    while j < len(tokens):
        word = tokens[j]
        nxt = tokens[j + 1] if j + 1 < len(tokens) else ""
        if word in _UNITS:
            value = _UNITS[word]
            if word == "a" and (prev is not None or nxt not in _SCALES):
                break  # "a" only as in "a hundred", "a thousand"
            if word in ("o", "oh") and prev is not None:
                break
            if prev == "unit" or (prev == "tens" and not 0 < value < 10):
                break
            current += value
            prev = "unit"
        elif word in _TENS:
            if prev in ("unit", "tens"):
                break
            current += _TENS[word]
            prev = "tens"
        elif word in _SCALES and (
            prev in ("unit", "tens") or (prev == "hundred" and word != "hundred")
        ):
            if word == "hundred":
                current *= 100
                prev = "hundred"
            else:
                total += current * _SCALES[word]
                current = 0
                prev = "scale"
        elif word == "and" and prev in ("hundred", "scale") and (nxt in _UNITS or nxt in _TENS):
            prev = "and"  # "one hundred and five"
        else:
            break
        j += 1
    if prev is None:
        return None
    return float(total + current), j


def _parse_operator(tokens: Sequence[str], i: int) -> tuple[str, int] | None:
    for words, op in _OPERATORS:
        if tuple(tokens[i : i + len(words)]) == words:
            return op, i + len(words)
    return None


def evaluate_arithmetic(text: str) -> tuple[str, float] | None:
    """Find ``number (operator number)+`` in an utterance; return (spoken expression, value).

    Usual precedence (power, then × ÷, then + −). Raises ZeroDivisionError for division by zero.
    """
    tokens = _WORD_TOKEN.findall(_normalise(text))
    for start in range(len(tokens)):
        first = parse_number_words(tokens, start)
        if first is None:
            continue
        numbers, ops = [first[0]], []
        i = first[1]
        while True:
            op = _parse_operator(tokens, i)
            if op is None:
                break
            operand = parse_number_words(tokens, op[1])
            if operand is None:
                break
            ops.append(op[0])
            numbers.append(operand[0])
            i = operand[1]
        if ops:
            spoken = _format(numbers[0]) + "".join(
                f" {_OP_WORDS[o]} {_format(n)}" for o, n in zip(ops, numbers[1:], strict=True)
            )
            return spoken, _evaluate(numbers, ops)
    return None


def _evaluate(numbers: list[float], ops: list[str]) -> float:
    for level in (("^",), ("*", "/"), ("+", "-")):
        vals, rest = [numbers[0]], []
        for op, n in zip(ops, numbers[1:], strict=True):
            if op in level:
                a = vals.pop()
                if op == "^":
                    vals.append(_power(a, n))
                elif op == "*":
                    vals.append(a * n)
                elif op == "/":
                    vals.append(a / n)  # ZeroDivisionError is the caller's to word
                elif op == "+":
                    vals.append(a + n)
                else:
                    vals.append(a - n)
            else:
                vals.append(n)
                rest.append(op)
        numbers, ops = vals, rest
    return numbers[0]


def _power(base: float, exponent: float) -> float:
    """`base ** exponent` that never raises: too big is infinite, undefined (0 to a negative
    power, a negative base to a fractional one) is NaN; both are worded by `_format`."""
    try:
        return math.pow(base, exponent)
    except OverflowError:
        odd = exponent == int(exponent) and int(exponent) % 2 == 1
        return -math.inf if base < 0 and odd else math.inf
    except ValueError:
        return math.nan


def _format(value: float) -> str:
    if math.isinf(value) or math.isnan(value):
        return "too big for me"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _join_story() -> str:
    return "\n\n".join(STORY)


class LocalPlanner:
    """`PlannerEngine` without a model. Deterministic: the same history gives the same reply.

    ``now``: the clock for time/date answers (inject a fixed one in tests).
    ``tokens_per_second``: pace of the streamed words on the trio clock; 0 streams at once.
    """

    name = "local"

    def __init__(
        self,
        *,
        now: Callable[[], datetime] = datetime.now,
        tokens_per_second: float = 0.0,
    ) -> None:
        if tokens_per_second < 0:
            raise ValueError("tokens_per_second must be >= 0")
        self._now = now
        self._tokens_per_second = tokens_per_second

    async def respond(self, request: PlanRequest, out: Sink[PlanOutput]) -> None:
        await trio.lowlevel.checkpoint()  # a trio async function always checkpoints
        reply = self.reply(request.messages)
        delay = 1.0 / self._tokens_per_second if self._tokens_per_second else 0.0
        # One delta per word with its leading whitespace, so the deltas concatenate to the reply.
        for n, match in enumerate(re.finditer(r"\s*\S+", reply)):
            if delay and n:
                await trio.sleep(delay)
            await out.send(TextDelta(match.group()))

    def reply(self, messages: Sequence[ChatMessage]) -> str:
        """The full reply to the last user message given the heard history before it."""
        user_index = next(
            (i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None
        )
        if user_index is None:
            return "Hello! " + _HELP
        said = messages[user_index].content.strip()
        heard = _normalise(said)
        if not heard:
            return "Sorry, I didn't catch that."
        if _CONTINUE.search(heard):
            return self._continue(messages[:user_index])
        if _REPEAT.search(heard):
            last = _last_assistant(messages[:user_index])
            if last is None or not last[1].content:
                return "I haven't said anything yet."
            return "I said: " + last[1].content
        return self._answer(said, heard)

    def _answer(self, said: str, heard: str) -> str:
        if _STORY.search(heard):
            return _join_story()
        try:
            arithmetic = evaluate_arithmetic(heard)
        except ZeroDivisionError:
            return "I can't divide by zero."
        if arithmetic is not None:
            spoken, value = arithmetic
            about = "about " if math.isfinite(value) and value != int(value) else ""
            return f"{spoken} is {about}{_format(value)}."
        now = self._now()
        if _TIME.search(heard):
            return f"It's {now.strftime('%I:%M %p').lstrip('0')}."
        if _DATE.search(heard):
            return f"Today is {now.strftime('%A, %B')} {now.day}, {now.year}."
        if _HELP_RE.search(heard):
            return _HELP
        if _HELLO.search(heard):
            return "Hello! " + _HELP
        return f"You said: {said.rstrip('.!?')}."

    def _continue(self, before: Sequence[ChatMessage]) -> str:
        last = _last_assistant(before)
        if last is None:
            return "I haven't said anything yet. " + _HELP
        index, message = last
        if not message.interrupted:
            return "I had finished what I was saying. " + _HELP
        # Regenerate the reply the interruption cut short, then skip the words that were heard.
        # reply() on the history up to that message also regenerates continuations of continuations.
        full = self.reply(before[:index])
        rest = _remainder(full, message.content)
        if rest is None:
            tail = " ".join(message.content.split()[-8:])
            return f"As I was saying, I had got as far as: {tail}. That's all I remember."
        if not rest:
            return "I had just finished, actually."
        return _RESUME + rest


def _last_assistant(messages: Sequence[ChatMessage]) -> tuple[int, ChatMessage] | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "assistant":
            return i, messages[i]
    return None


def _remainder(full: str, heard: str) -> str | None:
    """What follows the heard words in `full`, resuming at the start of the interrupted sentence.

    None when `heard` is not a word prefix of `full` (the reply came from elsewhere).
    """
    full_words = re.findall(r"\S+", full)
    heard_words = heard.split()
    if full_words[: len(heard_words)] != heard_words:
        return None
    n = len(heard_words)
    # Back up to the start of the sentence that was cut, so the listener gets it whole.
    while 0 < n < len(full_words) and not full_words[n - 1].endswith((".", "!", "?")):
        n -= 1
    spans = [m.start() for m in re.finditer(r"\S+", full)]
    if n >= len(full_words):
        return ""
    rest = full[spans[n] :]
    # Cut inside an earlier "As I was saying:" opening: do not say it twice.
    return rest.removeprefix(_RESUME)
