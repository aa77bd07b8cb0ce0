"""Echo evidence at a microphone onset over our voice, for ``EchoStage`` (echo_path): is this new
run of mic activity our own voice coming back? Pure and synchronous, one call per analysis frame.

Two kinds, either one finds the echo (docs/dsp.md, "Waveform evidence" and "Spectral evidence"):

- *waveform* (``bargein.dsp.echo_match``): the run's samples so far (up to 60 ms) against what
  played at every delay in reach; two comparisons in a row at >= ``match_corr`` and the same
  delay (within 1 ms). A direct-path echo, 40 ms after it starts.
- *spectral* (``bargein.dsp.echo_spectral``): the run's fine log spectra (up to
  ``spectral_ms``) against what played through a few room decays at every delay; three frames in
  a row at >= ``spectral_corr`` (the level following it at >= ``spectral_level_corr``) and lags
  within one frame, the mic no louder than the loudest far frame in reach (a room only loses
  energy). A reverberant room, whose tail defeats the
  waveform, 60-180 ms after the run starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bargein.dsp.echo_match import waveform_match
from bargein.dsp.echo_spectral import SpectralEvidence

from .echo_reference import F32, RATE, PlaybackReference


@dataclass(frozen=True, slots=True)
class Found:
    """An echo found at a mic onset: its delay (samples; to a frame for the spectral kind)."""

    delay: int
    lag_frames: int
    spectral: bool  # found by the spectral evidence (else by the waveform)


class OnsetEvidence:
    """Tracks the mic's runs of activity (a run ends after 100 ms below -60 dBFS) and, in a run
    over our voice while no echo is found, looks for the echo's evidence (module docstring):
    the waveform each frame of the run's first 80 ms and every 100 ms after, the spectrum each
    frame from the third to ``spectral_ms``."""

    def __init__(
        self,
        reference: PlaybackReference,
        *,
        frame_samples: int,
        max_delay_ms: float,
        match_corr: float = 0.8,
        spectral_corr: float = 0.45,
        spectral_level_corr: float = 0.8,
        spectral_frames: int = 4,
        room_loss_db: float = 3.0,
        spectral_ms: float = 400.0,
    ) -> None:
        self.reference = reference
        self.match_corr = match_corr
        self.spectral_corr = spectral_corr
        self.spectral_level_corr = spectral_level_corr
        self.room_loss_db = room_loss_db
        frame_ms = 1000 * frame_samples / RATE
        self._frame = frame_samples
        self._match_frames = max(2, round(60 / frame_ms))  # the window: up to 60 ms of onset
        self._match_every = max(1, round(100 / frame_ms))  # after the onset's first 80 ms
        self._match_first = max(3, round(80 / frame_ms))  # every frame (the hold's)
        self._max_lag = round(max_delay_ms * RATE / 1000)
        self._near = np.zeros(self._match_frames * frame_samples, np.float32)
        self.run = 0  # active mic frames in the current run
        self._quiet = self._run_gap = max(1, round(100 / frame_ms))
        self._match_delay: int | None = None  # delay (samples) of this run's last match
        self.spectral_frames = max(2, round(spectral_ms / frame_ms))
        self._spectral = SpectralEvidence(
            frame_samples, max_lag=round(max_delay_ms / frame_ms),
            max_frames=self.spectral_frames,
        )
        self._spectral_run: list[int] = []  # lags of this run's frames in a row at the threshold
        self._needed = spectral_frames
        self._first = max(3, round(100 / frame_ms))
        self.promising = False  # the last two spectral matches: a likeness at one lag
        self._last_lag = -9

    @property
    def match_pending(self) -> bool:
        """A first waveform match of this run waits for its confirmation."""
        return self._match_delay is not None

    def frame(
        self, end: int, near: F32, far: F32, mic_db: float, far_max: float, search: bool
    ) -> Found | None:
        """One analysis frame: ``end`` is the reference position just after it, ``near`` and
        ``far`` its mic and reference samples, ``far_max`` the loudest far frame in reach (dBFS);
        ``search`` while no echo is found. Returns the echo when this frame finds it."""
        if search:
            self._spectral.push(far, near)
        else:  # an echo found: nothing to look for until it is dropped
            self._spectral.pause()
        self._near[: -self._frame] = self._near[self._frame :]
        self._near[-self._frame :] = near[-self._frame :]
        if mic_db <= -60.0:
            self._quiet += 1
            if self._quiet >= self._run_gap:
                self._new_run()
            return None
        if self._quiet >= self._run_gap:
            self._new_run()
        self._quiet = 0
        self.run += 1
        if not search or far_max < -60.0:
            return None
        return self._waveform(end) or self._spectrum(mic_db, far_max)

    def _new_run(self) -> None:
        self.run = 0
        self.promising = False
        self._last_lag = -9
        self._match_delay = None
        self._spectral_run.clear()

    def _waveform(self, end: int) -> Found | None:
        run = self.run
        if run > self._match_first and run % self._match_every:
            return None  # a long run: once every 100 ms is enough (an echo starting under it)
        n = min(run, self._match_frames) * self._frame
        ref = self.reference.read(end - n - self._max_lag, n + self._max_lag)
        ncc, delay = waveform_match(self._near[-n:], ref)
        if ncc < self.match_corr:
            self._match_delay = None
            return None
        last, self._match_delay = self._match_delay, delay
        if last is not None and abs(delay - last) <= RATE // 1000:
            return Found(delay, round(delay / self._frame), spectral=False)
        return None

    def _spectrum(self, mic_db: float, far_max: float) -> Found | None:
        run = self.run
        if run < 3 or run > self.spectral_frames:
            self.promising = False
            return None
        m = self._spectral.match(run)
        near = m.score >= 0.3 and m.level >= 0.6 and abs(m.lag - self._last_lag) <= 1
        self.promising, self._last_lag = near, m.lag
        if run < self._first:
            return None  # the first 100 ms: two voices of one pitch can still look alike
        lags = self._spectral_run
        like = m.score >= self.spectral_corr and m.level >= self.spectral_level_corr
        like = like and mic_db <= far_max - self.room_loss_db  # a room only loses energy
        if not like or (lags and abs(m.lag - lags[-1]) > 1):
            lags.clear()
        if like:
            lags.append(m.lag)
        lag = m.lag
        if len(lags) < self._needed:
            return None
        # The lag is to a frame: start the canceller's window half a frame earlier.
        return Found(max(0, lag * self._frame - self._frame // 2), lag, spectral=True)
