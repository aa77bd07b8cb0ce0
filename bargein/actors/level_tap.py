"""The microphone's levels for the floor (pure): while the VAD hears speech, each analysis
frame's level — and, for side talk, its spectral shape — collected and handed over once per
STT batch as one `VoiceLevels` message, so the floor's classifier and outside judges hear what
the built-in rules hear without a channel hop per frame. Frames of the VAD's onset window are
included when an onset is confirmed; nothing is collected in silence. With `voice` (the
policy's `side_talk_voice`) each shape row also carries the frame's MFCCs (`mfcc.frame_mfcc`)
for the side-talk voice check; with `speaker` (`side_talk_speaker`) its samples instead, for
the d-vector check (`bargein.decide.speaker_voice`: it embeds them only while judging)."""

from __future__ import annotations

from collections import deque

import numpy as np

from bargein.decide.side_talk import frame_shapes
from bargein.dsp.mfcc import frame_mfcc
from bargein.runtime.messages import AudioFrame, SpeechStarted, SpeechStopped, VoiceLevels


class LevelTap:
    def __init__(self, *, shapes: bool, window_frames: int = 10, voice: bool = False,
                 speaker: bool = False) -> None:
        self.shapes = shapes or voice or speaker
        self.voice = voice
        self.speaker = speaker
        self._window: deque[AudioFrame] = deque(maxlen=max(1, window_frames))
        self._frames: list[AudioFrame] = []
        self._speaking = False
        self._at = 0.0  # media time of the newest frame captured

    def event(self, event: SpeechStarted | SpeechStopped) -> None:
        if isinstance(event, SpeechStarted):
            self._speaking = True
            # The onset window's frames that lie at or after the onset belong to the utterance.
            self._frames.extend(f for f in self._window if f.end / f.rate > event.onset)
            self._window.clear()
        else:
            self._speaking = False

    def frame(self, frame: AudioFrame) -> None:
        """Every analysis frame, after the VAD (and its event, if any) has seen it."""
        self._at = frame.end / frame.rate
        if self._speaking:
            if not self._frames or frame.start >= self._frames[-1].end:
                self._frames.append(frame)
        else:
            self._window.append(frame)

    def take(self) -> VoiceLevels | None:
        """The frames collected since the last take (None: none)."""
        frames, self._frames = self._frames, []
        if not frames:
            return None
        first = frames[0]
        n = len(first.pcm)
        shapes = None
        if self.shapes:
            pcm = np.concatenate([f.pcm for f in frames])
            shapes = frame_shapes(pcm, n)
            if self.speaker:
                samples = pcm[: len(shapes) * n].reshape(len(shapes), n).astype(np.float32)
                shapes = np.hstack((shapes, samples))
            elif self.voice:
                ceps = frame_mfcc(pcm, n)[0].astype(np.float32)
                shapes = np.hstack((shapes, ceps))
        return VoiceLevels(
            start=first.start / first.rate,
            frame_s=n / first.rate,
            levels=tuple(f.level_dbfs for f in frames),
            at=self._at,
            shapes=shapes,
        )
