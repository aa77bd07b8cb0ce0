"""pocketsphinx's search limits for dictation (docs/engines.md, "Search limits"): the defaults
reach the decoder, `options` override them, and keyword/grammar decoders keep their own."""

from __future__ import annotations

from typing import Any

import pytest

from bargein.engines.embedded import SphinxStt
from bargein.engines.embedded.sphinx_stt import DICTATION_SEARCH, SphinxRecognizer
from bargein.testing.audio import load, shared_audio_dir

FRAME = 320


async def _decoder_config(stt: SphinxStt) -> Any:
    """The configuration of the decoder an utterance of ``stt`` actually borrows."""
    recognizer = stt.recognizer()
    try:
        await recognizer.start_utterance()
        assert isinstance(recognizer, SphinxRecognizer)
        return recognizer._decoder.config
    finally:
        await recognizer.aclose()


def test_dictation_limits_are_the_measured_ones() -> None:
    # Measured (docs/engines.md): -45 % CPU per audio s, WER on the shared recordings no worse.
    assert DICTATION_SEARCH == {"maxwpf": 5, "maxhmmpf": 4000}


async def test_dictation_decoders_are_built_with_the_search_limits() -> None:
    config = await _decoder_config(SphinxStt())
    assert config["maxwpf"] == 5
    assert config["maxhmmpf"] == 4000
    assert config["fwdflat"] is False  # the second pass stays off


async def test_options_override_the_search_limits() -> None:
    # pocketsphinx's own defaults (no word-exit limit, 30000 HMMs) are one option away.
    config = await _decoder_config(SphinxStt(options={"maxwpf": -1, "maxhmmpf": 30000}))
    assert config["maxwpf"] == -1
    assert config["maxhmmpf"] == 30000


async def test_keyword_and_grammar_decoders_keep_pocketsphinx_defaults() -> None:
    # The limits were measured on dictation only; keyword spotting and grammars are untouched.
    keyword = await _decoder_config(SphinxStt(keyphrases={"forward": 1.7e-10}))
    grammar = await _decoder_config(SphinxStt(grammar="#JSGF V1.0; grammar g; public <a> = go;"))
    for config in (keyword, grammar):
        assert config["maxwpf"] == -1
        assert config["maxhmmpf"] == 30000


async def test_dictation_with_the_limits_still_hears_the_command() -> None:
    try:
        shared_audio_dir()
    except FileNotFoundError:
        pytest.skip("the shared recordings are not beside this checkout")
    pcm = load("pocketsphinx_goforward.raw")
    recognizer = SphinxStt().recognizer()
    await recognizer.start_utterance()
    for i in range(0, len(pcm), 5 * FRAME):  # 100 ms batches, as the stt actor feeds
        await recognizer.feed(pcm[i : i + 5 * FRAME])
    text = await recognizer.end_utterance()
    await recognizer.aclose()
    assert "go forward ten" in text
