"""The OpenAI recognizer's buffer is bounded: a long utterance is posted in pieces of at most
`max_utterance_s`, each piece's text is a partial, and the final transcript joins them."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
import trio

from bargein.engines.openai_compat import OpenAISTT
from bargein.testing.openai_server import OpenAIServer, ServerConfig, serve_openai


async def test_long_utterance_is_transcribed_in_bounded_pieces(nursery: trio.Nursery) -> None:
    server: OpenAIServer = await nursery.start(
        serve_openai, ServerConfig(transcripts=["one", "two", "three"])
    )
    stt = OpenAISTT(base_url=server.url, max_utterance_s=1.0)
    recognizer = stt.recognizer()
    chunk = np.ones(3200, np.int16)  # 200 ms
    with trio.fail_after(20):  # a hang guard, not a speed bound
        await recognizer.start_utterance()
        partials = [await recognizer.feed(chunk) for _ in range(12)]  # 2.4 s
        assert max(len(c) for c in recognizer._chunks) <= 16000
        final = await recognizer.end_utterance()
        await recognizer.aclose()
        await stt.aclose()
    assert [p for p in partials if p] == ["one", "one two"]  # after 1.0 s and 2.0 s
    assert final == "one two three"
    sizes = []
    for request in server.requests:
        file = request.form["file"]
        assert isinstance(file, bytes)
        with wave.open(io.BytesIO(file)) as wav:
            sizes.append(wav.getnframes())
    assert sizes == [16000, 16000, 6400]


def test_max_utterance_is_validated() -> None:
    with pytest.raises(ValueError, match="max_utterance_s"):
        OpenAISTT(base_url="http://127.0.0.1:9/v1", max_utterance_s=0)
