"""The echo path of a session: what egress played, on the session clock, and the canceller that
removes it from the microphone before the VAD. Pure and synchronous (times are passed in, from
``trio.current_time()`` by the callers), like ``VadStage``.

- ``PlaybackReference`` and ``CaptureClock`` (``echo_reference``): what played when, and when
  the mic's samples were captured;
- ``EchoStage``: per 16 kHz analysis frame, the reference for that frame's capture time through
  the ``EchoCanceller``; it returns the cleaned frame and the frame the VAD should judge, gated
  by the canceller's double-talk state (see docs/dsp.md, "In the session").
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from bargein.dsp import EchoCanceller, Resampler, float32_to_pcm16, pcm16_to_float32, rms_dbfs
from bargein.runtime.messages import AudioFrame

from .echo_onset import Found, OnsetEvidence
from .echo_reference import F32, RATE, CaptureClock, PlaybackReference

# A far frame above this level is "our voice is playing": the echo may be in the mic.
FAR_ACTIVE_DBFS = -60.0


def _dbfs(x: F32) -> float:
    if x.shape[0] == 0:
        return -120.0
    ms = float(np.dot(x, x)) / x.shape[0]
    return max(-120.0, 10 * math.log10(ms)) if ms > 0 else -120.0


@dataclass(frozen=True, slots=True)
class EchoPathStats:
    frames: int  # analysis frames through the canceller
    far_active_frames: int  # frames with our voice playing within the echo window
    gated_frames: int  # frames the VAD was told are not the user (echo)
    double_talk_frames: int  # far-active frames the canceller flagged as double talk
    learning_frames: int  # far-active frames judged by level while the canceller learned
    louder_frames: int  # frames the filter would have made louder: passed on unchanged
    echo_found: bool  # the mic's envelope has followed what we played: there is an echo
    echo_dropped: int  # found, then not confirmed for `stale_s`: a chance likeness
    echo_matches: int  # found by the waveform of a mic onset (the rest: by the envelope)
    echo_spectral: int  # found by the fine spectrum of a mic onset (a reverberant room)
    held_frames: int  # frames of mic onsets over our voice held for the waveform evidence
    released_frames: int  # held frames (probe or onset hold) then handed to the VAD late
    erle_db: float  # recent echo return loss enhancement on frames judged echo
    reference_runs: int  # contiguous stretches of played audio in the reference
    delay_ms: float  # the canceller's bulk delay estimate
    converged: bool


class Quantile:
    """A running estimate of a quantile of a stream (dB): each value above it raises it by
    ``step_db * q``, each value at or below lowers it by ``step_db * (1 - q)``, so it settles
    where a fraction ``q`` of the values lie below."""

    def __init__(self, q: float, *, step_db: float, start: float) -> None:
        self.q = q
        self.step_db = step_db
        self.value = start

    def feed(self, x: float) -> None:
        if x > self.value:
            self.value += self.step_db * self.q
        else:
            self.value -= self.step_db * (1.0 - self.q)


class EchoStage:
    """The canceller between the mic's framer and its VAD.

    ``process(frame) -> (cleaned, for_vad)``: ``cleaned`` is the frame with our echo removed
    (STT hears it); ``for_vad`` is the same frame, or, when its voice is taken to be our echo,
    that frame at the silence level (the VAD counts no frame below its ``min_level_dbfs``).
    The gate, per frame (docs/dsp.md, "In the session"):

    - our voice has not played within the canceller's reach (bulk delay + tail): ungated;
    - no echo found yet (the mic's level envelope has not followed the reference's, at any
      lag in reach, with correlation >= ``evidence_corr``; nor, in the first frames of a mic
      onset, its waveform (``match_corr``) or its spectrum (``spectral_corr``, a reverberant
      room; ``echo_onset``)): ungated -- a headset, or no echo -- except the
      first ``hold_ms`` of each mic onset over our voice, while the waveform is compared
      (one frame more while a first match waits for its confirmation);
    - echo found, and the canceller removes at least ``working_erle_db`` from frames judged
      echo: voice counts where the canceller did not add energy (a misadjusted filter's own
      output into a quiet mic is not voice) and the cleaned frame stands above the residual
      our echo leaves (the far level less the room's loss and the canceller's ERLE) by
      ``residual_margin_db`` in double talk (``double_talk``), or, unflagged, by
      ``clear_margin_db`` and by more than the residual's own 97th percentile over the frames
      so far (a quiet user far below our echo, whom the detector misses);
    - echo found, canceller still learning: voice counts when the cleaned frame is at
      least ``margin_db`` louder than the loudest far frame in reach, or, once the room's loss
      is measured, ``learning_margin_db`` above what the room has been returning.
    """

    def __init__(
        self,
        reference: PlaybackReference,
        clock: CaptureClock,
        *,
        frame_samples: int = 320,
        input_delay_samples: float = 0.0,
        margin_db: float = 0.0,
        working_erle_db: float = 10.0,
        residual_margin_db: float = 3.0,
        clear_margin_db: float = 6.0,
        learning_margin_db: float = 10.0,
        evidence_corr: float = 0.97,
        keep_corr: float = 0.8,
        evidence_frames: int = 4,
        min_active_frames: int = 6,
        probe_ms: float = 200.0,
        probe_more_ms: float = 200.0,
        match_corr: float = 0.8,
        spectral_corr: float = 0.45,
        hold_ms: float = 20.0,
        spectral_confirm_s: float = 1.0,
        stale_s: float = 6.0,
        tail_ms: float = 512.0,
        min_tail_ms: float = 128.0,
        max_delay_ms: float = 500.0,
    ) -> None:
        block = 64
        while frame_samples % block:
            block //= 2
        if block < 8:
            raise ValueError(f"frame_samples {frame_samples} is not a multiple of 8")
        self.reference = reference
        self.clock = clock
        self.canceller = EchoCanceller(
            RATE, block=block, tail_ms=tail_ms, min_tail_ms=min_tail_ms,
            max_delay_ms=max_delay_ms,
        )
        self.input_delay_samples = input_delay_samples
        self.margin_db = margin_db
        self.working_erle_db = working_erle_db
        self.residual_margin_db = residual_margin_db
        self.clear_margin_db = clear_margin_db
        self._spread = Quantile(0.97, step_db=0.5, start=clear_margin_db)
        self.learning_margin_db = learning_margin_db
        self._tracked = 0  # frames judged echo that measured the room's loss
        self._known = round(1000 / (1000 * frame_samples / RATE))  # 1 s of them
        self.evidence_corr = evidence_corr
        self.keep_corr = keep_corr
        self._min_active = min_active_frames
        frame_ms = 1000 * frame_samples / RATE
        probe_frames = round(probe_ms / frame_ms)
        # Our voice is "in reach" for the bulk delay and the filter's first 128 ms: past
        # them a room's decay is 12 dB (RT60 600 ms) or more below its start.
        reach = math.ceil((max_delay_ms + min_tail_ms) / frame_ms)
        self._far_levels: deque[float] = deque(maxlen=reach)
        # Envelopes for the echo evidence: the mic's last `_win` frames against the far's at
        # lags 0..`_lags` frames (the canceller's delay range).
        self._lags = math.ceil(max_delay_ms / frame_ms)
        self._win = max(8, round(1000 / frame_ms))
        self._far_env = np.zeros(self._win + self._lags, np.float64)
        self._mic_env = np.zeros(self._win, np.float64)
        self.echo_found = False
        self._lag_run: deque[int] = deque(maxlen=evidence_frames)  # lags of likely frames
        self._echo_lag = 0
        self._tick = 0
        self._probe = probe_frames  # the first overlap waits this long for the evidence
        # ... and up to this much longer while its spectrum is following our voice.
        self._probe_more = round(probe_more_ms / frame_ms)
        self._extend = False  # the probe just ended inside a run: it may go on
        # Waveform and spectral evidence over a mic onset's first frames (echo_onset).
        self.onset = OnsetEvidence(
            reference, frame_samples=frame_samples, max_delay_ms=max_delay_ms,
            match_corr=match_corr, spectral_corr=spectral_corr,
        )
        self._frame = frame_samples
        self._hold = round(hold_ms / frame_ms)
        self.matches = 0  # echoes found by their waveform (the rest: by their envelope)
        self.spectral = 0  # echoes found by their spectrum
        self._spectral_confirm = round(spectral_confirm_s * RATE / frame_samples)
        self._stale = 0  # far-active, mic-active frames since the evidence was last seen
        self.stale_frames = round(stale_s * RATE / frame_samples)
        self.echo_dropped = 0
        # Energy of mic and cleaned output over far-active frames judged echo (~1 s memory).
        self._mic_e = 0.0
        self._out_e = 0.0
        self._far_e = 0.0
        self._origin: float | None = None
        self._offset = 0
        self._frames = self._active = self._gated = self._dt = self._judged = 0
        self._louder = 0
        self._held = 0
        self._undecided = False  # this frame was held for the evidence, not judged echo
        self._waiting: list[AudioFrame] = []  # held frames, cleaned, until judged
        self._released: list[AudioFrame] = []  # judged not echo: for `take_released`
        self._released_n = 0

    def arrived(self, samples: int, now: float) -> None:
        """A chunk of ``samples`` (input rate) arrived at trio time ``now``."""
        self.clock.arrived(samples, now)

    def reference_position(self, start: int) -> int:
        """The reference position of analysis sample ``start`` (its capture instant)."""
        origin = self.clock.origin
        if origin is None:
            return start
        if origin != self._origin:
            self._origin = origin
            self._offset = round((origin - self.reference.origin) * RATE - self.input_delay_samples)
        return start + self._offset

    def far_for(self, frame: AudioFrame) -> F32:
        """What played while ``frame`` was captured (zeros before the first chunk arrived)."""
        if self.clock.origin is None:
            return np.zeros(len(frame.pcm), np.float32)
        return self.reference.read(self.reference_position(frame.start), len(frame.pcm))

    @property
    def echo_gain_db(self) -> float:
        """Echo level in the mic relative to the loudest far frame in reach, on the recent
        frames judged echo (0 until there were some)."""
        if self._far_e <= 0.0:
            return 0.0
        return 10 * math.log10(max(self._mic_e, 1e-20) / self._far_e)

    @property
    def erle_db(self) -> float:
        """Echo removed from the recent frames judged echo (0 until there were some)."""
        if self._mic_e <= 0.0:
            return 0.0
        return 10 * math.log10(self._mic_e / max(self._out_e, 1e-20))

    def process(self, frame: AudioFrame) -> tuple[AudioFrame, AudioFrame]:
        far = self.far_for(frame)
        ec = self.canceller
        near = pcm16_to_float32(frame.pcm)
        out = ec.process(near, far)
        self._frames += 1
        if float(np.dot(out, out)) > float(np.dot(near, near)):
            # The filter made the frame louder than the mic heard it (misadjusted, e.g. while
            # its window misses the echo): what we hand on is the mic's frame, unchanged.
            out = near
            self._louder += 1
        pcm = float32_to_pcm16(out)
        cleaned = AudioFrame(pcm, frame.start, frame.rate, rms_dbfs(pcm))
        far_db = _dbfs(far)
        self._far_levels.append(far_db)
        far_max = max(self._far_levels)
        self._envelopes(far, near, far_max >= FAR_ACTIVE_DBFS)
        mic_db, out_db = frame.level_dbfs, cleaned.level_dbfs
        found = self.onset.frame(
            self.reference_position(frame.start) + self._frame, near, far, mic_db, far_max,
            not self.echo_found,
        )
        if found is not None:
            self._found_at_onset(found)
        gated = AudioFrame(pcm, frame.start, frame.rate, -120.0)
        self._undecided = False
        voice = far_max < FAR_ACTIVE_DBFS
        if not voice:
            self._active += 1
            voice = self._voice(mic_db, out_db, far_max)
        if voice and self._waiting and mic_db <= -60.0 and self.onset.run > 0:
            # A pause inside a run whose first frames wait: it keeps its place in the line.
            self._waiting.append(cleaned)
            return cleaned, gated
        if voice:
            if self._waiting:  # not echo after all: the VAD hears what waited, in order
                self._released.extend(self._waiting)
                self._waiting.clear()
            return cleaned, cleaned
        # What the room and the canceller do to echo (~1 s memory), measured on echo alone: a
        # user gated over it (double talk) would lower the ERLE and make the gate stricter.
        if mic_db > -60.0 and not self.canceller.double_talk:
            self._mic_e = 0.95 * self._mic_e + 0.05 * 10 ** (mic_db / 10)
            self._out_e = 0.95 * self._out_e + 0.05 * 10 ** (out_db / 10)
            self._far_e = 0.95 * self._far_e + 0.05 * 10 ** (far_max / 10)
            self._tracked += 1
        self._gated += 1
        if self._undecided:  # held for the evidence (probe, onset hold): may be released
            self._waiting.append(cleaned)
        else:  # echo: what waited for the evidence was its start
            self._waiting.clear()
        return cleaned, gated

    def take_released(self) -> list[AudioFrame]:
        """Frames held for the echo evidence (the first overlap's probe, an onset's hold) and
        then judged not echo, in order, oldest first: the VAD should hear them before the
        frame ``process`` just returned (so a user's word loses nothing to the wait)."""
        if not self._released:
            return []
        out, self._released = self._released, []
        self._released_n += len(out)
        return out

    def _voice(self, mic_db: float, out_db: float, far_max: float) -> bool:
        """Is the voice in this frame (our voice playing within reach) the user's?"""
        mic_active = mic_db > -60.0
        if self.echo_found:
            self._stale += mic_active
            if self._stale > self.stale_frames:  # a chance likeness of two voices, not echo
                self.echo_found = False
                self.echo_dropped += 1
        if not self.echo_found:
            self._extend = self._extend and self.onset.run > 0  # not past the run's end
            if self._extend and mic_active:  # the probe's run goes on past it
                self._extend = self._probe_more > 0 and self.onset.promising
                if self._extend:
                    self._probe_more -= 1  # the spectrum is following our voice: wait for it
                    self._undecided = True
                    return False
            if self._probe > 0 and mic_active:
                self._probe -= 1  # the session's first overlap: echo or not? not voice yet
                self._extend = self._probe == 0
                self._undecided = True
                return False
            # A new onset over our voice: its first frame waits for the waveform evidence, and
            # the next while a match waits for its confirmation (the VAD's onset needs 6 voiced
            # frames of 8: a user loses little of its decision).
            run = self.onset.run
            held = mic_active and (run <= self._hold or (
                run <= self._hold + 1 and self.onset.match_pending
            ))
            self._held += held
            self._undecided = held
            return not held
        ec = self.canceller
        if self.erle_db >= self.working_erle_db:
            self._dt += ec.double_talk
            # Not where the canceller added energy (a misadjusted filter into a quiet mic),
            # nor below what is left of our echo (the room's tail beyond the filter flags
            # double talk too): the far level, the room's loss and the canceller's gain.
            residual = far_max + self.echo_gain_db - self.erle_db
            above = out_db - residual
            if mic_db > -60.0:
                self._spread.feed(above)
            if out_db > mic_db + 1.0:
                return False
            if ec.double_talk:
                return above >= self.residual_margin_db
            # Without the detector's flag, clearly above that residual -- above what the
            # residual itself reaches in this room (its 97th percentile, frame by frame: word
            # onsets leave 10 dB more than the mean): the detector misses a user well below
            # our echo (heldout_i's taxi: 15-20 dB under it, the canceller's output at the
            # user's own level, 5-10 dB over the mean residual, and no flag).
            return above >= max(self.clear_margin_db, self._spread.value + 1.0)
        self._judged += 1
        # Louder than our voice, or clearly above what the room has been returning of it
        # (its measured loss, less what the canceller already removes): a reverberant room
        # leaves the canceller at 5-10 dB for seconds, and a user quieter than our voice
        # talking over it must still be heard.
        loud = out_db >= far_max + self.margin_db
        if self._tracked < self._known:  # the room's loss is not measured yet
            return loud
        echo = far_max + self.echo_gain_db - max(0.0, self.erle_db)
        return loud or out_db >= echo + self.learning_margin_db

    def _found_at_onset(self, found: Found) -> None:
        self.echo_found = True
        self.matches += not found.spectral
        self.spectral += found.spectral
        self._echo_lag = found.lag_frames
        # The canceller's own estimate needs ~3 s of envelopes: start it at this delay.
        self.canceller.hint_delay(found.delay)
        # A spectral find is the weaker evidence (two voices can share a pitch): the envelope
        # must confirm it within `spectral_confirm_s` of mic activity, not `stale_s`.
        self._stale = self.stale_frames - self._spectral_confirm if found.spectral else 0
        self._lag_run.clear()

    def _envelopes(self, far: F32, near: F32, active: bool) -> None:
        """Push this frame's RMS envelopes; while our voice plays, look for the mic's envelope
        following the far one at one lag in reach (the evidence of an echo), and, once found,
        keep confirming it at that lag."""
        n = max(1, far.shape[0])
        self._far_env[:-1] = self._far_env[1:]
        self._far_env[-1] = math.sqrt(float(np.dot(far, far)) / n)
        self._mic_env[:-1] = self._mic_env[1:]
        self._mic_env[-1] = math.sqrt(float(np.dot(near, near)) / n)
        self._tick += 1
        if not active or (self.echo_found and self._tick % 5):
            return  # once found, confirming it every 100 ms is enough (and a third cheaper)
        if int(np.count_nonzero(self._mic_env > 1e-3)) < self._min_active:
            self._lag_run.clear()
            return  # a mostly quiet mic (-60 dBFS): nothing follows our voice
        mic = self._mic_env - self._mic_env.mean()
        mm = float(mic @ mic)
        if mm <= 1e-12:
            self._lag_run.clear()
            return
        view = np.lib.stride_tricks.sliding_window_view(self._far_env, self._win)
        seg = view - view.mean(axis=1, keepdims=True)  # row k: lag `_lags - k` frames
        ff = np.einsum("ij,ij->i", seg, seg)
        corr = (seg @ mic) / np.sqrt(np.maximum(ff, 1e-30) * mm)
        if self.echo_found:  # still there at the lag it was found at?
            k0 = self._lags - self._echo_lag
            if float(corr[max(0, k0 - 1) : k0 + 2].max()) >= self.keep_corr:
                self._stale = 0
        k = int(np.argmax(corr))
        if float(corr[k]) < self.evidence_corr:
            self._lag_run.clear()
            return
        self._lag_run.append(self._lags - k)
        if len(self._lag_run) == self._lag_run.maxlen:  # that many frames in a row
            self.echo_found = True
            self._echo_lag = self._lag_run[-1]
            self._stale = 0

    def stats(self) -> EchoPathStats:
        ec = self.canceller
        return EchoPathStats(
            frames=self._frames, far_active_frames=self._active, gated_frames=self._gated,
            double_talk_frames=self._dt, learning_frames=self._judged,
            louder_frames=self._louder, echo_found=self.echo_found,
            echo_dropped=self.echo_dropped, echo_matches=self.matches,
            echo_spectral=self.spectral,
            held_frames=self._held, released_frames=self._released_n,
            erle_db=round(self.erle_db, 1),
            reference_runs=self.reference.runs,
            delay_ms=round(ec.delay_samples * 1000 / RATE, 3), converged=ec.converged,
        )

def session_echo_stage(
    *, input_rate: int, output_rate: int, frame_ms: int, origin: float
) -> EchoStage:
    """The echo path of a session whose clock starts at trio time ``origin``: egress writes
    its reference, the mic (input at ``input_rate``, resampled to 16 kHz) reads it."""
    delay = Resampler(input_rate, RATE).delay_samples if input_rate != RATE else 0.0
    return EchoStage(
        PlaybackReference(output_rate, origin),
        CaptureClock(input_rate),
        frame_samples=RATE * frame_ms // 1000,
        input_delay_samples=delay,
    )
