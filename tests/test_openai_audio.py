"""OpenAISTT and OpenAITTS through the real openai SDK against the local server."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
import trio

from bargein.engines.base import TtsChunk, WordStart
from bargein.engines.errors import SttError, TtsError
from bargein.engines.openai_compat import OpenAISTT, OpenAITTS, estimate_word_starts
from bargein.testing.openai_server import OpenAIServer, ServerConfig, _speech_pcm, serve_openai

HANG_GUARD = 20  # seconds; a hang guard, not a speed bound


async def start(nursery: trio.Nursery, config: ServerConfig) -> OpenAIServer:
    server: OpenAIServer = await nursery.start(serve_openai, config)
    return server


async def test_stt_posts_the_utterance_as_wav_and_returns_the_text(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig(transcripts=[" Hello there. ", "Second."]))
    rng = np.random.default_rng(1)
    pieces = [rng.integers(-3000, 3000, n).astype(np.int16) for n in (320, 1, 4000)]
    with trio.fail_after(HANG_GUARD):
        stt = OpenAISTT(base_url=server.url, model="whisper-local", language="en")
        recognizer = stt.recognizer()
        await recognizer.start_utterance()
        assert [await recognizer.feed(p) for p in pieces] == [None, None, None]
        assert await recognizer.end_utterance() == "Hello there."
        # The recognizer starts afresh for the next utterance.
        await recognizer.start_utterance()
        await recognizer.feed(pieces[0])
        assert await recognizer.end_utterance() == "Second."
        await recognizer.aclose()
        await stt.aclose()

    form = server.requests[0].form
    assert (form["model"], form["response_format"], form["language"]) == (
        "whisper-local",
        "json",
        "en",
    )
    file = form["file"]
    assert isinstance(file, bytes)
    with wave.open(io.BytesIO(file)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        sent = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    np.testing.assert_array_equal(sent, np.concatenate(pieces))
    second = server.requests[1].form["file"]
    assert isinstance(second, bytes) and len(second) == 44 + 2 * 320


async def test_stt_empty_utterance_makes_no_request(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig(transcripts=["unused"]))
    stt = OpenAISTT(base_url=server.url)
    recognizer = stt.recognizer()
    with trio.fail_after(HANG_GUARD):
        await recognizer.start_utterance()
        assert await recognizer.end_utterance() == ""
        await stt.aclose()
    assert server.requests == []


async def test_stt_server_error_becomes_stt_error(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig(transcription_status=500))
    stt = OpenAISTT(base_url=server.url)
    recognizer = stt.recognizer()
    with trio.fail_after(HANG_GUARD):
        await recognizer.start_utterance()
        await recognizer.feed(np.zeros(160, dtype=np.int16))
        with pytest.raises(
            SttError, match=r"transcription at 127\.0\.0\.1:\d+/whisper-1 .*HTTP 500"
        ):
            await recognizer.end_utterance()
        await stt.aclose()


async def test_stt_unreachable_becomes_stt_error() -> None:
    stt = OpenAISTT(base_url="http://127.0.0.1:9/v1")  # discard port: nothing listens
    recognizer = stt.recognizer()
    with trio.fail_after(HANG_GUARD):
        await recognizer.start_utterance()
        await recognizer.feed(np.zeros(160, dtype=np.int16))
        with pytest.raises(SttError, match="connection failed"):
            await recognizer.end_utterance()
        await stt.aclose()


async def synthesize(tts: OpenAITTS, text: str) -> list[TtsChunk]:
    chunks: list[TtsChunk] = []
    send, receive = trio.open_memory_channel[TtsChunk](0)

    async def consume() -> None:
        async for chunk in receive:
            chunks.append(chunk)

    error: TtsError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        async with send:
            try:
                await tts.synthesize(text, send)
            except TtsError as exc:  # unwrapped from the nursery's exception group
                error = exc
    if error is not None:
        raise error
    return chunks


async def test_tts_streams_pcm_across_odd_chunk_boundaries(nursery: trio.Nursery) -> None:
    # 1001-byte network chunks split samples in half; the audio must come out intact.
    config = ServerConfig(speech_chunk_bytes=1001, speech_chunk_delay=0.001)
    server = await start(nursery, config)
    text = "The quick brown fox jumps over the lazy dog."
    with trio.fail_after(HANG_GUARD):
        tts = OpenAITTS(base_url=server.url, model="tts-local", voice="nova", speed=1.25)
        chunks = await synthesize(tts, text)
        await tts.aclose()

    expected = _speech_pcm(text, config.speech_seconds_per_char)
    audio = np.concatenate([c.pcm for c in chunks])
    assert audio.dtype == np.int16
    np.testing.assert_array_equal(audio, expected)
    assert len(chunks) > 5  # streamed in pieces, not as one buffer
    body = server.requests[0].json
    assert body == {
        "input": text,
        "model": "tts-local",
        "voice": "nova",
        "response_format": "pcm",
        "speed": 1.25,
    }
    assert tts.sample_rate == 24000

    # Word marks: every word once, in order, each inside the chunk it travels with.
    marks: list[WordStart] = []
    offset = 0
    for chunk in chunks:
        for word in chunk.words:
            assert offset <= word.sample < offset + len(chunk.pcm)
        marks.extend(chunk.words)
        offset += len(chunk.pcm)
    assert [m.text for m in marks] == text.split()
    samples = [m.sample for m in marks]
    assert samples == sorted(samples) and samples[0] == 0


async def test_tts_first_audio_arrives_before_the_sentence_is_synthesized(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery, ServerConfig(speech_chunk_delay=30.0))
    send, receive = trio.open_memory_channel[TtsChunk](0)
    tts = OpenAITTS(base_url=server.url)
    with trio.fail_after(HANG_GUARD):
        with trio.CancelScope() as turn:
            async with trio.open_nursery() as inner:
                inner.start_soon(tts.synthesize, "A long sentence that takes a while.", send)
                first = await receive.receive()
                cancelled_at = trio.current_time()
                turn.cancel()  # barge-in while the rest is still coming
        closed = await server.wait_closed(0)
        await tts.aclose()
    assert len(first.pcm) == 2400  # the server's first 4800-byte chunk
    assert first.words and first.words[0] == WordStart("A", 0)
    # How soon (bargein bench openai measures it; no wall-clock bound in a test): the server
    # saw the stream closed after the cancel, before it had sent the rest.
    assert closed >= cancelled_at


async def test_tts_words_estimated_past_the_audio_come_with_a_silent_tail(
    nursery: trio.Nursery,
) -> None:
    # The server speaks twice as fast as the engine's rate estimate.
    server = await start(nursery, ServerConfig(speech_seconds_per_char=1 / 26))
    text = "One two three four five six."
    with trio.fail_after(HANG_GUARD):
        tts = OpenAITTS(base_url=server.url, chars_per_second=13.0)
        chunks = await synthesize(tts, text)
        await tts.aclose()
    words = [w.text for c in chunks for w in c.words]
    assert words == text.split()
    tail = chunks[-1]
    assert tail.words and not tail.pcm.any() and len(tail.pcm) == 240
    audio = sum(len(c.pcm) for c in chunks[:-1])
    assert all(w.sample >= audio for w in tail.words)


async def test_tts_server_error_becomes_tts_error(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig(speech_status=503))
    tts = OpenAITTS(base_url=server.url)
    with trio.fail_after(HANG_GUARD):
        with pytest.raises(TtsError, match="HTTP 503"):
            await synthesize(tts, "Hello.")
        await tts.aclose()


async def test_tts_blank_text_makes_no_request(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig())
    tts = OpenAITTS(base_url=server.url)
    with trio.fail_after(HANG_GUARD):
        assert await synthesize(tts, "  ") == []
        await tts.aclose()
    assert server.requests == []


def test_word_start_estimates_are_proportional_to_characters() -> None:
    marks = estimate_word_starts("ab cd efgh", 1000)
    assert marks == [WordStart("ab", 0), WordStart("cd", 300), WordStart("efgh", 600)]
    assert estimate_word_starts("   ", 1000) == []
