"""What a turn's TTS and egress share: the bounded buffer of its output frames (`FrameBuffer`)
and the turn's playout state (`TurnFeed`).

The buffer is a deque with one writer (the turn's TTS) and one reader (egress), not a trio memory
channel: a channel's send and receive cost about 1.2 µs a frame here against 0.05 µs for the
deque, and a turn synthesizes about five times the frames it plays before a barge-in drops the
rest. Its contract is the channel's where the turn relies on it: `send_nowait` raises
`trio.WouldBlock` when full, `trio.BrokenResourceError` once egress let go of the turn,
`trio.ClosedResourceError` after the writer's `close`; the reader sees `trio.EndOfChannel` once
the writer closed and the frames are taken. A full buffer is refilled in steps (`wait_room`):
the writer waits until egress has taken `refill` frames, not a wake-up per frame played.

TTS puts its audio in as `FrameRun`s: a synthesized chunk's whole frames in one array, not cut
into frames yet. A frame is cut (a view and its `OutFrame`) only when egress takes it, so the
frames a barge-in drops unplayed are never built: a turn synthesizes its buffer (2 s) ahead and
plays about a fifth of it before the next words cut it. The buffer counts frames either way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import NamedTuple

import trio

from bargein.dsp.duck import Ducker
from bargein.runtime.messages import Int16Array, OutFrame, WordMark

from .playout import PlayoutCursor

# How far behind our clock a peer's reported playback is followed at a turn's end (its queue
# fell behind: frames that arrived late, a device that started late): beyond this, a peer that
# crawls cannot hold a turn open.
MAX_PLAYBACK_LAG_S = 5.0


class FeedStatistics(NamedTuple):
    open_send_channels: int  # 1 while the writer has not closed, as a channel's statistics
    current_buffer_used: int


class FrameRun:
    """`count` whole output frames of `size` samples of a turn, from turn sample `start`, in one
    array, cut one at a time (`cut`). `words` are the marks that ride on these frames, in order:
    each goes on the first frame whose end reaches the mark's end, as a frame built at once
    would carry it (`TurnAudio` gives a run only the marks that end within it)."""

    __slots__ = ("_next", "_word", "count", "pcm", "size", "start", "turn", "words")

    def __init__(
        self, turn: int, pcm: Int16Array, start: int, size: int,
        words: list[WordMark] | None = None,
    ) -> None:
        self.turn = turn
        self.pcm = pcm
        self.start = start
        self.size = size
        self.count = len(pcm) // size  # frames not cut yet
        self.words = words
        self._next = 0  # samples of `pcm` cut already
        self._word = 0  # marks of `words` given to a frame already

    def cut(self) -> OutFrame:
        """The next frame (a view of the run's array); the caller checks `count` first."""
        i, size = self._next, self.size
        self._next = j = i + size
        self.count -= 1
        pcm = self.pcm[i:j]
        start = self.start + i
        words = self.words
        if words is None:
            return OutFrame(self.turn, pcm, start)
        end, w, n = start + size, self._word, len(words)
        if w == n or words[w].end > end:  # (most frames end no word)
            return OutFrame(self.turn, pcm, start)
        k = w + 1
        while k < n and words[k].end <= end:
            k += 1
        self._word = k
        return OutFrame(self.turn, pcm, start, tuple(words[w:k]))

    def split(self, frames: int) -> FrameRun:
        """Keep the first `frames` frames here; the rest (and their marks) as a new run."""
        at = self._next + frames * self.size
        rest_words = None
        if self.words is not None:
            # The marks the kept frames would carry stay; cut by the same rule.
            end, words, k = self.start + at, self.words, self._word
            while k < len(words) and words[k].end <= end:
                k += 1
            rest_words = words[k:] or None
            self.words = words[:k]
        rest = FrameRun(self.turn, self.pcm[at:], self.start + at, self.size, rest_words)
        self.count = frames
        return rest


class FrameBuffer:
    __slots__ = (
        "_filling", "_frames", "_items", "_reader", "_taken", "capacity", "refill", "released",
        "writer_closed",
    )

    def __init__(self, capacity: int, refill: int = 1) -> None:
        self.capacity = max(1, capacity)
        self.refill = max(1, refill)
        self._items: deque[OutFrame | FrameRun] = deque()
        self._frames = 0  # frames queued (a run counts its frames not cut yet)
        self._reader: trio.lowlevel.Task | None = None
        self._filling = trio.lowlevel.ParkingLot()
        self._taken = 0
        self.writer_closed = False
        self.released = False

    # -- the writer (the turn's TTS) ---------------------------------------------------------

    def send_nowait(self, item: OutFrame | FrameRun) -> None:
        """Put in a frame, or a run whole (`trio.WouldBlock` unless all of it fits)."""
        self._check_open()
        n = item.count if type(item) is FrameRun else 1
        if self._frames + n > self.capacity:
            raise trio.WouldBlock
        self._put(item, n)

    def send_run_nowait(self, run: FrameRun) -> FrameRun | None:
        """As many of `run`'s frames as fit, in one call: None if all went in, else the run of
        the frames that did not fit (all of it when the buffer is full)."""
        self._check_open()
        room = self.capacity - self._frames
        if room <= 0:
            return run
        rest = run.split(room) if run.count > room else None
        self._put(run, run.count)
        return rest

    def _check_open(self) -> None:
        if self.released:
            raise trio.BrokenResourceError("egress let go of the turn")
        if self.writer_closed:
            raise trio.ClosedResourceError("the turn's audio has ended")

    def _put(self, item: OutFrame | FrameRun, frames: int) -> None:
        if not frames:
            return
        self._items.append(item)
        self._frames += frames
        reader = self._reader
        if reader is not None:
            self._reader = None
            trio.lowlevel.reschedule(reader)

    async def send(self, item: OutFrame | FrameRun) -> None:
        """Put `item` in (a frame, or a run whole), waiting for room (a schedule point either
        way)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                self.send_nowait(item)
            except trio.WouldBlock:
                await self.wait_room()
                continue
            break
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_room(self) -> None:
        """For the writer, whose last frame did not fit: wait until egress has taken `refill`
        frames since, or has let go of the turn (then the send raises)."""
        if self.released:
            await trio.lowlevel.checkpoint()
            return
        self._taken = 0
        await self._filling.park()

    def close(self) -> None:
        """The writer is done: the reader takes what is left, then sees the end."""
        self.writer_closed = True
        self._wake_reader()

    async def __aenter__(self) -> FrameBuffer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the reader (egress) -----------------------------------------------------------------

    def take_nowait(self) -> OutFrame | None:
        """The oldest frame, or None if there is none now (`ended` says whether more come)."""
        items = self._items
        if not items:
            return None
        self._taken += 1
        if self._taken >= self.refill and self._filling:
            self._filling.unpark_all()
        self._frames -= 1
        head = items[0]
        if type(head) is OutFrame:
            items.popleft()
            return head
        assert type(head) is FrameRun
        frame = head.cut()
        if not head.count:
            items.popleft()
        return frame

    def drop_all(self) -> int:
        """Egress drops what is queued (a stopped turn): how many frames, none of them cut."""
        dropped = self._frames
        self._items.clear()
        self._frames = 0
        return dropped

    @property
    def ended(self) -> bool:
        """The writer closed and every frame was taken."""
        return self.writer_closed and not self._frames

    async def take(self) -> OutFrame:
        """Wait for the next frame (one schedule point); `trio.EndOfChannel` at the end."""
        await trio.lowlevel.checkpoint_if_cancelled()
        frame = self.take_nowait()
        if frame is not None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return frame
        while True:
            if self.writer_closed:
                raise trio.EndOfChannel
            self._reader = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
            frame = self.take_nowait()
            if frame is not None:
                return frame

    def release(self) -> None:
        """Egress is done with the turn: a writer waiting for room is let go, and its next
        send raises `trio.BrokenResourceError`."""
        self.released = True
        self._filling.unpark_all()

    def statistics(self) -> FeedStatistics:
        return FeedStatistics(0 if self.writer_closed else 1, self._frames)

    def __len__(self) -> int:
        return self._frames

    def _wake_reader(self) -> None:
        reader = self._reader
        if reader is not None:
            self._reader = None
            trio.lowlevel.reschedule(reader)

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._reader = None
        return trio.lowlevel.Abort.SUCCEEDED


@dataclass(eq=False, slots=True)
class TurnFeed:
    """One turn as egress plays it."""

    turn: int
    frames: FrameBuffer
    cursor: PlayoutCursor
    done: trio.Event = field(default_factory=trio.Event)
    stopped: bool = False
    scope: trio.CancelScope | None = None
    reported: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    played_first: bool = False
    sent_first_at: float | None = None  # session time its first frame went out
    ducker: Ducker | None = None  # the turn's gain ramps (None: never ducked, gain 1)
    holding: OutFrame | None = None  # the frame the pacing loop waits to send
    due: float | None = None  # when the next frame is due (the last one sent ends then)
    fade: bool = False  # interrupted while ducked: fade out before the clear
    # The latest playback report that moved the peer on: (trio time, samples played then).
    progress: tuple[float, int] | None = None

    @property
    def refill(self) -> int:
        return self.frames.refill

    async def wait_room(self) -> None:
        """For the turn's TTS: see `FrameBuffer.wait_room`."""
        await self.frames.wait_room()

    @property
    def ducked(self) -> bool:
        """Turned down now, or ramping there or back."""
        d = self.ducker
        return d is not None and (d.target < 1.0 or d.gain < 1.0)

    async def wait_played(
        self, ours: float, grace: float, reports_seen: Callable[[], bool]
    ) -> None:
        """For egress at the turn's end: wait until the peer has played the turn's last sample
        (`ours`: when it will have on our clock, the lead included), or until the bound: `ours`
        for a peer that never reports playback; for one that does, `grace` past the later of
        that and when its latest report that moved on says it will have played the rest (at
        most `MAX_PLAYBACK_LAG_S` later)."""
        cursor = self.cursor
        while not reports_seen():
            with trio.move_on_at(ours):
                await self.reported.park()
            if trio.current_time() >= ours:
                return
        cap = ours + grace + MAX_PLAYBACK_LAG_S
        while (cursor.played or 0) < cursor.sent:
            limit = ours
            if self.progress is not None:
                at, played = self.progress
                limit = max(limit, at + (cursor.sent - played) / cursor.rate)
            limit = min(cap, limit + grace)
            if trio.current_time() >= limit:
                return
            with trio.move_on_at(limit):
                await self.reported.park()
