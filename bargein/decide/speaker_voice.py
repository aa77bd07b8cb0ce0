"""Whose voice, by a trained speaker embedding: the cosine distance between the d-vector of the
user's voiced speech (their turns) and that of the overlapping utterance
(`bargein.dsp.speaker_encoder`, Resemblyzer's GE2E encoder in numpy). The side-talk check's
``voice_model = "dvector"`` (`side_talk.SideTalkConfig`); docs/research.md, "A trained speaker
embedding" has the measurements behind the thresholds.

The cost is bounded by when it runs, not per frame: an utterance is embedded only while the
floor judges an overlap, once it has the voiced frames a rule needs (`SideTalkConfig`'s
`early_frames`, else `voice_frames`), again on reaching a rule's mark (`voice_frames`) and
every `step_frames` more, up to `max_frames` (1.6 s, one partial of the model); the user's
voice once after each turn that added speech to it. Between those a judgement reuses the last
embedding. Without the model (the Resemblyzer wheel not installed) there is no distance: the
level decides, and `unavailable` says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from bargein.dsp.speaker_encoder import (
    SpeakerEncoder,
    SpeakerEncoderUnavailable,
    cosine_distance,
    shared_encoder,
)

__all__ = ["SpeakerCue"]

F32 = NDArray[np.float32]


class SpeakerCue:
    """Caches the d-vectors one floor asks for (its encoder is shared by the process)."""

    def __init__(self, encoder: Callable[[], SpeakerEncoder] = shared_encoder, *,
                 step_frames: int = 10, max_frames: int = 80) -> None:
        if step_frames < 1 or max_frames < 1:
            raise ValueError("step_frames and max_frames must be >= 1")
        self._encoder = encoder
        self.step_frames = step_frames
        self.max_frames = max_frames
        self._user: tuple[object, int, F32] | None = None  # (profile, version, embedding)
        self._first: F32 | None = None  # the utterance's first voiced frame (identity)
        self._used = 0  # its voiced frames in the embedding
        self._utterance: F32 | None = None
        self.embeddings = 0  # how many the encoder computed (for tests and the bench)
        self.unavailable: str | None = None  # why the model could not load (then: no cue)

    def _embed(self, frames: Sequence[F32]) -> F32:
        pcm = np.clip(np.concatenate(frames), -32768, 32767).astype(np.int16)
        self.embeddings += 1
        return self._encoder().embed(pcm)

    def user(self, owner: object, version: int, frames: Sequence[F32]) -> F32:
        """The user's voice (`frames`: their voiced frames, oldest first), re-embedded only when
        `version` (the profile's count of frames learned) moved."""
        u = self._user
        if u is None or u[0] is not owner or u[1] != version:
            u = (owner, version, self._embed(frames))
            self._user = u
        return u[2]

    def utterance(self, frames: Sequence[F32], marks: Sequence[int] = ()) -> F32:
        """The utterance's voice (`frames`: its voiced frames so far, oldest first), embedded
        again every `step_frames` and on reaching any of `marks` (a rule's frame count)."""
        n = min(len(frames), self.max_frames)
        first = frames[0]
        if self._first is not first:
            self._first, self._used, self._utterance = first, 0, None
        if (self._utterance is None or n >= self._used + self.step_frames
                or any(self._used < m <= n for m in marks)):
            self._utterance = self._embed(frames[:n])
            self._used = n
        return self._utterance

    @property
    def frames_used(self) -> int:
        """The voiced frames the utterance's latest embedding was computed on."""
        return self._used

    def distance(self, owner: object, version: int, user: Sequence[F32],
                 frames: Sequence[F32], marks: Sequence[int] = ()) -> float | None:
        """The cosine distance of the utterance's voice from the user's (None: no model)."""
        if self.unavailable is not None:
            return None
        try:
            return cosine_distance(self.user(owner, version, user),
                                   self.utterance(frames, marks))
        except SpeakerEncoderUnavailable as e:
            self.unavailable = str(e)
            return None
