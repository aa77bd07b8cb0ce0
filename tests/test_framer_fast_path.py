"""The framer's one-frame fast path (a live chunk that is exactly one frame) keeps the general
path's contract: a fresh array, the same counters, and the remainder logic untouched after it."""

from __future__ import annotations

import numpy as np

from bargein.dsp import Framer


def test_a_chunk_of_exactly_one_frame_is_copied_and_counted() -> None:
    framer = Framer(320)
    chunk = np.arange(320, dtype=np.int16)
    (frame,) = framer.push(chunk)
    chunk[:] = 0  # the caller reuses its buffer
    assert np.array_equal(frame, np.arange(320, dtype=np.int16))
    assert (framer.samples_in, framer.frames_out, framer.samples_out, framer.pending) == (
        320, 1, 320, 0,
    )
    # After a partial chunk the next one-frame chunk takes the general path (remainder first).
    assert framer.push(np.ones(100, np.int16)) == []
    frames = framer.push(np.full(320, 2, np.int16))
    assert len(frames) == 1 and framer.pending == 100
    assert np.array_equal(frames[0][:100], np.ones(100)) and np.all(frames[0][100:] == 2)
