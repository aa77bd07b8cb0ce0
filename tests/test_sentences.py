from __future__ import annotations

from bargein.actors.sentences import SentenceSplitter
from bargein.testing.scripted import tokens


def split_stream(text: str, **kw: int) -> list[str]:
    s = SentenceSplitter(**kw)
    out = [p for t in tokens(text) for p in s.feed(t)]
    rest = s.flush()
    return out + ([rest] if rest else [])


def test_sentences_are_released_as_soon_as_the_next_token_starts() -> None:
    s = SentenceSplitter()
    assert s.feed("Hello there.") == []  # could still be "there.com" or "..."
    assert s.feed(" How") == ["Hello there."]
    assert s.feed(" are you?") == []
    assert s.flush() == "How are you?"
    assert s.flush() is None


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    assert split_stream("Mr. Smith met J. Doe at 3.5 km. Then they left.") == [
        "Mr. Smith met J. Doe at 3.5 km.",
        "Then they left.",
    ]


def test_long_clause_is_cut_at_a_comma() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve, and then more words"
    assert split_stream(text, clause_words=12) == [
        "one two three four five six seven eight nine ten eleven twelve,",
        "and then more words",
    ]


def test_run_on_text_is_cut_at_max_words() -> None:
    pieces = split_stream(" ".join(f"w{i}" for i in range(70)), clause_words=100, max_words=30)
    assert [len(p.split()) for p in pieces] == [30, 30, 10]


def test_pieces_reassemble_the_text() -> None:
    text = "It was late! Was it? Yes; it was. Done:\nnew line here."
    assert " ".join(split_stream(text)).split() == text.split()
