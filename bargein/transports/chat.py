"""Planner tokens as a resumable SSE stream: the trio loop around `sse.ReplayBuffer`.

A stream's planner runs in the service's nursery, not in the HTTP request, so a client whose
connection drops can reconnect with `Last-Event-ID` and get every event it missed, then the rest
live. When no client has been attached for `orphan_timeout` seconds the planner is cancelled:
a client that went away for good does not keep model work running.

Every event also goes to the shared `Store` (bargein/store), so a reconnect that reaches another
worker replays from there and follows the rest live (`follow_remote`); that worker marks the
stream followed, so the producing worker does not cancel it as an orphan (docs/deploy.md).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from bargein.engines.base import PlannerEngine, PlanOutput, PlanRequest, Status, TextDelta
from bargein.runtime.history import ChatMessage
from bargein.store import MemoryStore, Store, StoreUnavailable
from bargein.store.base import FINAL_EVENTS
from bargein.transports.protocol.codec import reject_json_constant
from bargein.transports.responses import error_json
from bargein.transports.sse import (
    Gap,
    ReplayBuffer,
    ReplayStore,
    StoreFull,
    encode_comment,
    encode_event,
    encode_retry,
    parse_event_id,
)

MAX_MESSAGES = 200
MAX_CONTENT_CHARS = 20_000
# The producer's hold on a stream in the shared store lasts this long without a refresh; a
# reader on another worker that sees it lapse with no final event says `stream_lost`.
PRODUCER_HOLD_S = 5.0
_ROLES = ("system", "user", "assistant")


class ChatRequestError(Exception):
    """A request the service refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return error_json(self.code, self.message)


def parse_json_body(data: bytes) -> Any:
    """The request body as strict JSON: UTF-8, no NaN/Infinity (pure)."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=reject_json_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ChatRequestError(400, "bad_json", f"the body is not JSON: {str(exc)[:200]}") from exc


def parse_chat_request(body: Any) -> tuple[ChatMessage, ...]:
    """Validate ``{"messages": [{"role", "content"}, ...]}`` (pure)."""
    if not isinstance(body, dict):
        raise ChatRequestError(400, "not_object", "the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError(400, "missing_field", "'messages' must be a non-empty array")
    if len(messages) > MAX_MESSAGES:
        raise ChatRequestError(400, "bad_field", f"more than {MAX_MESSAGES} messages")
    out: list[ChatMessage] = []
    for i, item in enumerate(messages):
        if not isinstance(item, dict):
            raise ChatRequestError(400, "bad_field", f"messages[{i}] must be an object")
        role, content = item.get("role"), item.get("content")
        if role not in _ROLES:
            raise ChatRequestError(400, "bad_field", f"messages[{i}].role must be one of {_ROLES}")
        if not isinstance(content, str) or len(content) > MAX_CONTENT_CHARS:
            raise ChatRequestError(
                400, "bad_field", f"messages[{i}].content must be a string ≤ {MAX_CONTENT_CHARS}"
            )
        out.append(ChatMessage(role, content))
    if out[-1].role != "user":
        raise ChatRequestError(400, "bad_field", "the last message must be the user's")
    return tuple(out)


def _leaf(exc: BaseException) -> BaseException:
    # Nurseries wrap errors in groups; the planner's own exception is what a client can use.
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _json(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class ChatStream:
    """One planner run and its replay buffer; any number of followers over its lifetime."""

    def __init__(self, buffer: ReplayBuffer, shared: Store | None = None) -> None:
        self.buffer = buffer
        self.shared = shared if shared is not None else MemoryStore()
        self.followers = 0
        self.cancel_scope = trio.CancelScope()
        self._changed = trio.Event()
        self._membership = trio.Event()

    @property
    def stream_id(self) -> str:
        return self.buffer.stream_id

    def append(self, event: str, data: Mapping[str, Any]) -> None:
        record = self.buffer.append(event, _json(data))
        self.shared.append_record(record, final=event in FINAL_EVENTS)
        self._wake()

    def finish(self) -> None:
        if not self.buffer.finished:
            self.buffer.finish()
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self, seen_seq: int) -> None:
        """Return once there is an event after `seen_seq`, or the stream is finished."""
        while self.buffer.last_seq <= seen_seq and not self.buffer.finished:
            await self._changed.wait()

    def attach(self) -> None:
        self.followers += 1
        self._membership_changed()

    def detach(self) -> None:
        self.followers -= 1
        self._membership_changed()

    def _membership_changed(self) -> None:
        self._membership.set()
        self._membership = trio.Event()

    async def wait_orphaned(self, grace: float) -> None:
        """Return once no follower has been attached for `grace` seconds in a row."""
        while True:
            while self.followers:
                await self._membership.wait()
            with trio.move_on_after(grace):
                while not self.followers:
                    await self._membership.wait()
            if not self.followers:
                return


@dataclass(frozen=True, slots=True)
class ChatConfig:
    heartbeat_interval: float = 15.0
    orphan_timeout: float = 10.0
    retry_ms: int = 1000
    max_streams: int = 64
    replay_capacity: int = 4096


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
            _check_resumable(Gap(seq, None, "ahead"), seq)
        if read.records and read.records[0].seq != seq + 1:
            _check_resumable(Gap(seq, read.records[0].seq, "evicted"), seq)
        return RemoteStream(stream_id)

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
        return self._follow_local(stream, after)

    async def _follow_local(self, stream: ChatStream, after: int) -> AsyncIterator[bytes]:
        """The response body: replay after `after`, then live events, heartbeats when quiet.

        Returns when the stream has finished and everything was sent; the caller's cancellation
        (client gone) detaches the follower.
        """
        stream.attach()
        try:
            yield encode_retry(self.config.retry_ms)
            seen = after
            while True:
                result = stream.buffer.after(seen)
                if isinstance(result, Gap):
                    # This follower fell so far behind that the buffer wrapped: say so, stop.
                    yield encode_event(
                        _json({"code": "replay_gap", "message": f"events after {seen} lost"}),
                        event="error",
                    )
                    return
                for record in result.records:
                    yield record.encode()
                    seen = record.seq
                if stream.buffer.finished and seen == stream.buffer.last_seq:
                    return
                with trio.move_on_after(self.config.heartbeat_interval) as quiet:
                    await stream.wait_changed(seen)
                if quiet.cancelled_caught:
                    yield encode_comment("ping")
        finally:
            stream.detach()


def _check_resumable(result: object, seq: int) -> None:
    """Raise the HTTP error for a `Gap` (evicted: 410 `replay_gap`; ahead: 400)."""
    if isinstance(result, Gap):
        raise ChatRequestError(
            410 if result.reason == "evicted" else 400,
            "replay_gap" if result.reason == "evicted" else "bad_last_event_id",
            f"cannot resume after {seq}: {result.reason} (oldest kept: {result.oldest})",
        )


@dataclass(frozen=True, slots=True)
class RemoteStream:
    """A stream another worker produces, read from the shared store."""

    stream_id: str


async def follow_remote(
    shared: Store, stream: RemoteStream, after: int, config: ChatConfig
) -> AsyncIterator[bytes]:
    """The response body for a stream of another worker: what the store holds after `after`,
    then each event as that worker writes it, heartbeats when quiet. Every event once, in
    order; a hole (the store lost events) ends the body with `replay_gap`, a producer that
    stopped holding the stream without its final event with `stream_lost`, the store gone
    with `store_unavailable` (the client may reconnect with its Last-Event-ID)."""
    # Wake at least this often: to mark the stream followed before the mark lapses.
    wait = min(config.heartbeat_interval, config.orphan_timeout / 3)
    yield encode_retry(config.retry_ms)
    seen = after
    quiet_since = trio.current_time()
    while True:
        shared.mark_followed(stream.stream_id, config.orphan_timeout)
        try:
            read = await shared.read_records(stream.stream_id, seen, wait=wait)
        except StoreUnavailable as exc:
            yield _error_event("store_unavailable", str(exc))
            return
        if read is None:
            yield _error_event("stream_lost", f"stream {stream.stream_id} is gone from the store")
            return
        for record in read.records:
            if record.seq != seen + 1:
                yield _error_event("replay_gap", f"events after {seen} lost")
                return
            yield record.encode()
            seen = record.seq
            quiet_since = trio.current_time()
        if read.finished and seen >= read.last_seq:
            return
        if not read.records:
            if not read.producer_alive:
                yield _error_event("stream_lost", "the worker producing the stream stopped")
                return
            if trio.current_time() - quiet_since >= config.heartbeat_interval:
                yield encode_comment("ping")
                quiet_since = trio.current_time()


def _error_event(code: str, message: str) -> bytes:
    return encode_event(_json({"code": code, "message": message}), event="error")
