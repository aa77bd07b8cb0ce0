"""One assistant turn: a child nursery in a cancel scope that the floor owns.

Planner and TTS work of the turn live in the scope and stream into egress through the turn's
bounded channel. Barge-in is `scope.cancel()`: the LLM stream, tool calls, synthesis and queued
audio go together. Only after the nursery has exited — every task of the turn gone — does the
runner commit the heard text to the history and emit `turn_completed` / `turn_cancelled`.
A turn still on when the session ends (the session's scope cancelled around it) commits what was
heard by then in its teardown and ends `turn_cancelled` with reason `session_ended`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import trio

from bargein.engines.base import PlannerEngine, PlanRequest, TtsEngine
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType
from bargein.runtime.history import History

from .egress import Egress
from .planner import run_planner
from .playout import PlayoutCursor
from .policy import HistoryCommit
from .tts import run_tts

# Bound on waiting for egress to let go of a cancelled turn (it normally takes microseconds).
_EGRESS_SETTLE_S = 2.0


@dataclass(frozen=True, slots=True)
class TurnFinished:
    """Turn runner → floor: the turn is over and its tasks are gone."""

    turn: int


@dataclass(frozen=True, slots=True)
class TurnSettings:
    out_rate: int
    frame_samples: int
    quiet_flush_s: float
    history_commit: HistoryCommit
    history_chars: int | None = None  # budget for the planner's view of the history
    deadline_s: float | None = None  # for the planner's whole reply (backpressure excluded)
    fallback_text: str = ""  # spoken after a planner failure


@dataclass(eq=False, slots=True)
class TurnHandle:
    turn: int
    scope: trio.CancelScope
    done: trio.Event
    reason: str | None = None


async def run_turn(
    handle: TurnHandle,
    user_text: str,
    previous: TurnHandle | None,
    *,
    planner: PlannerEngine,
    tts: TtsEngine,
    egress: Egress,
    history: History,
    bus: EventBus,
    settings: TurnSettings,
    finished: trio.MemorySendChannel[TurnFinished],
) -> None:
    turn = handle.turn
    cursor: PlayoutCursor | None = None  # set once the user's words are in the history
    ended = False
    try:
        if previous is not None:
            # History order: the interrupted turn commits what was heard before this one reads it.
            await previous.done.wait()
        history.add_user(user_text)
        frames, feed = egress.open_turn(turn)
        cursor = feed.cursor
        with handle.scope:
            try:
                if handle.scope.cancel_called:  # cancelled while it waited: ask no engine
                    await trio.lowlevel.checkpoint()
                async with trio.open_nursery() as nursery:
                    sent_send, sent_recv = trio.open_memory_channel[tuple[int, str]](8)
                    request = PlanRequest(turn, history.window(settings.history_chars))
                    nursery.start_soon(
                        partial(
                            run_planner,
                            planner,
                            request,
                            sent_send,
                            bus,
                            cursor,
                            quiet_flush_s=settings.quiet_flush_s,
                            deadline_s=settings.deadline_s,
                            fallback_text=settings.fallback_text,
                        )
                    )
                    nursery.start_soon(
                        partial(
                            run_tts,
                            tts,
                            turn,
                            sent_recv,
                            frames,
                            cursor,
                            bus,
                            out_rate=settings.out_rate,
                            frame_samples=settings.frame_samples,
                            room=feed.wait_room,
                        )
                    )
            except Exception as exc:  # an engine failure ends the turn, not the session
                handle.reason = "error"
                bus.error("turn", exc, fatal=False, turn=turn)
                handle.scope.cancel()
            finally:
                frames.close()  # egress sees the end of the turn's audio
            await feed.done.wait()  # egress has played (or dropped) the whole turn
        # The turn's own scope is the truth: cancelled by the floor (barge-in, client, text) or
        # by its failure. Egress is told again, so an interrupt that came before the feed was
        # open, or a failure, stops the audio too (idempotent otherwise).
        cancelled = handle.scope.cancel_called
        if cancelled:
            egress.interrupt(turn)
        with trio.CancelScope(shield=True), trio.move_on_after(_EGRESS_SETTLE_S):
            await feed.done.wait()
        # A turn whose planner failed played what it had (and the fallback), but it is not a
        # completed reply: it is never reported `completed`.
        cut = cancelled or cursor.failure is not None
        ended = True  # (before: a listener that raised must not get the turn committed twice)
        _end_turn(handle, cursor, egress, history, bus, settings, cut=cut)
    finally:
        if not ended:
            # The session is ending (closed, taken over, its peer gone) with this turn still
            # on: what was heard until now is all there will be, and the history must say so.
            if cursor is None:  # it still waited for its predecessor to commit
                with trio.CancelScope(shield=True), trio.move_on_after(_EGRESS_SETTLE_S):
                    if previous is not None:
                        await previous.done.wait()
                history.add_user(user_text)
                cursor = PlayoutCursor(turn, settings.out_rate)
            handle.reason = handle.reason or "session_ended"
            _end_turn(handle, cursor, egress, history, bus, settings, cut=True)
        handle.done.set()
        # _tell_floor shields and bounds its own send (flake8-async cannot see into it).
        await _tell_floor(finished, TurnFinished(turn))  # noqa: ASYNC102


def _end_turn(
    handle: TurnHandle,
    cursor: PlayoutCursor,
    egress: Egress,
    history: History,
    bus: EventBus,
    settings: TurnSettings,
    *,
    cut: bool,
) -> None:
    """Commit what was heard to the history and report the turn's end (synchronous: the
    session's teardown cannot leave it half done)."""
    turn = handle.turn
    committed = cursor.committed_text(settings.history_commit)
    history.add_assistant(committed, interrupted=cut)
    fields = dict(
        heard_text=cursor.heard_text(),
        heard_ms=round(cursor.heard_ms, 3),
        sent_ms=round(cursor.sent_ms, 3),
        committed_text=committed,
        generated_text=cursor.generated_text,
        tokens=cursor.tokens,
        synthesized_ms=round(cursor.synthesized_ms, 3),
    )
    if cut:
        bus.emit(
            EventType.TURN_CANCELLED,
            turn,
            reason=handle.reason or cursor.failure or "cancelled",
            frames_dropped=cursor.frames_dropped,
            **fields,
        )
    else:
        bus.emit(EventType.TURN_COMPLETED, turn, **fields)
    egress.forget(turn)


async def _tell_floor(
    finished: trio.MemorySendChannel[TurnFinished], message: TurnFinished
) -> None:
    """The floor must learn that the turn ended (it never blocks for long, so a full inbox
    is waited out); when the session is shutting down the floor may be gone, and then nobody
    needs to know. A send that cannot complete within the bound is reported, never silent."""
    with trio.CancelScope(shield=True):
        with trio.move_on_after(_EGRESS_SETTLE_S) as waited:
            try:
                await finished.send(message)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
    if waited.cancelled_caught:  # the floor stopped reading: end the session (the guard reports)
        raise RuntimeError(f"the floor did not take the end of turn {message.turn}")
