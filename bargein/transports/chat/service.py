"""`ChatService`: owns the planner runs of `POST /api/chat/stream`, in its own nursery (not the
HTTP request's), opens and resumes streams, and cancels a run nobody follows."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import trio

from bargein.engines.base import PlannerEngine, PlanOutput, PlanRequest, Status, TextDelta
from bargein.runtime.history import ChatMessage
from bargein.store import MemoryStore, Store, StoreUnavailable, StreamRead
from bargein.transports.chat.config import ChatConfig
from bargein.transports.chat.request import ChatRequestError
from bargein.transports.chat.stream import ChatStream, RemoteStream, follow_local, follow_remote
from bargein.transports.sse import Gap, ReplayStore, StoreFull, parse_event_id

# The producer's hold on a stream in the shared store lasts this long without a refresh; a
# reader on another worker that sees it lapse with no final event says `stream_lost`.
PRODUCER_HOLD_S = 5.0


def _leaf(exc: BaseException) -> BaseException:
    # Nurseries wrap errors in groups; the planner's own exception is what a client can use.
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class ChatService:
    """Owns the planner runs of `POST /api/chat/stream`. Start with `nursery.start(service.run)`."""

    def __init__(
        self,
        planner: PlannerEngine,
        config: ChatConfig | None = None,
        *,
        shared: Store | None = None,
    ) -> None:
        self.planner = planner
        self.config = config or ChatConfig()
        self.shared = shared if shared is not None else MemoryStore()
        self.store = ReplayStore(self.config.max_streams, self.config.replay_capacity)
        self._streams: dict[str, ChatStream] = {}
        self._nursery: trio.Nursery | None = None
        self._stopped = trio.Event()
        self.cancelled_orphans = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the planner runs until `stop()` (or cancellation); then cancel what is left."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await self._stopped.wait()
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    def stop(self) -> None:
        self._stopped.set()

    def open(self, messages: tuple[ChatMessage, ...]) -> ChatStream:
        """Start a planner run; raises `ChatRequestError` if the service cannot take it."""
        if self._nursery is None:
            raise ChatRequestError(503, "shutting_down", "the chat service is not running")
        stream_id = secrets.token_urlsafe(12)
        try:
            buffer = self.store.create(stream_id)
        except StoreFull as exc:
            raise ChatRequestError(503, "server_busy", str(exc)) from exc
        stream = ChatStream(buffer, self.shared)
        # Drop our reference when the store evicts it (finished streams only).
        self._streams = {k: v for k, v in self._streams.items() if self.store.get(k) is not None}
        self._streams[stream_id] = stream
        stream.append("status", {"state": "started", "stream_id": stream_id})
        self._nursery.start_soon(self._produce, stream, messages)
        return stream

    async def resume(self, last_event_id: str) -> tuple[ChatStream | RemoteStream, int]:
        """The stream and position named by a `Last-Event-ID` header: this worker's own
        stream, else one another worker produces (from the shared store)."""
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            raise ChatRequestError(400, "bad_last_event_id", "Last-Event-ID is not one of ours")
        stream_id, seq = parsed
        stream = self._streams.get(stream_id)
        if stream is None or self.store.get(stream_id) is None:
            return await self._resume_remote(stream_id, seq), seq
        _check_resumable(stream.buffer.after(seq), seq)
        return stream, seq

    async def _resume_remote(self, stream_id: str, seq: int) -> RemoteStream:
        try:
            read = await self.shared.read_records(stream_id, seq, wait=0)
        except StoreUnavailable as exc:
            raise ChatRequestError(503, "store_unavailable", str(exc)) from exc
        if read is None:
            raise ChatRequestError(410, "unknown_stream", f"stream {stream_id} is not kept")
        if seq > read.last_seq:
            read = await self._catch_up(stream_id, seq, read)
        if seq > read.last_seq:
            _check_resumable(Gap(seq, None, "ahead"), seq)
        if read.records and read.records[0].seq != seq + 1:
            _check_resumable(Gap(seq, read.records[0].seq, "evicted"), seq)
        return RemoteStream(stream_id)

    async def _catch_up(self, stream_id: str, seq: int, read: StreamRead) -> StreamRead:
        """The store's view once it holds `seq`, or as it is when the producer finished or
        stopped, or `catch_up_timeout` passed: the producing worker's client may have been
        sent events that are still queued for the store."""
        with trio.move_on_after(self.config.catch_up_timeout):
            while seq > read.last_seq and not read.finished and read.producer_alive:
                try:
                    newer = await self.shared.read_records(stream_id, seq, wait=0.1)
                except StoreUnavailable as exc:
                    raise ChatRequestError(503, "store_unavailable", str(exc)) from exc
                if newer is None:
                    raise ChatRequestError(410, "unknown_stream", f"stream {stream_id} is gone")
                read = newer
        return read

    async def _produce(self, stream: ChatStream, messages: tuple[ChatMessage, ...]) -> None:
        try:
            await self._run_planner(stream, messages)
        finally:
            if not stream.buffer.finished:  # the service itself is stopping
                stream.append("error", {"code": "shutting_down", "message": "server stopping"})
                stream.finish()

    async def _run_planner(self, stream: ChatStream, messages: tuple[ChatMessage, ...]) -> None:
        started = trio.current_time()
        first: float | None = None
        deltas = chars = statuses = 0
        send, receive = trio.open_memory_channel[PlanOutput](16)

        async def plan() -> None:
            async with send:
                await self.planner.respond(PlanRequest(turn=1, messages=messages), send)

        async def watch_orphan() -> None:
            while True:
                await stream.wait_orphaned(self.config.orphan_timeout)
                try:
                    if not await self.shared.followed_elsewhere(stream.stream_id):
                        break
                except StoreUnavailable:
                    break  # nobody can be told apart from nobody: an orphan
            self.cancelled_orphans += 1
            stream.cancel_scope.cancel()

        async def hold() -> None:
            while True:
                self.shared.hold_stream(stream.stream_id, PRODUCER_HOLD_S)
                await trio.sleep(PRODUCER_HOLD_S / 3)

        with stream.cancel_scope:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch_orphan)
                    nursery.start_soon(hold)
                    nursery.start_soon(plan)
                    async with receive:
                        async for item in receive:
                            if isinstance(item, TextDelta):
                                if first is None:
                                    first = trio.current_time()
                                deltas += 1
                                chars += len(item.text)
                                stream.append("token", {"text": item.text, "n": deltas})
                            elif isinstance(item, Status):
                                statuses += 1
                                stream.append(
                                    "status",
                                    {"state": item.kind, "text": item.text, "tool": item.tool},
                                )
                    nursery.cancel_scope.cancel()
            except Exception as exc:
                leaf = _leaf(exc)
                stream.append(
                    "error",
                    {"code": "planner_failed", "message": f"{type(leaf).__name__}: {leaf}"[:2000]},
                )
                stream.finish()
                return
        if stream.cancel_scope.cancelled_caught:
            stream.append("error", {"code": "cancelled", "message": "no client attached"})
            stream.finish()
            return
        now = trio.current_time()
        stream.append(
            "done",
            {
                "usage": {"deltas": deltas, "characters": chars, "status_events": statuses},
                "timings": {
                    "first_token_ms": None if first is None else round((first - started) * 1e3),
                    "total_ms": round((now - started) * 1e3),
                },
            },
        )
        stream.finish()

    def follow(self, stream: ChatStream | RemoteStream, after: int) -> AsyncIterator[bytes]:
        """The response body for `resume`'s or `open`'s stream (this worker's or another's)."""
        if isinstance(stream, RemoteStream):
            return follow_remote(self.shared, stream, after, self.config)
        return follow_local(stream, after, self.config)


def _check_resumable(result: object, seq: int) -> None:
    """Raise the HTTP error for a `Gap` (evicted: 410 `replay_gap`; ahead: 400)."""
    if isinstance(result, Gap):
        raise ChatRequestError(
            410 if result.reason == "evicted" else 400,
            "replay_gap" if result.reason == "evicted" else "bad_last_event_id",
            f"cannot resume after {seq}: {result.reason} (oldest kept: {result.oldest})",
        )
