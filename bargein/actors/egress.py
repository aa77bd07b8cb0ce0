"""Egress: paces reply audio to the transport on the trio clock and keeps the playout cursor.

One turn plays at a time. `interrupt` is synchronous and immediate: it cancels the scope the
pacing loop runs in, so no frame of that turn is handed to the transport after the floor's
decision; egress then drops what was queued and sends `clear` so the peer flushes its playback.
An interrupt for a turn whose feed is not open yet holds: the feed opens stopped.

A turn can be *ducked* (`duck`/`restore`): its frames keep going out, their gain ramped down by
`duck_db` and back up along a raised cosine (`bargein.dsp.duck.Ducker`, one per turn, so any
frame size gives the same samples; the echo reference tap sees the ducked samples). A ducked
turn that is interrupted fades out instead of stopping dead: the frame held at the decision and
what follows it, up to the ramp's length, go out ramped to silence (their words not counted as
heard), and `clear` follows once that fade has played on our clock.

A turn's playout ends when the peer has played its last sample, not when it was sent: egress
keeps the turn (and so barge-in on it) live until a playback report covers the last sample,
bounded by the lead alone for a peer that never reports, and for one that reports by `grace_ms`
past the later of our play time of the last sample (+ the lead) and the time the peer's own
reports say it will play it — a peer whose queue fell behind our clock (frames that arrived
late) is followed, up to `MAX_PLAYBACK_LAG_S` more, and one whose playback stops is not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import trio

from bargein.dsp.duck import Ducker
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType
from bargein.runtime.media_clock import MediaClock, media_clock
from bargein.runtime.messages import Int16Array, OutFrame
from bargein.runtime.transport import Transport

from .playout import PlayoutCursor
from .turn_feed import MAX_PLAYBACK_LAG_S, FrameBuffer, TurnFeed

__all__ = ["MAX_PLAYBACK_LAG_S", "AudioStarted", "Egress"]


class _Pacing:
    """Where a turn's pacing loop stands: when its held frame is due, and whether the wait for
    it is done (so whichever runs the loop next, egress's task or the media clock's paced
    step, carries on from the same point)."""

    __slots__ = ("due", "waited")

    def __init__(self) -> None:
        self.due: float | None = None
        self.waited = False


@dataclass(frozen=True, slots=True)
class AudioStarted:
    """Egress → floor: the first frame of `turn` went out."""

    turn: int


class Egress:
    def __init__(
        self,
        transport: Transport,
        bus: EventBus,
        *,
        rate: int,
        lead_ms: int,
        buffer_frames: int,
        on_audio_started: trio.MemorySendChannel[AudioStarted],
        grace_ms: int = 300,
        on_played: Callable[[Int16Array, float], None] | None = None,
        duck_db: float = -15.0,
        duck_ramp_ms: float = 30.0,
    ) -> None:
        self._transport = transport
        # A transport whose send is synchronous work can take a frame in the media clock's
        # wake-up (`Transport` in runtime/transport.py); None: every frame by `send_audio`.
        self._send_nowait: Callable[[OutFrame], bool] | None = getattr(
            transport, "send_audio_nowait", None
        )
        self._bus = bus
        self.rate = rate
        self._lead = lead_ms / 1000
        self._grace = grace_ms / 1000
        self._reports_seen = False  # has the peer ever reported playback?
        self._last_opened = 0
        self._stop_before_open: set[int] = set()
        self._buffer_frames = max(1, buffer_frames)
        # A full feed is refilled in steps of a quarter of it, at most 10 frames (200 ms at 20
        # ms): TTS stays at least three quarters of the buffer ahead.
        self._refill = max(1, min(10, self._buffer_frames // 4))
        self._notify = on_audio_started
        # Echo reference tap: each frame sent, with the trio time it plays on our clock.
        self._on_played = on_played
        self._feeds: deque[TurnFeed] = deque()
        self._by_turn: dict[int, TurnFeed] = {}
        self._wakeup = trio.lowlevel.ParkingLot()
        self._paused: int | None = None
        self._resumed = trio.Event()
        self._clock: MediaClock | None = None
        self.duck_db = duck_db
        self.duck_ramp_ms = duck_ramp_ms
        self.frames_sent = 0
        self.frames_dropped = 0
        self.clears = 0

    # -- called synchronously by the floor and the turn runner ------------------------------

    def open_turn(self, turn: int) -> tuple[FrameBuffer, TurnFeed]:
        """A bounded buffer for the turn's frames: TTS may run ahead of playout by that much."""
        frames = FrameBuffer(self._buffer_frames, self._refill)
        feed = TurnFeed(turn, frames, PlayoutCursor(turn, self.rate))
        self._last_opened = max(self._last_opened, turn)
        if turn in self._stop_before_open:
            self._stop_before_open.discard(turn)
            feed.stopped = True
        self._feeds.append(feed)
        self._by_turn[turn] = feed
        self._wakeup.unpark()
        return frames, feed

    def interrupt(self, turn: int) -> bool:
        """Stop `turn`'s output now. False if there is nothing left to stop: its audio has
        already played whole (the turn completed) or it is long gone."""
        feed = self._by_turn.get(turn)
        if feed is None:
            if turn > self._last_opened:  # not opened yet: it will open stopped
                self._stop_before_open.add(turn)
                return True
            return False
        if feed.done.is_set():
            return False
        if not feed.stopped:
            feed.stopped = True
            feed.fade = feed.ducked and self._paused != turn  # paused: already silent
            if feed.scope is not None:
                feed.scope.cancel()
            self.resume(turn)
        return True

    def duck(self, turn: int) -> bool:
        """Ramp `turn`'s audio down by `duck_db` from its next frame (False: no such turn)."""
        feed = self._by_turn.get(turn)
        if feed is None or feed.stopped:
            return False
        if feed.ducker is None:
            feed.ducker = Ducker(self.rate, depth_db=self.duck_db, ramp_ms=self.duck_ramp_ms)
        feed.ducker.duck()
        return True

    def restore(self, turn: int) -> bool:
        """Ramp `turn`'s audio back to full level from its next frame."""
        feed = self._by_turn.get(turn)
        if feed is None or feed.ducker is None:
            return False
        feed.ducker.restore()
        return True

    def pause(self, turn: int) -> None:
        self._paused = turn
        self._resumed = trio.Event()

    def resume(self, turn: int) -> None:
        if self._paused == turn:
            self._paused = None
            self._resumed.set()

    def report_playback(self, turn: int, samples: int) -> bool:
        feed = self._by_turn.get(turn)
        if feed is None:
            return False
        self._reports_seen = True
        cursor = feed.cursor
        before = cursor.played or 0
        cursor.on_played(samples)
        if (cursor.played or 0) > before:
            feed.progress = (trio.current_time(), cursor.played or 0)
        if not feed.played_first and cursor.played:
            feed.played_first = True
            # When the peer began playing the turn, on the session clock (latency felt); not
            # before its first frame went out (a peer's clock a little fast would say so).
            played_at = self._bus.now() - cursor.played / self.rate
            if feed.sent_first_at is not None:
                played_at = max(played_at, feed.sent_first_at)
            self._bus.emit(EventType.AUDIO_PLAYED_FIRST, turn, played_at=round(played_at, 6))
        feed.reported.unpark_all()
        return True

    def sent_ms(self, turn: int) -> float:
        """How much of `turn`'s audio has been handed to the transport so far."""
        feed = self._by_turn.get(turn)
        return feed.cursor.sent_ms if feed else 0.0

    def recent_words(self, turn: int, seconds: float) -> tuple[str, ...]:
        """The words of `turn` sent within its last `seconds` of audio: what our own echo
        could be saying now (the floor's side-talk check compares them with what it hears)."""
        feed = self._by_turn.get(turn)
        if feed is None:
            return ()
        since = feed.cursor.sent - seconds * self.rate
        return tuple(w.text for w in feed.cursor.words if w.end >= since)

    def forget(self, turn: int) -> None:
        self._by_turn.pop(turn, None)
        self._stop_before_open.discard(turn)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # Pacing shares one wake-up with every other session's; attached, the clock task stays
        # between this session's frames (not a task spawned per frame of a lone session).
        self._clock = clock = media_clock()
        clock.attach()
        try:
            task_status.started()
            while True:
                while not self._feeds:
                    await self._wakeup.park()
                feed = self._feeds.popleft()
                try:
                    await self._play(feed)
                finally:
                    feed.done.set()
        finally:
            clock.detach()

    async def _play(self, feed: TurnFeed) -> None:
        try:
            await self._pace(feed)
        finally:
            # Also when the session closes in the same instant: the peer must flush the turn.
            if feed.stopped:
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                    if feed.fade:
                        await self._fade_out(feed)
                    await self._clear(feed)
            feed.frames.release()

    async def _pace(self, feed: TurnFeed) -> None:
        clock = self._clock or media_clock()
        p = _Pacing()
        with trio.CancelScope() as scope:
            feed.scope = scope
            if feed.stopped:
                scope.cancel()
            frames = feed.frames
            while True:
                # The frame's send (a checkpoint) or its wait on the clock is this iteration's
                # schedule point: a frame already queued is taken without another one (a task
                # step less per 20 ms frame). A cancel is still seen before a frame is taken,
                # as `receive` would, so the frames of a stopped turn stay queued for the fade.
                await trio.lowlevel.checkpoint_if_cancelled()
                if feed.holding is None:  # (else the paced step handed back with a frame held)
                    frame = frames.take_nowait()
                    if frame is None:
                        try:
                            frame = await frames.take()
                        except trio.EndOfChannel:
                            break
                    feed.holding = frame
                    p.waited = False
                await self._wait_due(feed, p, clock)
                if scope.cancel_called:
                    # Interrupted in the instant this task was woken (by the frame's timer or by
                    # its arrival): a woken task sees the cancel only at its next checkpoint,
                    # so look now, or the frame held at the decision would still go out.
                    break
                frame = feed.holding
                assert frame is not None
                if feed.ducker is not None:
                    frame = self._ducked(feed, feed.ducker, frame)
                await self._transport.send_audio(frame)
                self._sent(feed, p, frame)
                if feed.cursor.frames_sent == 1:
                    feed.sent_first_at = self._bus.now()
                    self._bus.emit(EventType.AUDIO_OUT_FIRST, feed.turn)
                    await self._notify.send(AudioStarted(feed.turn))
                if self._send_nowait is not None:
                    # The next frames go out from the media clock's own wake-up, without a
                    # step of this task per frame, until the step hands back.
                    later = self._paced_step(feed, p, trio.current_time())
                    if later is not None:
                        await clock.pace(later, lambda now: self._paced_step(feed, p, now))
            if p.due is not None:
                await clock.sleep_until(p.due)  # the last frame has played on our clock
                # Then until the peer has played it too, or the bound (`TurnFeed.wait_played`).
                await feed.wait_played(p.due + self._lead, self._grace, lambda: self._reports_seen)

    async def _wait_due(self, feed: TurnFeed, p: _Pacing, clock: MediaClock) -> None:
        """Until the held frame is due (less the lead) and the turn is not paused; a pause
        starts a new timeline. `p.waited`: the wait was done already (the paced step's)."""
        while True:
            if not p.waited:
                if self._paused == feed.turn:
                    await self._resumed.wait()
                    p.due = None
                now = trio.current_time()
                if p.due is None or p.due < now:
                    p.due = now  # first frame, or TTS underran / we were paused: new timeline
                if p.due - self._lead > now:
                    await clock.sleep_until(p.due - self._lead)
            p.waited = False
            if self._paused != feed.turn:
                p.waited = True
                return

    def _sent(self, feed: TurnFeed, p: _Pacing, frame: OutFrame) -> None:
        """The bookkeeping of a frame the transport took (at `p.due` on our clock)."""
        assert p.due is not None
        feed.holding = None
        if self._on_played is not None:
            self._on_played(frame.pcm, p.due)
        feed.cursor.on_sent(frame.end, frame.words)
        self.frames_sent += 1
        p.due += len(frame.pcm) / self.rate
        feed.due = p.due

    def _paced_step(self, feed: TurnFeed, p: _Pacing, now: float) -> float | None:
        """The pacing loop's iterations that need no wait, run synchronously (by this task
        after a send, then by the media clock's task at each deadline): take the next frame,
        hand it to the transport's `send_audio_nowait` once it is due. Returns the next
        deadline, or None where the loop must go on in egress's task: no frame queued, the
        turn stopped, paused or ducked, or the transport cannot take the frame now. Each
        check is the one the loop makes at that point, so times and frames are the same."""
        send = self._send_nowait
        assert send is not None and feed.scope is not None
        while True:
            if feed.holding is None:
                if feed.scope.cancel_called or feed.ducker is not None:
                    return None
                frame = feed.frames.take_nowait()
                if frame is None:
                    return None
                feed.holding = frame
                if self._paused == feed.turn:
                    p.waited = False
                    return None
                assert p.due is not None
                if p.due < now:
                    p.due = now  # TTS underran: a new timeline
                p.waited = True
                if p.due - self._lead > now:
                    return p.due - self._lead
            if self._paused == feed.turn or feed.scope.cancel_called or feed.ducker is not None:
                return None  # the frame stays held, its wait done (`p.waited`)
            frame = feed.holding
            if not send(frame):
                return None
            self._sent(feed, p, frame)

    def _ducked(self, feed: TurnFeed, ducker: Ducker, frame: OutFrame) -> OutFrame:
        if ducker.settled and ducker.gain == 1.0:
            feed.ducker = None  # restored and done: no more work per frame
            return frame
        return OutFrame(frame.turn, ducker.process_int16(frame.pcm), frame.start, frame.words)

    async def _fade_out(self, feed: TurnFeed) -> None:
        """The interrupted, ducked turn's next samples ramped to silence over the duck ramp,
        sent after what already went out; then wait until they have played on our clock."""
        ducker = feed.ducker
        assert ducker is not None
        pieces: list[OutFrame] = [feed.holding] if feed.holding is not None else []
        while sum(len(f.pcm) for f in pieces) < ducker.ramp_samples:
            frame = feed.frames.take_nowait()
            if frame is None:
                break
            pieces.append(frame)
        feed.holding = None
        if not pieces:
            return  # nothing queued: the audio already ended where it was
        pcm = np.concatenate([f.pcm for f in pieces])[: ducker.ramp_samples]
        ducker.fade_out(samples=len(pcm))
        # Its words are not heard whole: the frame carries none and the cursor counts none.
        tail = OutFrame(feed.turn, ducker.process_int16(pcm), pieces[0].start, ())
        start = max(trio.current_time(), feed.due or 0.0)
        await self._transport.send_audio(tail)
        if self._on_played is not None:
            self._on_played(tail.pcm, start)
        feed.cursor.on_sent(tail.end, ())
        self.frames_sent += 1
        await trio.sleep_until(start + len(pcm) / self.rate)

    async def _clear(self, feed: TurnFeed) -> None:
        dropped = feed.frames.drop_all()  # (never cut into frames)
        feed.cursor.frames_dropped += dropped
        self.frames_dropped += dropped
        self.clears += 1
        self._bus.emit(
            EventType.OUTPUT_CLEARED,
            feed.turn,
            frames_dropped=dropped,
            sent_ms=round(feed.cursor.sent_ms, 3),
        )
        await self._transport.send_clear(feed.turn)
