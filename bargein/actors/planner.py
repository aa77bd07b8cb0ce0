"""The planner stage of a turn: run the engine, report progress, cut its text into sentences."""

from __future__ import annotations

import math

import trio

from bargein.engines.base import PlannerEngine, PlanOutput, PlanRequest, Status, TextDelta
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType

from .playout import PlayoutCursor
from .sentences import SentenceSplitter


async def run_planner(
    engine: PlannerEngine,
    request: PlanRequest,
    out: trio.MemorySendChannel[PlanOutput],
    bus: EventBus,
) -> None:
    """Run the engine; a failure keeps what was generated so far and becomes an error event."""
    async with out:
        try:
            await engine.respond(request, out)
        except Exception as exc:  # an engine failure must not end the session
            bus.emit(
                EventType.ERROR,
                request.turn,
                source="planner",
                error=type(exc).__name__,
                message=str(exc),
                fatal=False,
            )


async def run_splitter(
    turn: int,
    deltas: trio.MemoryReceiveChannel[PlanOutput],
    sentences: trio.MemorySendChannel[tuple[int, str]],
    bus: EventBus,
    cursor: PlayoutCursor,
    *,
    quiet_flush_s: float,
) -> None:
    """Forward complete sentences as they form; the cursor records all text generated."""
    splitter = SentenceSplitter()
    text: list[str] = []
    index = 0
    async with deltas, sentences:
        while True:
            # A model that goes quiet mid-sentence should not hold back what it already said.
            deadline = trio.current_time() + quiet_flush_s if splitter.pending.strip() else math.inf
            with trio.move_on_at(deadline):
                try:
                    item = await deltas.receive()
                except trio.EndOfChannel:
                    break
                if isinstance(item, Status):
                    bus.emit(
                        _STATUS_EVENTS.get(item.kind, EventType.STATUS),
                        turn,
                        text=item.text,
                        tool=item.tool,
                    )
                    continue
                assert isinstance(item, TextDelta)
                if cursor.tokens == 0:
                    bus.emit(EventType.LLM_FIRST_TOKEN, turn)
                cursor.tokens += 1
                text.append(item.text)
                cursor.generated_text = "".join(text).strip()
                bus.emit(EventType.ASSISTANT_TEXT, turn, delta=item.text)
                for piece in splitter.feed(item.text):
                    await sentences.send((index, piece))
                    index += 1
                continue
            rest = splitter.flush()
            if rest:
                await sentences.send((index, rest))
                index += 1
        rest = splitter.flush()
        if rest:
            await sentences.send((index, rest))


_STATUS_EVENTS = {"tool_started": EventType.TOOL_STARTED, "tool_finished": EventType.TOOL_FINISHED}
