"""Fixed-size framing of an arbitrarily chunked PCM16 stream, with media-time bookkeeping."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_INT16 = np.dtype(np.int16)
_EMPTY: NDArray[np.int16] = np.zeros(0, np.int16)  # (never written to)


def _mono_int16(x: NDArray[np.int16]) -> NDArray[np.int16]:
    """A chunk as the framer takes it (per chunk: no needless calls)."""
    a = x if type(x) is np.ndarray else np.asarray(x)
    if a.dtype != _INT16:
        raise TypeError(f"Framer takes int16 samples, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"Framer takes 1-D (mono) chunks, got shape {a.shape}")
    return a


def frame_samples(rate: int, ms: float) -> int:
    """Samples in a frame of ``ms`` milliseconds at ``rate`` Hz; ValueError unless whole."""
    n = rate * ms / 1000.0
    if rate <= 0 or ms <= 0 or n != int(n):
        raise ValueError(f"{ms} ms at {rate} Hz is not a whole number of samples")
    return int(n)


class Framer:
    """Chunks in, fixed frames of ``frame_samples`` out; the remainder waits for the next push.

    Invariant: ``samples_in == samples_out + pending``, where ``samples_out`` counts real (not
    padding) samples handed out. ``frames_out`` counts every array handed out, the flushed tail
    included; frame k starts at media sample ``k * frame_samples``. Frames never alias the
    caller's arrays.
    """

    __slots__ = ("_rest", "frame_samples", "frames_out", "padded", "samples_in", "samples_out")

    def __init__(self, frame_samples: int) -> None:
        if isinstance(frame_samples, bool) or not isinstance(frame_samples, int):
            raise ValueError(f"frame_samples must be an int, got {frame_samples!r}")
        if frame_samples <= 0:
            raise ValueError(f"frame_samples must be positive, got {frame_samples}")
        self.frame_samples = frame_samples
        self._rest: NDArray[np.int16] = np.zeros(0, np.int16)
        self.samples_in = 0
        self.frames_out = 0
        self.samples_out = 0
        self.padded = 0  # zero samples added by flush(pad=True)

    @property
    def pending(self) -> int:
        return int(self._rest.shape[0])

    def push(self, x: NDArray[np.int16]) -> list[NDArray[np.int16]]:
        """Append a chunk; return the full frames now available, oldest first."""
        a = _mono_int16(x)
        n = self.frame_samples
        size = a.shape[0]
        if size == n and not self._rest.shape[0]:  # the usual live chunk: one frame
            self.samples_in += n
            self.frames_out += 1
            self.samples_out += n
            return [a.copy()]
        self.samples_in += int(size)
        # Always a fresh array, so the frames (views into it) never alias the caller's chunk.
        buf = np.concatenate((self._rest, a)) if self._rest.shape[0] else a.copy()
        k = buf.shape[0] // n
        frames = [buf[i * n : (i + 1) * n] for i in range(k)]
        rest = buf[k * n :]
        # Copy a short remainder so it does not pin a large chunk in memory.
        self._rest = rest.copy() if k else rest
        self.frames_out += k
        self.samples_out += k * n
        return frames

    def push_whole(self, x: NDArray[np.int16]) -> NDArray[np.int16] | None:
        """`push`, with the full frames now available as one fresh array (their samples in
        order, ``k * frame_samples`` of them), or None if there is none yet: for a consumer that
        cuts frames only when it needs them (TTS's output, most of which a barge-in drops)."""
        a = _mono_int16(x)
        n = self.frame_samples
        size = int(a.shape[0])
        self.samples_in += size
        rest = self._rest
        have = int(rest.shape[0]) + size
        k = have // n
        if not k:
            self._rest = np.concatenate((rest, a)) if rest.shape[0] else a.copy()
            return None
        whole = k * n
        if rest.shape[0]:
            buf = np.concatenate((rest, a))
            out = buf[:whole]
            self._rest = buf[whole:].copy() if whole < have else _EMPTY
        else:
            out = a[:whole].copy()
            self._rest = a[whole:].copy() if whole < have else _EMPTY
        self.frames_out += k
        self.samples_out += whole
        return out

    def flush(self, pad: bool = True) -> NDArray[np.int16] | None:
        """End of stream: the remainder, zero-padded to a whole frame if ``pad``; None if empty."""
        rest = self._rest
        if rest.shape[0] == 0:
            return None
        self._rest = np.zeros(0, np.int16)
        n = self.frame_samples
        self.frames_out += 1
        self.samples_out += int(rest.shape[0])
        if pad:
            frame = np.zeros(n, np.int16)
            frame[: rest.shape[0]] = rest
            self.padded += n - int(rest.shape[0])
            return frame
        return rest.copy()
