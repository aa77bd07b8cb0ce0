"""`TurnAudio`: engine chunks in, fixed output frames out, each word on the frame with its end."""

from __future__ import annotations

import numpy as np

from bargein.actors.tts import TurnAudio
from bargein.actors.turn_feed import FrameRun
from bargein.engines.base import TtsChunk, WordStart
from bargein.runtime.messages import OutFrame


def cut(run: FrameRun | None) -> list[OutFrame]:
    """A run's frames, cut as egress takes them."""
    frames = []
    while run is not None and run.count:
        frames.append(run.cut())
    return frames


def frames_of_words(audio: TurnAudio, chunks: list[TtsChunk], text: str) -> dict[str, int]:
    audio.begin_sentence(0, text)
    frames = [f for c in chunks for f in cut(audio.push(c))]
    audio.end_sentence()
    frames += cut(audio.finish())
    assert [f.start for f in frames] == [320 * i for i in range(len(frames))]
    return {w.text: i for i, f in enumerate(frames) for w in f.words}


def test_a_word_rides_on_the_frame_that_holds_its_end() -> None:
    audio = TurnAudio(turn=1, in_rate=16000, out_rate=16000, frame_samples=320)
    pcm = np.ones(1000, np.int16)
    # "aa" spans [0, 500) (frames 0-1), "bb" [500, 1000) (frames 1-3, the last one padded).
    chunk = TtsChunk(pcm, (WordStart("aa", 0), WordStart("bb", 500)))
    assert frames_of_words(audio, [chunk], "aa bb") == {"aa": 1, "bb": 3}


def test_word_marks_split_across_chunks_keep_their_spans() -> None:
    audio = TurnAudio(turn=1, in_rate=16000, out_rate=16000, frame_samples=320)
    chunks = [
        TtsChunk(np.ones(300, np.int16), (WordStart("one", 0),)),
        TtsChunk(np.ones(700, np.int16), (WordStart("two", 350), WordStart("three", 650))),
    ]
    marks = frames_of_words(audio, chunks, "one two three")
    # Starts count from the sentence start: one [0, 350) ends in frame 1 ([320, 640)),
    # two [350, 650) in frame 2 ([640, 960)), three [650, 1000) in frame 3.
    assert marks == {"one": 1, "two": 2, "three": 3}


def test_marks_are_placed_on_the_output_timeline_after_resampling() -> None:
    audio = TurnAudio(turn=1, in_rate=8000, out_rate=16000, frame_samples=320)
    audio.begin_sentence(0, "aa bb")
    marks = (WordStart("aa", 0), WordStart("bb", 400))
    frames = cut(audio.push(TtsChunk(np.ones(800, np.int16), marks)))
    audio.end_sentence()
    frames += cut(audio.finish())
    words = [w for f in frames for w in f.words]
    delay = audio._delay
    assert [(w.text, w.start, w.end) for w in words] == [
        ("aa", delay, 800 + delay),
        ("bb", 800 + delay, 1600 + delay),
    ]
    assert all(w.end <= f.end for f in frames for w in f.words)
