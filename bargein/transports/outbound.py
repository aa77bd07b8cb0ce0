"""A connection's outbound frames: bounded, never blocking the session that fills it.

Audio and control frames have different policies. Audio is paced in real time by the session, so
when the peer falls behind the oldest audio is the least useful: it is dropped first, counted.
Control frames (events, errors, `clear`) are small and each one matters, so they are never
dropped to make room; if even they pile up past `max_control`, the peer is not reading at all
and the queue fails (`failed` is set) so the connection can be closed as a slow consumer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import trio

from bargein.runtime.broadcast import next_item

Frame = str | bytes


@dataclass(slots=True)
class _Item:
    frame: Frame
    turn: int | None  # set for audio frames only
    text_turn: int | None = None  # set for reply text of that turn (it may be coalesced)
    payload: object = None  # what `frame` encodes, for the caller that coalesces


@dataclass(slots=True)
class OutboundStats:
    queued_audio: int = 0
    queued_control: int = 0
    dropped_audio: int = 0  # oldest audio dropped because the peer fell behind
    flushed_audio: int = 0  # queued audio of a cleared (barged-in) turn, never sent
    flushed_text: int = 0  # queued reply text of a cleared turn, never sent
    coalesced_text: int = 0  # reply-text frames merged into the one queued before them
    dropped_control: int = 0  # after failure or close


class OutboundQueue:
    def __init__(self, *, max_audio: int, max_control: int) -> None:
        if max_audio < 1 or max_control < 1:
            raise ValueError("queue limits must be >= 1")
        self.max_audio = max_audio
        self.max_control = max_control
        self.stats = OutboundStats()
        self.failed = trio.Event()
        self._items: deque[_Item] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put_control(
        self,
        frame: Frame,
        *,
        urgent: bool = False,
        text_turn: int | None = None,
        payload: object = None,
    ) -> bool:
        """Queue a control frame (`urgent` ones jump the queue); False if it was not queued.
        `text_turn`: the frame is reply text of that turn (see `tail_text`, `flush_turn`)."""
        if self._closed or self.failed.is_set():
            self.stats.dropped_control += 1
            return False
        if self.stats.queued_control >= self.max_control:
            self.stats.dropped_control += 1
            self.failed.set()
            return False
        item = _Item(frame, None, text_turn, payload)
        if urgent:
            self._items.appendleft(item)
        else:
            self._items.append(item)
        self.stats.queued_control += 1
        self._lot.unpark()
        return True

    def put_audio(self, frame: bytes, turn: int) -> bool:
        """Queue an audio frame; when full, drop the oldest queued audio first. False if dropped."""
        if self._closed or self.failed.is_set():
            self.stats.dropped_audio += 1
            return False
        kept = True
        if self.stats.queued_audio >= self.max_audio:
            for i, old in enumerate(self._items):
                if old.turn is not None:
                    del self._items[i]
                    break
            self.stats.queued_audio -= 1
            self.stats.dropped_audio += 1
            kept = False
        self._items.append(_Item(frame, turn))
        self.stats.queued_audio += 1
        self._lot.unpark()
        return kept

    def tail_text(self, turn: int) -> object:
        """The payload of the last queued frame if it is reply text of `turn` (else None): a
        caller may merge the next text into it, since nothing was queued in between."""
        if self._items and self._items[-1].text_turn == turn:
            return self._items[-1].payload
        return None

    def replace_tail(self, frame: Frame, payload: object) -> None:
        """Replace the last queued (reply-text) frame by `frame`, which merges the next text."""
        tail = self._items[-1]
        tail.frame, tail.payload = frame, payload
        self.stats.coalesced_text += 1

    def flush_turn(self, turn: int) -> int:
        """Remove queued audio and reply text of `turn` (barge-in: it must not play, and its
        `turn.ended` says what was heard); return how many audio frames."""
        audio = sum(1 for item in self._items if item.turn == turn)
        text = sum(1 for item in self._items if item.text_turn == turn)
        if audio or text:
            self._items = deque(
                item for item in self._items if item.turn != turn and item.text_turn != turn
            )
        self.stats.queued_audio -= audio
        self.stats.flushed_audio += audio
        self.stats.queued_control -= text
        self.stats.flushed_text += text
        return audio

    def drop_audio(self) -> int:
        """Remove every queued audio frame (counted as dropped), keeping the control frames in
        order: a connection that ends with no time left for audio still says how the turn and
        the session ended. Returns how many."""
        audio = self.stats.queued_audio
        if audio:
            self._items = deque(item for item in self._items if item.turn is None)
            self.stats.queued_audio = 0
            self.stats.dropped_audio += audio
        return audio

    async def get(self) -> Frame:
        """Next frame to write; raises `trio.EndOfChannel` once closed and drained."""
        item = await next_item(self._items, self._lot, lambda: self._closed)
        if item.turn is None:
            self.stats.queued_control -= 1
        else:
            self.stats.queued_audio -= 1
        return item.frame

    def close(self) -> None:
        """Accept nothing more; the writer drains what is queued, then sees `EndOfChannel`."""
        self._closed = True
        self._lot.unpark_all()
