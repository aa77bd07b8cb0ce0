"""Whisper's speculative final in a pause is also that pause's partial: the partial interval
restarts from it, so speculating early in a pause (`speculate_ms` 60) does not add a partial
decode soon after the user goes on. Loads the real model from the installed wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing

from bargein.engines.neural import missing_packages, neural_available
from bargein.wavio import read_wav

pytestmark = pytest.mark.skipif(
    not neural_available(), reason=f"the 'neural' extra is not installed: {missing_packages()}"
)
BATCH = 1600  # 100 ms, the stt actor's default batch


async def test_a_speculative_decode_restarts_the_partial_interval(
    audio_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Fed at the live pace on a virtual clock (decodes in threads cost no virtual time), so the
    # recognizer never lags the clock and skips no partial for that reason.
    from bargein.engines.neural.whisper_decode import voiced_onset
    from bargein.engines.neural.whisper_stt import WhisperStt

    first, _ = read_wav(audio_dir / "pocketsphinx_goforward.raw")
    second, _ = read_wav(audio_dir / "pocketsphinx_cards_005.wav")
    onset = voiced_onset(second)
    assert onset is not None
    second = second[int(onset * 16000) :]
    stt = WhisperStt(partial_interval_ms=500, speculate_ms=60)
    probe = stt.recognizer()
    await probe.start_utterance()
    await probe.feed(first)
    voiced_end = probe._voiced_end
    await probe.aclose()

    recognizer = stt.recognizer()
    await recognizer.start_utterance()
    assert await recognizer.feed(first[:voiced_end])  # a partial (the first feed is due)
    await trio.sleep(BATCH / 16000)
    await recognizer.feed(np.zeros(BATCH, np.int16))  # 100 ms of silence: the speculation
    assert recognizer.stats["decodes"] == 2 and recognizer._speculated is not None
    decodes = []
    for i in range(0, 8 * BATCH, BATCH):  # the user goes on
        await trio.sleep(BATCH / 16000)
        await recognizer.feed(second[i : i + BATCH])
        decodes.append(recognizer.stats["decodes"])
    # The next partial comes 500 ms of audio after the speculation, not after the partial
    # before it (that would be at the 4th batch).
    assert decodes == [2, 2, 2, 2, 3, 3, 3, 3]
    text = await recognizer.end_utterance()
    assert recognizer.stats["speculative_discarded"] == 1
    assert {"forward", "spades"} <= {w.strip(".,").lower() for w in text.split()}
    await recognizer.aclose()
