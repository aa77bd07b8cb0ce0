"""The embedded offline engines on real recordings: pocketsphinx, espeak-ng, the local planner."""

from __future__ import annotations

import itertools
import re
from datetime import datetime

import numpy as np
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from bargein.engines.base import Engines, PlanOutput, PlanRequest, TextDelta, TtsChunk
from bargein.engines.embedded import (
    EspeakTts,
    LocalPlanner,
    SphinxStt,
    default_engines,
    espeak_voices,
)
from bargein.engines.embedded.local_planner import STORY, evaluate_arithmetic
from bargein.runtime.compute import compute_mode, set_compute_mode
from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import Int16Array
from bargein.testing.audio import load, shared_audio_dir

FRAME = 320  # 20 ms at 16 kHz


def read_wav(name: str) -> Int16Array:
    """A shared recording (16 kHz mono); only the tests that use one skip without them."""
    try:
        present = (shared_audio_dir() / name).is_file()
    except FileNotFoundError:
        present = False
    if not present:
        pytest.skip("the shared recordings (../shared/audio) are not beside this checkout")
    return load(name)


def goforward() -> Int16Array:
    return read_wav("pocketsphinx_goforward.raw")


SENSE = "pocketsphinx_sense_and_sensibility_01_austen_64kb-0870.wav"
CARDS = "pocketsphinx_cards_005.wav"
CARDS_GRAMMAR = """#JSGF V1.0;
grammar cards;
public <cards> = <card> (<card>)*;
<card> = <rank> of <suit>;
<rank> = ace | two | three | four | five | six | seven | eight | nine | ten | jack | queen | king;
<suit> = spades | clubs | hearts | diamonds;
"""


@pytest.fixture(scope="module")
def dictation() -> SphinxStt:
    # Shared so the ~0.3 s model load happens once; its decoder pool is thread-safe.
    return SphinxStt()


async def recognize(stt: SphinxStt, pcm: Int16Array) -> tuple[list[str], str]:
    recognizer = stt.recognizer()
    try:
        await recognizer.start_utterance()
        partials = []
        for i in range(0, len(pcm), FRAME):
            partial = await recognizer.feed(pcm[i : i + FRAME])
            if partial is not None:
                partials.append(partial)
        return partials, await recognizer.end_utterance()
    finally:
        await recognizer.aclose()


# ---------------------------------------------------------------- pocketsphinx


async def test_goforward_partials_arrive_before_the_final(dictation: SphinxStt) -> None:
    partials, final = await recognize(dictation, goforward())
    assert "forward" in final.split()
    assert len(partials) >= 3
    assert any("forward" in p for p in partials)  # heard while streaming, not only at the end
    assert all(a != b for a, b in itertools.pairwise(partials))  # only changes
    assert all(p == p.strip() and "  " not in p for p in partials)


async def test_sense_and_sensibility_key_words(dictation: SphinxStt) -> None:
    _, final = await recognize(dictation, read_wav(SENSE))
    words = set(final.split())
    assert len(words & {"john", "dashwood", "leisure", "consider"}) >= 3, final


async def test_empty_and_silent_utterances_give_empty_transcripts(dictation: SphinxStt) -> None:
    recognizer = dictation.recognizer()
    await recognizer.start_utterance()
    assert await recognizer.feed(np.zeros(0, np.int16)) is None
    assert await recognizer.end_utterance() == ""
    # The same recognizer takes further utterances: digital silence recognises as nothing.
    _, final = await recognize(dictation, np.zeros(16000, np.int16))
    assert final == ""
    await recognizer.aclose()


async def test_recognizer_rejects_misuse(dictation: SphinxStt) -> None:
    recognizer = dictation.recognizer()
    with pytest.raises(RuntimeError, match="start_utterance"):
        await recognizer.feed(np.zeros(FRAME, np.int16))
    with pytest.raises(RuntimeError, match="start_utterance"):
        await recognizer.end_utterance()
    await recognizer.start_utterance()
    with pytest.raises(ValueError, match="int16"):
        await recognizer.feed(np.zeros(FRAME, np.float32))
    await recognizer.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await recognizer.start_utterance()


async def test_recognizer_survives_cancellation(dictation: SphinxStt) -> None:
    pcm = goforward()
    recognizer = dictation.recognizer()
    await recognizer.start_utterance()
    with trio.CancelScope() as scope:
        scope.cancel()
        await recognizer.feed(pcm[:FRAME])
    assert scope.cancelled_caught
    with trio.CancelScope() as scope:
        scope.cancel()
        await recognizer.end_utterance()
    # Whatever the cancellation interrupted, the next utterance starts clean and works.
    for i in range(0, len(pcm), FRAME):
        await recognizer.feed(pcm[i : i + FRAME])  # still the open utterance
    await recognizer.start_utterance()  # abandons it
    for i in range(0, len(pcm), FRAME):
        await recognizer.feed(pcm[i : i + FRAME])
    assert "forward" in (await recognizer.end_utterance()).split()
    await recognizer.aclose()


async def test_decoders_are_pooled_across_recognizers() -> None:
    stt = SphinxStt(keyphrases={"forward": 1.5e-10})  # a configuration no other test uses
    first = stt.recognizer()
    await first.start_utterance()
    assert stt.idle_decoders == 0
    await first.end_utterance()
    assert stt.idle_decoders == 1  # returned when the utterance ends, not at close
    second = stt.recognizer()
    await second.start_utterance()
    assert stt.idle_decoders == 0  # borrowed, not rebuilt
    await second.aclose()  # closed mid-utterance: the decoder is dropped, not pooled dirty
    assert stt.idle_decoders == 0
    await first.aclose()
    await stt.warm(2)
    assert stt.idle_decoders == 2


async def test_one_pool_per_configuration_shared_by_engines_and_sessions() -> None:
    # The engines factory builds a SphinxStt per connection: the decoders must still be shared,
    # and a session needs one only while an utterance is open.
    engines = [SphinxStt(keyphrases={"forward": 2.5e-10}) for _ in range(3)]
    other = SphinxStt(keyphrases={"forward": 3.5e-10})
    recognizers = [engine.recognizer() for engine in engines for _ in range(2)]
    await recognizers[0].start_utterance()
    await recognizers[0].end_utterance()
    assert engines[2].idle_decoders == 1  # visible to an engine built for another session
    for recognizer in recognizers:  # six sessions, one after another
        await recognizer.start_utterance()
        await recognizer.feed(goforward()[:FRAME])
        await recognizer.end_utterance()
    assert engines[2].decoders_built == 1  # one load served them all
    assert other.decoders_built == 0  # another configuration has its own pool
    for recognizer in recognizers:
        await recognizer.aclose()


async def test_a_shared_decoder_carries_no_session_state_into_another_session() -> None:
    # The front end adapts to what a decoder heard; with one pool for every session, a session must
    # hear exactly what it would with a fresh decoder, whatever ran on that decoder before.
    stt = SphinxStt(options={"beam": 1.01e-48})  # a configuration no other test uses
    vosk = read_wav("vosk_test.wav")
    _, fresh = await recognize(stt, vosk)
    assert stt.decoders_built == 1
    other = stt.recognizer()  # another session adapts the pooled decoder to other speech
    for pcm in (read_wav(SENSE), read_wav(CARDS)):
        await other.start_utterance()
        for i in range(0, len(pcm), FRAME):
            await other.feed(pcm[i : i + FRAME])
        await other.end_utterance()
    await other.aclose()
    _, again = await recognize(stt, vosk)
    assert stt.decoders_built == 1  # the same decoder served all three
    assert again == fresh


async def test_keyword_mode_spots_the_phrase_and_nothing_else() -> None:
    stt = SphinxStt(keyphrases={"forward": 1e-10, "ten meters": 1e-10})
    assert stt.mode == "keyword"
    partials, final = await recognize(stt, goforward())
    assert final == "forward ten meters"
    assert partials[0] == "forward"
    _, other = await recognize(stt, read_wav(CARDS))
    assert other == ""  # no false alarm on other speech


async def test_grammar_mode_recognises_within_the_grammar() -> None:
    stt = SphinxStt(grammar=CARDS_GRAMMAR)
    _, final = await recognize(stt, read_wav(CARDS))
    assert final == "eight of spades four of clubs seven of hearts"


async def test_bad_configuration_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="JSGF"):
        await SphinxStt(grammar="#JSGF V1.0; grammar g; public <a> = zzxqqy;").warm()
    with pytest.raises(ValueError, match="not both"):
        SphinxStt(keyphrases=["go"], grammar=CARDS_GRAMMAR)
    with pytest.raises(ValueError, match="sequence"):
        SphinxStt(keyphrases="forward")
    with pytest.raises(ValueError, match="thresholds"):
        SphinxStt(keyphrases={"forward": 2.0})


async def test_inline_compute_charges_the_virtual_clock(autojump_clock: trio.abc.Clock) -> None:
    # Under a virtual clock run_cpu runs the decoder on the loop and charges its time. (The
    # mode is a context variable: it stays inside this test's task.)
    set_compute_mode("inline")
    try:
        stt = SphinxStt(keyphrases=["forward"])
        start = trio.current_time()
        _, final = await recognize(stt, goforward())
        assert compute_mode() == "inline"
        assert final == "forward"
        assert trio.current_time() > start  # compute was charged, not free
        tts = EspeakTts()
        chunks = await synthesize(tts, "Inline synthesis works too.")
        assert [w.text for c in chunks for w in c.words] == ["Inline", "synthesis", "works", "too."]
    finally:
        set_compute_mode("thread")


# ---------------------------------------------------------------- espeak-ng


async def synthesize(tts: EspeakTts, text: str) -> list[TtsChunk]:
    send, receive = trio.open_memory_channel[TtsChunk](1000)
    async with send, receive:
        await tts.synthesize(text, send)
        send.close()
        return [chunk async for chunk in receive]


TRICKY = (
    "Hello there, how are you today? I'm fine.",
    "Café naïve résumé — it's 12.5 dollars, Dr. Smith's e-mail.",
    "Don't stop; U.S.A. is big. It's 3:45 and costs $5, or 1,000,000 euros.",
    "rock'n'roll well-known x86_64 (hello) \"quoted\" word",
    "— leading dash and trailing !",
    "  spaced   out  text\tand\nnewlines  ",
)


async def test_tts_produces_speech_at_its_rate_with_word_marks() -> None:
    tts = EspeakTts()
    assert tts.sample_rate == 22050
    sentence = "The quick brown fox jumps over the lazy dog."
    chunks = await synthesize(tts, sentence)
    assert len(chunks) > 1  # streamed in chunks, not one blob
    pcm = np.concatenate([c.pcm for c in chunks])
    assert pcm.dtype == np.int16
    seconds = len(pcm) / tts.sample_rate
    assert 1.0 < seconds < 6.0
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 500  # not silence
    words = [w for c in chunks for w in c.words]
    assert [w.text for w in words] == sentence.split()
    samples = [w.sample for w in words]
    assert samples[0] == 0 and samples == sorted(samples) and len(set(samples)) == len(samples)
    # Each chunk carries the words that start inside it (offsets count from the sentence start).
    offset = 0
    for chunk in chunks:
        assert all(offset <= w.sample < offset + len(chunk.pcm) for w in chunk.words)
        offset += len(chunk.pcm)
    # A word mark points at speech: the 150 ms after each word start (longer than a stop
    # consonant's closure, as in "quick") is not silent.
    for w in words:
        window = pcm[w.sample : w.sample + tts.sample_rate * 15 // 100].astype(np.float64)
        assert np.abs(window).max() > 300, w


@pytest.mark.parametrize("text", TRICKY)
async def test_word_texts_are_the_sentence_words_in_order(text: str) -> None:
    chunks = await synthesize(EspeakTts(), text)
    words = [w for c in chunks for w in c.words]
    assert [w.text for w in words] == text.split()
    samples = [w.sample for w in words]
    assert samples == sorted(samples)
    assert samples[-1] < sum(len(c.pcm) for c in chunks)


@settings(max_examples=60, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("abcdefghij ABC 0123 .,;:!?'\"-—()é€$%&\n")), max_size=60)
)
def test_word_alignment_holds_for_arbitrary_text(text: str) -> None:
    tts = EspeakTts()
    pcm, words = tts.synthesize_sync(text)
    if len(pcm) == 0:
        assert words == ()
        return
    assert [w.text for w in words] == text.split()
    samples = [w.sample for w in words]
    assert samples == sorted(samples) and all(0 <= s < len(pcm) for s in samples)


async def test_rate_and_voice_change_the_output() -> None:
    sentence = "Options change how this sentence sounds."

    async def length(tts: EspeakTts) -> int:
        return sum(len(c.pcm) for c in await synthesize(tts, sentence))

    slow, normal, fast = [await length(EspeakTts(rate_wpm=r)) for r in (100, 175, 350)]
    assert slow > normal > fast
    assert slow > 2 * fast
    assert await length(EspeakTts("de")) != normal
    low = np.concatenate([c.pcm for c in await synthesize(EspeakTts(pitch=10), sentence)])
    high = np.concatenate([c.pcm for c in await synthesize(EspeakTts(pitch=90), sentence)])
    assert not np.array_equal(low[: len(high)], high[: len(low)])


async def test_concurrent_sessions_with_different_voices_do_not_mix() -> None:
    # espeak is one global instance: the lock must keep each call's voice and rate its own.
    # (espeak's output varies by a few samples from call to call, so compare lengths.)
    engines = [EspeakTts(rate_wpm=120), EspeakTts("en-us+f3", rate_wpm=300), EspeakTts("fr")]
    sentence = "Each engine keeps its own settings."
    expected = [len(tts.synthesize_sync(sentence)[0]) for tts in engines]
    assert min(abs(a - b) for a in expected for b in expected if a != b) > 0.05 * max(expected)
    results: dict[tuple[int, int], list[TtsChunk]] = {}

    async def run(i: int, rep: int) -> None:
        results[i, rep] = await synthesize(engines[i], sentence)

    async with trio.open_nursery() as nursery:
        for rep in range(4):
            for i in range(len(engines)):
                nursery.start_soon(run, i, rep)
    assert len(results) == 12
    for (i, _), chunks in results.items():
        assert sum(len(c.pcm) for c in chunks) == pytest.approx(expected[i], rel=0.01)
        assert [w.text for c in chunks for w in c.words] == sentence.split()


async def test_barge_in_mid_sentence_releases_espeak() -> None:
    tts = EspeakTts()
    send, receive = trio.open_memory_channel[TtsChunk](0)
    got: list[TtsChunk] = []
    async with trio.open_nursery() as nursery:

        async def speak() -> None:
            async with send:
                await tts.synthesize(" ".join(STORY[:2]), send)

        nursery.start_soon(speak)
        got.append(await receive.receive())
        nursery.cancel_scope.cancel()  # the turn is cancelled while audio is still queued
    assert len(got) == 1
    # espeak's lock was released: the next sentence (from another task) synthesizes fine.
    chunks = await synthesize(tts, "Still speaking.")
    assert [w.text for c in chunks for w in c.words] == ["Still", "speaking."]


@pytest.mark.parametrize("text", ["", "   ", "\n", "...", "?"])
async def test_nothing_to_say_gives_no_audio(text: str) -> None:
    assert await synthesize(EspeakTts(), text) == []


def test_invalid_tts_options_are_clear_value_errors() -> None:
    with pytest.raises(ValueError, match="no voice 'klingon-xx'"):
        EspeakTts("klingon-xx")
    with pytest.raises(ValueError, match="rate_wpm"):
        EspeakTts(rate_wpm=20)
    with pytest.raises(ValueError, match="pitch"):
        EspeakTts(pitch=101)
    assert any(languages and languages[0] == "en-us" for _, languages in espeak_voices())


# ---------------------------------------------------------------- planner

FIXED_NOW = datetime(2024, 3, 5, 15, 7)


def planner(**kwargs: float) -> LocalPlanner:
    return LocalPlanner(now=lambda: FIXED_NOW, **kwargs)


def user(text: str) -> tuple[ChatMessage, ...]:
    return (ChatMessage("system", "You are a test."), ChatMessage("user", text))


async def respond(p: LocalPlanner, messages: tuple[ChatMessage, ...]) -> list[PlanOutput]:
    send, receive = trio.open_memory_channel[PlanOutput](10_000)
    async with send, receive:
        await p.respond(PlanRequest(turn=1, messages=messages), send)
        send.close()
        return [item async for item in receive]


def text_of(outputs: list[PlanOutput]) -> str:
    return "".join(o.text for o in outputs if isinstance(o, TextDelta))


@pytest.mark.parametrize(
    ("said", "answer"),
    [
        ("what is twelve times seven", "12 times 7 is 84."),
        ("what's 12 * 7", "12 times 7 is 84."),
        ("two plus three times four", "2 plus 3 times 4 is 14."),
        ("one hundred and five divided by five", "105 divided by 5 is 21."),
        ("what is twenty two over seven", "22 divided by 7 is about 3.143."),
        ("what is ten minus twenty", "10 minus 20 is -10."),
        ("nine divided by zero", "I can't divide by zero."),
        ("what time is it", "It's 3:07 PM."),
        ("what is the date today", "Today is Tuesday, March 5, 2024."),
        ("go forward ten meters", "You said: go forward ten meters."),
        ("one zero zero zero one", "You said: one zero zero zero one."),
        ("", "Sorry, I didn't catch that."),
    ],
)
async def test_planner_answers(said: str, answer: str) -> None:
    outputs = await respond(planner(), user(said))
    assert all(isinstance(o, TextDelta) for o in outputs)
    assert text_of(outputs) == answer
    assert len(outputs) == len(answer.split())  # streamed word by word


def test_arithmetic_parser_does_not_misread_digit_strings() -> None:
    assert evaluate_arithmetic("one two plus three") == ("2 plus 3", 5.0)
    assert evaluate_arithmetic("twenty-one minus one") == ("21 minus 1", 20.0)
    assert evaluate_arithmetic("a hundred plus a thousand") == ("100 plus 1000", 1100.0)
    assert evaluate_arithmetic("go forward ten meters") is None


async def test_story_is_long_and_streams_many_deltas() -> None:
    outputs = await respond(planner(), user("tell me a story"))
    story = text_of(outputs)
    assert story == "\n\n".join(STORY)
    assert len(outputs) > 300
    assert len(re.findall(r"[.!?](\s|$)", story)) > 25
    assert story.count("\n\n") == len(STORY) - 1


async def test_pacing_uses_the_trio_clock(autojump_clock: trio.abc.Clock) -> None:
    start = trio.current_time()
    outputs = await respond(planner(tokens_per_second=20), user("what is twelve times seven"))
    assert len(outputs) == 5
    assert trio.current_time() - start == pytest.approx(4 / 20)


async def test_continue_after_an_interrupted_story_resumes_where_hearing_stopped() -> None:
    p = planner()
    story = "\n\n".join(STORY)
    words = story.split()
    heard = " ".join(words[:57])  # cut inside "The villagers said it was broken…"
    assert heard.endswith("The villagers said it")
    history = (
        ChatMessage("user", "tell me a story"),
        ChatMessage("assistant", heard, interrupted=True),
        ChatMessage("user", "please continue"),
    )
    reply = text_of(await respond(p, history))
    assert reply.startswith("As I was saying: The villagers said it was broken beyond repair.")
    assert "Once upon a time" not in reply
    assert reply.endswith("The end.")
    # Interrupted again, and asked again: resumes the continuation, without a double opening.
    cut = " ".join(reply.split()[:6])
    history2 = (
        *history,
        ChatMessage("assistant", cut, interrupted=True),
        ChatMessage("user", "go on"),
    )
    again = text_of(await respond(p, history2))
    assert again.startswith("As I was saying: The villagers said it")
    assert again.count("As I was saying") == 1


async def test_continue_without_an_interruption_or_with_foreign_history() -> None:
    done = (
        ChatMessage("user", "what time is it"),
        ChatMessage("assistant", "It's 3:07 PM."),
        ChatMessage("user", "continue"),
    )
    assert text_of(await respond(planner(), done)).startswith("I had finished")
    foreign = (
        ChatMessage("user", "hi"),
        ChatMessage("assistant", "Some other model said this", interrupted=True),
        ChatMessage("user", "go on"),
    )
    assert "Some other model said this" in text_of(await respond(planner(), foreign))


async def test_repeat_refers_to_the_heard_history() -> None:
    history = (
        ChatMessage("user", "tell me a story"),
        ChatMessage("assistant", "Once upon a time, in a", interrupted=True),
        ChatMessage("user", "what did you say"),
    )
    assert text_of(await respond(planner(), history)) == "I said: Once upon a time, in a"
    assert text_of(await respond(planner(), user("say that again"))).startswith("I haven't")


async def test_planner_is_deterministic() -> None:
    messages = user("tell me a story")
    assert await respond(planner(), messages) == await respond(planner(), messages)


# ---------------------------------------------------------------- wiring


def test_default_engines_route_options() -> None:
    engines = default_engines(voice="en-us+f3", rate_wpm=200, tokens_per_second=5)
    assert isinstance(engines, Engines)
    assert isinstance(engines.stt, SphinxStt) and engines.stt.mode == "dictation"
    assert isinstance(engines.tts, EspeakTts) and engines.tts.voice == "en-us+f3"
    assert engines.tts.rate_wpm == 200
    assert isinstance(engines.planner, LocalPlanner)
    assert default_engines(keyphrases=["forward"]).stt.name == "pocketsphinx-keyword"
    with pytest.raises(TypeError, match="nonsense"):
        default_engines(nonsense=1)
