"""The planner stage of a turn: run the engine and cut its text into sentences for TTS.

The engine streams into a `SentenceSink` that does its work inline — events, splitting — so a
token costs no task switch; only a finished sentence is handed on (to the TTS task)."""

from __future__ import annotations

import math

import trio

from bargein.engines.base import PlannerEngine, PlanOutput, PlanRequest, Status
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType

from .playout import PlayoutCursor
from .sentences import SentenceSplitter

_STATUS_EVENTS = {"tool_started": EventType.TOOL_STARTED, "tool_finished": EventType.TOOL_FINISHED}


class SentenceSink:
    def __init__(
        self,
        turn: int,
        sentences: trio.MemorySendChannel[tuple[int, str]],
        bus: EventBus,
        cursor: PlayoutCursor,
    ) -> None:
        self._turn = turn
        self._sentences = sentences
        self._bus = bus
        self._cursor = cursor
        self._splitter = SentenceSplitter()
        self._index = 0
        # Model silence is measured from when the engine last got control back from `send`:
        # time it spends blocked on a full TTS queue (backpressure) is not silence.
        self._last_token_at = -math.inf
        self._in_send = False
        self._send_returned = trio.lowlevel.ParkingLot()
        self._pending = trio.Event()
        # Time spent blocked handing pieces to TTS: it does not count against the deadline.
        self.blocked_s = 0.0
        self._handing = 0
        # The engine's scope and its deadline before blocked time (`limit`): set by `limit`.
        self._engine: trio.CancelScope | None = None
        self._deadline = math.inf

    async def send(self, item: PlanOutput, /) -> None:
        if isinstance(item, Status):
            event = _STATUS_EVENTS.get(item.kind, EventType.STATUS)
            self._bus.emit(event, self._turn, text=item.text, tool=item.tool)
            await trio.lowlevel.checkpoint_if_cancelled()
            return
        cursor = self._cursor
        if cursor.tokens == 0:
            self._bus.emit(EventType.LLM_FIRST_TOKEN, self._turn)
        cursor.tokens += 1
        cursor.generated.append(item.text)
        self._bus.emit(EventType.ASSISTANT_TEXT, self._turn, delta=item.text)
        self._in_send = True
        try:
            pieces = self._splitter.feed(item.text)
            if self._splitter.pending.strip():
                self._pending.set()
            if not pieces:
                # A barge-in must still reach an engine that never waits on anything else.
                await trio.lowlevel.checkpoint_if_cancelled()
            await self._hand_on(pieces)
        finally:
            self._in_send = False
            self._last_token_at = trio.current_time()
            self._send_returned.unpark_all()

    async def finish(self) -> None:
        rest = self._splitter.flush()
        if rest:
            await self._hand_on([rest])

    async def flush_when_quiet(self, quiet_s: float) -> None:
        """A model quiet mid-sentence for `quiet_s` gets what it said so far spoken anyway
        (a slow model that never reaches a full stop must not leave the user in silence)."""
        while True:
            await self._pending.wait()
            if self._in_send:  # blocked on TTS, not quiet: wait until the engine has control
                await self._send_returned.park()
                continue
            await trio.sleep_until(self._last_token_at + quiet_s)
            if not self._in_send and trio.current_time() >= self._last_token_at + quiet_s:
                self._pending = trio.Event()
                await self.finish()

    async def say(self, text: str) -> None:
        """Speak `text` that is not the model's (the fallback after a failure), as its own piece;
        it is part of the turn's text like any other, so what is heard is what is committed."""
        self._cursor.generated.append(" " + text)
        self._bus.emit(EventType.ASSISTANT_TEXT, self._turn, delta=" " + text, fallback=True)
        await self._hand_on([text])

    def limit(self, deadline_s: float, engine: trio.CancelScope) -> None:
        """Cancel the engine once it has had `deadline_s` for the reply, not counting the time
        it was held up by TTS backpressure (a long reply paced by playback is not late): the
        engine scope's own deadline, lifted while a piece is being handed on and moved on by
        the time that took (no task of its own)."""
        self._engine = engine
        self._deadline = trio.current_time() + deadline_s
        engine.deadline = self._deadline

    async def _hand_on(self, pieces: list[str]) -> None:
        """Hand pieces to TTS in order. A piece whose hand-off is cancelled goes back to the
        front of the buffer, so `finish` still speaks it: text is never lost on the way."""
        for n, piece in enumerate(pieces):
            index, self._index = self._index, self._index + 1
            started = trio.current_time()
            self._handing += 1
            engine = self._engine
            if engine is not None:
                engine.deadline = math.inf  # blocked on TTS: not the engine's time
            try:
                await self._sentences.send((index, piece))
            except trio.Cancelled:
                self._index = index
                self._splitter.unread(" ".join(pieces[n:]))
                raise
            finally:
                self._handing -= 1
                self.blocked_s += trio.current_time() - started
                if engine is not None and not self._handing:
                    engine.deadline = self._deadline + self.blocked_s


async def run_planner(
    engine: PlannerEngine,
    request: PlanRequest,
    sentences: trio.MemorySendChannel[tuple[int, str]],
    bus: EventBus,
    cursor: PlayoutCursor,
    *,
    quiet_flush_s: float,
    deadline_s: float | None = None,
    fallback_text: str = "",
) -> None:
    """Run the engine within its deadline. A failure (the engine raised, or ran past the
    deadline) keeps what was generated so far, becomes an error event, marks the turn failed
    (`cursor.failure`) and is followed by `fallback_text` spoken, so the user is never left in
    silence."""
    sink = SentenceSink(request.turn, sentences, bus, cursor)
    async with sentences:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sink.flush_when_quiet, quiet_flush_s)
            with trio.CancelScope() as engine_scope:
                if deadline_s is not None:
                    sink.limit(deadline_s, engine_scope)
                try:
                    await engine.respond(request, sink)
                except Exception as exc:  # an engine failure must not end the session
                    cursor.failure = "error"
                    bus.error("planner", exc, fatal=False, turn=request.turn)
            if engine_scope.cancelled_caught:  # (only its deadline cancels it)
                cursor.failure = "deadline"
                late = TimeoutError(f"the reply was not done within {deadline_s:g} s")
                bus.error("planner", late, fatal=False, turn=request.turn)
            nursery.cancel_scope.cancel()
        await sink.finish()
        if cursor.failure is not None and fallback_text:
            await sink.say(fallback_text)
